'use strict';
// The tables of bench/cluster/run.sh, from its results.tsv and kills.tsv.
//
//   node report.js results.tsv kills.tsv CONNS [served.tsv]
//
// Every figure is a median over rounds; ratios are taken within each round first (the cases of
// one round ran minutes apart at most, on the same machine) and then their median is shown.
// Targets are reported, never asserted: the exit status does not depend on them.
const fs = require('node:fs');

const [resultsPath, killsPath, connsArg, servedPath] = process.argv.slice(2);
const CONNS = Number(connsArg || 32);

function readTsv(path) {
  if (!path || !fs.existsSync(path)) return [];
  const [head, ...lines] = fs.readFileSync(path, 'utf8').split('\n').filter(Boolean);
  const names = head.split('\t');
  return lines.map((l) => {
    const v = l.split('\t');
    const o = {};
    names.forEach((n, i) => (o[n] = /^-?[\d.]+$/.test(v[i]) ? Number(v[i]) : v[i]));
    return o;
  });
}

const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const fmt = (x, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : '-');
const pad = (s, n) => String(s).padEnd(n);
const lpad = (s, n) => String(s).padStart(n);

const rows = readTsv(resultsPath);
// Per-row derived figures.
for (const r of rows) {
  // Connections handed off: one per request with Connection: close; wrk's -c with keep-alive.
  r.conns = r.mode === 'close' ? r.reqs : CONNS;
  r.pPer1k = r.conns > 0 ? (r.primary_ms * 1000) / r.conns : NaN;
  r.wPer1kReq = r.reqs > 0 ? (r.workers_ms * 1000) / r.reqs : NaN;
  r.cpuPct = r.secs > 0 ? r.primary_ms / (r.secs * 10) : NaN; // % of one CPU
  r.sysPct = r.primary_ms > 0 ? (100 * r.primary_sys_ms) / r.primary_ms : NaN;
  r.csPerConn = r.conns > 0 ? r.primary_cs / r.conns : NaN;
  r.kPer1kReq = r.reqs > 0 && Number.isFinite(r.wrk_ms) ? (r.wrk_ms * 1000) / r.reqs : NaN;
  r.pPer1kReq = r.reqs > 0 ? (r.primary_ms * 1000) / r.reqs : NaN;
  r.totalPer1kReq = r.pPer1kReq + r.wPer1kReq + r.kPer1kReq;
}

const cases = [...new Set(rows.map((r) => r.case))];
const modes = ['keepalive', 'close'];
const rounds = [...new Set(rows.map((r) => r.round))];
const get = (c, m, round) => rows.find((r) => r.case === c && r.mode === m && r.round === round);

// One figure's ratio a/b per round, then the median and the per-round values.
function ratio(ca, cb, m, field) {
  const per = rounds
    .map((round) => {
      const a = get(ca, m, round), b = get(cb, m, round);
      return a && b && b[field] > 0 ? a[field] / b[field] : NaN;
    })
    .filter(Number.isFinite);
  return { med: median(per), per };
}

if (rows.length) {
  console.log('## Throughput (median over rounds; min-max of req/s)');
  console.log('');
  const H = [
    pad('case', 17), pad('mode', 10), lpad('req/s', 8), lpad('min-max', 14), lpad('vs node-rr', 11),
    lpad('primary ms', 11), lpad('%CPU', 5), lpad('%sys', 5), lpad('ms/1k conn', 11),
    lpad('ctxsw/conn', 11), lpad('workers ms/1k req', 18), lpad('wrk ms/1k req', 14), lpad('errors', 7),
  ].join(' ');
  console.log(H);
  console.log('-'.repeat(H.length));
  for (const m of modes) {
    for (const c of cases) {
      const rs = rows.filter((r) => r.case === c && r.mode === m);
      if (!rs.length) continue;
      const rps = rs.map((r) => r.rps);
      const vs = c === 'node-rr' ? null : ratio(c, 'node-rr', m, 'rps');
      console.log([
        pad(c, 17), pad(m, 10), lpad(fmt(median(rps)), 8),
        lpad(`${fmt(Math.min(...rps))}-${fmt(Math.max(...rps))}`, 14),
        lpad(vs ? `${fmt(vs.med, 2)}x` : '1', 11),
        lpad(fmt(median(rs.map((r) => r.primary_ms))), 11),
        lpad(fmt(median(rs.map((r) => r.cpuPct))), 5),
        lpad(fmt(median(rs.map((r) => r.sysPct))), 5),
        lpad(fmt(median(rs.map((r) => r.pPer1k)), 1), 11),
        lpad(fmt(median(rs.map((r) => r.csPerConn)), 2), 11),
        lpad(fmt(median(rs.map((r) => r.wPer1kReq)), 1), 18),
        lpad(fmt(median(rs.map((r) => r.kPer1kReq)), 1), 14),
        lpad(rs.reduce((s, r) => s + r.errors, 0), 7),
      ].join(' '));
    }
  }
  console.log('');
  console.log('primary ms: CPU (utime+stime, all threads) of the primary process during the wrk run;');
  console.log('%CPU: of one CPU over the run; %sys: the kernel\'s share of it; ms/1k conn: primary ms per');
  console.log(`1,000 connections handed off (= requests with Connection: close, = wrk's -c ${CONNS} with`);
  console.log('keep-alive); ctxsw/conn: the primary\'s context switches (all threads) per connection, i.e.');
  console.log('how often it sleeps and wakes; workers ms/1k req: both workers\' CPU per 1,000 requests;');
  console.log('wrk ms/1k req: the load generator\'s own CPU per 1,000 requests (it shares the 2 cores).');
  console.log('Primary figures are 0 for shared/reuseport/node-none: there the primary is not on the path.');
  console.log('vs node-rr: req/s ratio to Node SCHED_RR, taken within each round, median.');
  console.log('');

  // Where the CPU goes per request with Connection: close. On a saturated machine req/s is
  // roughly inversely proportional to the CPU all parties spend per request.
  const closeCases = cases.filter((c) => rows.some((r) => r.case === c && r.mode === 'close'));
  if (closeCases.length) {
    console.log('## CPU per request, Connection: close (us = ms/1k req; median over rounds)');
    console.log('');
    console.log([pad('case', 17), lpad('primary', 8), lpad('workers', 8), lpad('wrk', 6), lpad('total', 7), lpad('req/s', 7)].join(' '));
    const tot = {};
    for (const c of closeCases) {
      const rs = rows.filter((r) => r.case === c && r.mode === 'close');
      tot[c] = {
        p: median(rs.map((r) => r.pPer1kReq)), w: median(rs.map((r) => r.wPer1kReq)),
        k: median(rs.map((r) => r.kPer1kReq)), t: median(rs.map((r) => r.totalPer1kReq)),
      };
      console.log([pad(c, 17), lpad(fmt(tot[c].p), 8), lpad(fmt(tot[c].w), 8), lpad(fmt(tot[c].k), 6),
        lpad(fmt(tot[c].t), 7), lpad(fmt(median(rs.map((r) => r.rps))), 7)].join(' '));
    }
    if (tot['floor-rr'] && tot['muster-rr']) {
      console.log('');
      console.log(`primary CPU per connection: muster rr ${fmt(tot['muster-rr'].p)} us, the floor ${fmt(tot['floor-rr'].p)} us` +
        (tot['node-rr'] ? `, Node ${fmt(tot['node-rr'].p)} us (0.2x Node = ${fmt(0.2 * tot['node-rr'].p)} us).` : '.'));
    }
    const m = tot['muster-rr'], n = tot['node-rr'];
    if (m && n && Number.isFinite(m.t) && Number.isFinite(n.t)) {
      console.log('');
      console.log(`CPU-bound estimate of muster rr / Node SCHED_RR req/s: ${fmt(n.t / m.t, 2)}x (Node's total CPU per`);
      console.log(`request over muster's); if muster's primary cost nothing: ${fmt(n.t / (m.t - m.p), 2)}x` +
        (tot['muster-shared'] ? `; if the hand-off cost nothing on either side (muster shared's total): ${fmt(n.t / tot['muster-shared'].t, 2)}x.` : '.'));
    }
    console.log('');
  }

  console.log('## Targets (reported, not asserted)');
  console.log('');
  const line = (label, r, target, ok) => {
    const per = r.per.map((x) => x.toFixed(2)).join(', ');
    const verdict = !Number.isFinite(r.med) ? 'n/a' : target === '-' ? '' : ok(r.med) ? 'met' : 'MISSED';
    // No rounds (a mode that did not run): the ratio is n/a, not "-x".
    const shown = Number.isFinite(r.med) ? `${fmt(r.med, 2)}x` : 'n/a';
    console.log(`${pad(label, 58)} ${lpad(shown, 7)}  target ${pad(target, 7)} ${pad(verdict, 7)} rounds: ${per}`);
  };
  line('muster rr / Node SCHED_RR req/s, Connection: close',
    ratio('muster-rr', 'node-rr', 'close', 'rps'), '>= 1.3x', (x) => x >= 1.3);
  line('muster rr / Node SCHED_RR primary CPU per conn, close',
    ratio('muster-rr', 'node-rr', 'close', 'pPer1k'), '<= 0.2x', (x) => x <= 0.2);
  line('muster rr / Node SCHED_RR workers CPU per req, close',
    ratio('muster-rr', 'node-rr', 'close', 'wPer1kReq'), '<= 1.0x', (x) => x <= 1.0);
  line('muster rr / Node SCHED_RR req/s, keep-alive',
    ratio('muster-rr', 'node-rr', 'keepalive', 'rps'), '>= 1.0x', (x) => x >= 1.0);
  if (cases.includes('floor-rr')) {
    // The floor: the same Node workers behind a primary that does nothing but the hand-off
    // (crates/muster-cluster/examples/rr_floor.rs). What it reaches bounds any primary here.
    console.log('');
    console.log('The floor (floor-rr: accept + sendmsg + read the reply in one epoll loop, no runtime, the');
    console.log('same Node workers; what no primary can beat on this machine):');
    line('floor rr / Node SCHED_RR req/s, Connection: close',
      ratio('floor-rr', 'node-rr', 'close', 'rps'), '-', () => true);
    line('floor rr / Node SCHED_RR primary CPU per conn, close',
      ratio('floor-rr', 'node-rr', 'close', 'pPer1k'), '-', () => true);
    line('muster rr / floor rr req/s, Connection: close',
      ratio('muster-rr', 'floor-rr', 'close', 'rps'), '-', () => true);
    line('muster rr / floor rr primary CPU per conn, close',
      ratio('muster-rr', 'floor-rr', 'close', 'pPer1k'), '-', () => true);
  }
  console.log('');
  console.log('Other pairs (req/s ratio within each round, median):');
  const pairs = [
    ['muster-shared', 'node-none'], ['muster-reuseport', 'node-none'], ['muster-rr', 'muster-shared'],
    ['rust-rr', 'muster-rr'], ['rust-rr', 'rust-reuseport'], ['rust-reuseport', 'muster-reuseport'],
  ].filter(([a, b]) => cases.includes(a) && cases.includes(b));
  for (const [a, b] of pairs) {
    const k = ratio(a, b, 'keepalive', 'rps'), cl = ratio(a, b, 'close', 'rps');
    const x = (v) => (Number.isFinite(v) ? `${fmt(v, 2)}x` : 'n/a');
    console.log(`  ${pad(`${a} / ${b}`, 36)} keep-alive ${lpad(x(k.med), 6)}   close ${lpad(x(cl.med), 6)}`);
  }
  console.log('');
}

const kills = readTsv(killsPath);
if (kills.length) {
  console.log('## kill -9 of one worker -> replacement listening (ms)');
  console.log('');
  console.log([pad('system', 17), lpad('median', 7), lpad('min', 7), lpad('max', 7),
    lpad('exit seen', 10), lpad('exit->listening', 16), '  all'].join(' '));
  const systems = [...new Set(kills.map((k) => k.system))];
  const med = {};
  for (const s of systems) {
    const ks = kills.filter((k) => k.system === s);
    const v = ks.map((k) => k.ms);
    const e = ks.map((k) => k.exit_ms);
    med[s] = median(v);
    console.log([pad(s, 17), lpad(fmt(med[s], 1), 7), lpad(fmt(Math.min(...v), 1), 7),
      lpad(fmt(Math.max(...v), 1), 7), lpad(fmt(median(e), 1), 10),
      lpad(fmt(median(ks.map((k) => k.ms - k.exit_ms)), 1), 16),
      '  ' + v.map((x) => fmt(x, 1)).join(' ')].join(' '));
  }
  if (med['muster-rr'] && med['node-rr']) {
    console.log('');
    console.log(`muster rr / Node SCHED_RR median: ${fmt(med['muster-rr'] / med['node-rr'], 2)}x`);
  }
  console.log('From the kill (bash $EPOCHREALTIME right after kill -9) to the primary\'s line saying the');
  console.log('replacement listens, stamped on arrival by the same reader for every system. "exit seen":');
  console.log('to the primary\'s exit line for the killed worker (its reaction); the rest is mostly the');
  console.log('new Node worker starting up.');
}

const served = readTsv(servedPath);
if (served.length) {
  console.log('');
  console.log('## kill -9 under load -> served again, per slot (-i 1, rr; ms)');
  console.log('');
  const names = {
    'muster-rr-1': 'muster, no spare',
    'muster-rr-1-spare': 'muster, spares = 1',
    'node-rr-1': 'Node cluster SCHED_RR',
  };
  console.log([pad('system', 22), lpad('median', 7), lpad('min', 7), lpad('max', 7),
    lpad('seen', 7), lpad('primary', 8), lpad('failed in flight', 17), lpad('failed after', 13),
    lpad('served', 7), '  all'].join(' '));
  const med = {};
  const byIter = {};
  for (const s of Object.keys(names)) {
    const rs = served.filter((r) => r.system === s);
    if (!rs.length) continue;
    const v = rs.map((r) => r.ms);
    med[s] = median(v);
    byIter[s] = Object.fromEntries(rs.map((r) => [r.iter, r.ms]));
    const sum = (k) => rs.reduce((a, r) => a + r[k], 0);
    console.log([pad(names[s], 22), lpad(fmt(med[s], 1), 7), lpad(fmt(Math.min(...v), 1), 7),
      lpad(fmt(Math.max(...v), 1), 7), lpad(fmt(median(rs.map((r) => r.seen_ms)), 1), 7),
      lpad(fmt(median(rs.map((r) => r.back_ms)), 1), 8),
      lpad(sum('failed_inflight'), 17),
      lpad(sum('failed_after'), 13), lpad(sum('ok'), 7),
      '  ' + v.map((x) => fmt(x, 1)).join(' ')].join(' '));
  }
  // Ratios of one iteration's kills (seconds apart), then the median.
  const ratio = (a, b) => {
    if (!byIter[a] || !byIter[b]) return NaN;
    const rs = Object.keys(byIter[a]).filter((i) => i in byIter[b])
      .map((i) => byIter[a][i] / byIter[b][i]);
    return median(rs);
  };
  console.log('');
  const pairs = [
    ['muster-rr-1-spare', 'node-rr-1'], ['muster-rr-1', 'node-rr-1'],
    ['muster-rr-1-spare', 'muster-rr-1'],
  ];
  for (const [a, b] of pairs) {
    if (!(a in med) || !(b in med)) continue;
    console.log(`${pad(`${names[a]} / ${names[b]}`, 48)} ${lpad(fmt(ratio(a, b), 3), 7)}x (per iteration, median)`);
  }
  if ('muster-rr-1-spare' in med) {
    const after = served.filter((r) => r.system === 'muster-rr-1-spare')
      .reduce((a, r) => a + r.failed_after, 0);
    const met = med['muster-rr-1-spare'] <= 5 && after === 0;
    console.log(`target: with spares = 1, served again in <= 5 ms (median) and 0 failed after the kill: ` +
      `${fmt(med['muster-rr-1-spare'], 1)} ms, ${after} failed: ${met ? 'met' : 'MISSED'}`);
  } else {
    console.log('target: n/a (the spare case did not run)');
  }
  console.log('4 clients send GET / on fresh connections in a loop (bench/cluster/node/served-again.js);');
  console.log('after 300 ms the worker that answers is SIGKILLed; the figure runs from right after the');
  console.log('kill to the end of the first 200 answered by another pid. "failed in flight": failed');
  console.log('requests sent before the kill (inside the killed worker); "failed after": sent after it.');
  console.log('"seen" (median): from the kill to the primary\'s line saying the worker died: muster\'s');
  console.log('disconnect event (the channel closed, the earliest a parent can know: the kernel closes a');
  console.log('killed process\'s descriptors once its memory is torn down), Node\'s exit. With a spare,');
  console.log('"primary" - "seen" is what the promotion itself costs.');
  console.log('"primary" (median): from the kill to the primary\'s line putting a worker back in service,');
  console.log('stamped on arrival: muster\'s promote (spare) or ready (replacement), Node\'s listening; the');
  console.log('rest of "median" is the worker answering its first connection (a cold Node process).');
  console.log('Each system has one slot (-i 1), so no other worker hides the gap; the iterations');
  console.log('alternate the order of the systems, 1.2 s apart, each back to strength first.');
}
