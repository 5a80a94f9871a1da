'use strict';
// One kill -9 under load, timed from the client's side: bench/cluster/run.sh's "served again".
//
//   node served-again.js PORT [CLIENTS] [WARM_MS]
//
// CLIENTS (default 4) concurrent clients send GET / in a loop, each on a fresh connection
// (Connection: close; the workers answer their pid). After WARM_MS (default 300) of that load
// the probe SIGKILLs the pid that answered last, and goes on until a different pid has answered
// and 100 ms more (at most 10 s). It prints one tab-separated line:
//
//   served_ms  victim  new_pid  failed_inflight  failed_after  ok  kill_at
//
// served_ms: from the kill (right after process.kill returned) to the end of the first 200
// from another pid, whenever that request was sent (one queued before the kill counts: it was
// served again). failed_inflight: failed requests sent before the kill (they may have been
// inside the killed worker); failed_after: failed requests sent after it (the target: 0).
// ok: requests answered 200 during the whole probe. kill_at: the kill's wall-clock time
// (seconds since the epoch), to place the primary's own events, stamped on arrival, after it.
const http = require('node:http');
const { performance } = require('node:perf_hooks');

const PORT = Number(process.argv[2]);
const CLIENTS = Number(process.argv[3] || 4);
const WARM = Number(process.argv[4] || 300);
if (!PORT) {
  console.error('usage: node served-again.js PORT [CLIENTS] [WARM_MS]');
  process.exit(2);
}

let tKill = null;
let victim = null;
let lastPid = null;
let served = null;
let newPid = null;
let stopAt = null;
let failedInflight = 0;
let failedAfter = 0;
let ok = 0;
const hardEnd = performance.now() + WARM + 10000;

function once() {
  const t0 = performance.now();
  const req = http.get(
    { host: '127.0.0.1', port: PORT, path: '/', agent: false, headers: { Connection: 'close' } },
    (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => done(t0, res.statusCode === 200 ? body.trim() : null));
      res.on('error', () => done(t0, null));
    },
  );
  req.setTimeout(5000, () => req.destroy(new Error('timeout')));
  req.on('error', () => done(t0, null));
}

function done(t0, pid) {
  const t = performance.now();
  if (pid === null) {
    if (tKill !== null && t0 >= tKill) failedAfter++;
    else failedInflight++;
  } else {
    ok++;
    lastPid = pid;
    if (tKill !== null && served === null && pid !== victim) {
      served = t - tKill;
      newPid = pid;
      stopAt = t + 100;
    }
  }
  if ((stopAt !== null && t >= stopAt) || t >= hardEnd) return finish();
  setImmediate(once);
}

let finished = false;
function finish() {
  if (finished) return;
  finished = true;
  // Let the other clients' last requests end without counting them.
  const line = [served === null ? 'timeout' : served.toFixed(2), victim, newPid ?? '-',
    failedInflight, failedAfter, ok,
    tKill === null ? '-' : ((performance.timeOrigin + tKill) / 1000).toFixed(6)].join('\t');
  process.stdout.write(line + '\n', () => process.exit(served === null ? 1 : 0));
}

setTimeout(() => {
  if (lastPid === null) {
    console.error('served-again.js: no answer during the warm-up');
    process.exit(1);
  }
  victim = lastPid;
  process.kill(Number(victim), 'SIGKILL');
  tKill = performance.now();
}, WARM);

for (let i = 0; i < CLIENTS; i++) once();
