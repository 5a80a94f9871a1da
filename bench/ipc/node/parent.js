'use strict';
// Node⇄Node reference: a Node parent that forks child.js / count.js with child_process.fork and
// measures one run of one case, the same way the Rust parent does. Started by ipc-bench:
//
//   node parent.js rt     MIN_MSGS MIN_SECS WARMUP
//   node parent.js oneway MIN_MSGS MIN_SECS WARMUP
//   node parent.js big    SAMPLES  BYTES    WARMUP
//
// Prints one line of JSON on stdout: {"count":n,"secs":s,"cpu":s} or {"samples":[secs, ...]},
// where cpu is the CPU time (user + system) parent and child used meanwhile, from /proc.
// The child's start-up is never timed: every case warms up (and so waits for the child) first.

const { fork } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const now = () => process.hrtime.bigint();
const secsSince = (t0) => Number(now() - t0) / 1e9;
const nextMessage = (child) => new Promise((resolve) => child.once('message', resolve));

// CPU seconds (utime + stime, fields 14 and 15 of /proc/PID/stat, in 1/100 s) of these processes.
function cpuSecs(pids) {
  let ticks = 0;
  for (const pid of pids) {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks += Number(f[11]) + Number(f[12]);
  }
  return ticks / 100;
}
const cpuOf = (child) => cpuSecs([process.pid, child.pid]);

// Parent sends {"seq":n}, waits for the echo, sends the next; at least minMsgs and minSecs.
function roundTrips(child, minMsgs, minSecs) {
  return new Promise((resolve, reject) => {
    let n = 0;
    const cpu0 = cpuOf(child);
    const t0 = now();
    const onMessage = (m) => {
      if (m === null || m.seq !== n) {
        child.off('message', onMessage);
        reject(new Error(`echo ${JSON.stringify(m)} for seq ${n}`));
        return;
      }
      n += 1;
      if ((n & 15) === 0 && n >= minMsgs) {
        const secs = secsSince(t0);
        if (secs >= minSecs) {
          child.off('message', onMessage);
          resolve({ count: n, secs, cpu: cpuOf(child) - cpu0 });
          return;
        }
      }
      child.send({ seq: n });
    };
    child.on('message', onMessage);
    child.send({ seq: 0 });
  });
}

// Parent sends {"seq":n} as fast as it can, then {"done":true}; the child answers with its count.
// Timed from the first send to that answer. child.send() queues in memory when the socket is full,
// so at most BATCHES_AHEAD batches are let run ahead of what libuv has written (the last message
// of each batch carries a write callback); that is Node's own back-pressure, nothing more.
async function oneWay(child, minMsgs, minSecs) {
  const BATCH = 256;
  const BATCHES_AHEAD = 32;
  const written = [];
  const reply = nextMessage(child);
  let n = 0;
  const cpu0 = cpuOf(child);
  const t0 = now();
  for (;;) {
    for (let i = 1; i < BATCH; i++) child.send({ seq: n++ });
    written.push(new Promise((resolve) => child.send({ seq: n++ }, resolve)));
    if (written.length >= BATCHES_AHEAD) await written.shift();
    if (n >= minMsgs && secsSince(t0) >= minSecs) break;
  }
  child.send({ done: true });
  const m = await reply;
  const secs = secsSince(t0);
  const cpu = cpuOf(child) - cpu0;
  if (m === null || m.count !== n) throw new Error(`child counted ${JSON.stringify(m)}, sent ${n}`);
  return { count: n, secs, cpu };
}

async function big(child, samples, bytes, warmup) {
  const blob = 'x'.repeat(bytes);
  const out = [];
  for (let i = 0; i < warmup + samples; i++) {
    const t0 = now();
    child.send({ seq: i, blob });
    const m = await nextMessage(child);
    const secs = secsSince(t0);
    if (m === null || m.seq !== i || m.blob.length !== bytes) throw new Error(`bad 1 MiB echo ${i}`);
    if (i >= warmup) out.push(secs);
  }
  return { samples: out };
}

async function main() {
  const [mode, a, b, w] = process.argv.slice(2);
  const warmup = Number(w);
  const script = mode === 'oneway' ? 'count.js' : 'child.js';
  // ipc-bench --placement two-cores: the child runs on another CPU than ours. Node cannot pin a
  // process, so the child starts through taskset, which execs node in place (same pid, same
  // channel descriptor).
  const cpu = process.env.IPC_BENCH_CHILD_CPU;
  const pinned = cpu === undefined
    ? {}
    : { execPath: 'taskset', execArgv: ['-c', cpu, process.execPath, ...process.execArgv] };
  const child = fork(path.join(__dirname, script), [], {
    serialization: 'json',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    ...pinned,
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  let result;
  if (mode === 'rt') {
    await roundTrips(child, warmup, 0);
    result = await roundTrips(child, Number(a), Number(b));
  } else if (mode === 'oneway') {
    await oneWay(child, warmup, 0);
    result = await oneWay(child, Number(a), Number(b));
  } else if (mode === 'big') {
    result = await big(child, Number(a), Number(b), warmup);
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
  child.disconnect();
  await exited;
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((e) => {
  console.error(`parent.js: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});
