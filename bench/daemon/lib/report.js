#!/usr/bin/env node
// The table of bench/daemon/run.sh: reads its results (KEY<TAB>VALUE lines; a key recorded
// several times is a set of repetitions, reported by its median) and prints both tools' figures,
// the ratio pm2 ÷ muster (above 1: muster is smaller or faster) and muster's targets.
//
//   node report.js results.tsv [--json]
'use strict';
const fs = require('fs');

const [file, ...flags] = process.argv.slice(2);
const values = new Map();
for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
  if (!line) continue;
  const tab = line.indexOf('\t');
  const key = line.slice(0, tab);
  if (!values.has(key)) values.set(key, []);
  values.get(key).push(line.slice(tab + 1));
}
const all = (k) => (values.get(k) || []).map(Number).filter((x) => !Number.isNaN(x));
const text = (k) => (values.get(k) || []).join('; ');
const median = (k) => {
  const s = all(k).sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? null : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
};
const sum = (k) => (all(k).length ? all(k).reduce((a, b) => a + b, 0) : null);

const mb = (kb) => (kb == null ? 'n/a' : `${(kb / 1024).toFixed(1)} MB`);
const ms = (x) =>
  x == null ? 'n/a' : x < 10 ? `${x.toFixed(2)} ms` : x < 1000 ? `${x.toFixed(0)} ms` : `${(x / 1000).toFixed(2)} s`;
const count = (x) => (x == null ? 'n/a' : String(Math.round(x)));
const ratio = (m, p) => (m == null || p == null || m === 0 ? '-' : `${(p / m).toFixed(1)}×`);

const apps = Number(text('meta.apps')) || 100;
const lines = Number(text('meta.burst_lines')) || 200000;
const rows = [];
// row(figure, muster, pm2, format, {target: [limit, label], ratio: bool})
function row(figure, m, p, fmt, opts = {}) {
  let verdict = '';
  if (opts.target && m != null) verdict = m <= opts.target[0] ? 'ok' : 'MISS';
  rows.push([
    figure,
    fmt(m),
    fmt(p),
    opts.ratio === false ? '-' : ratio(m, p),
    opts.target ? `${opts.target[1]} ${verdict}` : '',
  ]);
}
const section = (title) => rows.push([title, '', '', '', '']);

section('Memory of the tools\' own processes (PSS, smaps_rollup)');
row('  idle daemon, RSS', median('mem.muster.0.rss'), median('mem.pm2.0.rss'), mb, {
  target: [3 * 1024, '≤ 3 MB'],
});
for (const n of [...new Set([0, 1, 10, apps])]) {
  if (!values.has(`mem.muster.${n}.pss`)) continue;
  const label = n === 0 ? '  idle (daemon only)' : `  ${n} idle app${n > 1 ? 's' : ''} (fork)`;
  row(
    `${label} [${text(`mem.muster.${n}.procs`)} / ${text(`mem.pm2.${n}.procs`)} proc]`,
    median(`mem.muster.${n}.pss`),
    median(`mem.pm2.${n}.pss`),
    mb,
  );
}
const perApp = (t) => {
  const a = median(`mem.${t}.${apps}.pss`);
  const b = median(`mem.${t}.0.pss`);
  return a == null || b == null ? null : (a - b) / apps;
};
row(`  per app, (${apps} apps − idle) ÷ ${apps}`, perApp('muster'), perApp('pm2'), (kb) =>
  kb == null ? 'n/a' : `${kb.toFixed(0)} kB`,
);
row(
  `  ${apps} apps: anonymous part of the PSS`,
  median(`mem.muster.${apps}.anon`),
  median(`mem.pm2.${apps}.anon`),
  mb,
);

row(
  `  the ${apps} apps' own processes (PSS)`,
  median(`mem.muster.${apps}.apps_pss`),
  median(`mem.pm2.${apps}.apps_pss`),
  mb,
);

section('`list`, whole command, median of the runs');
for (const n of [...new Set([1, apps])]) {
  const target = n === 1 ? [2, '≤ 2 ms'] : n === apps && apps >= 100 ? [5, '≤ 5 ms'] : undefined;
  const apps_ = `${n} app${n > 1 ? 's' : ''}`;
  row(`  ${apps_}: muster list | pm2 ls`, median(`list.muster.list.${n}`), median(`list.pm2.ls.${n}`), ms, { target });
  row(`  ${apps_}: muster list --json | pm2 jlist`, median(`list.muster.json.${n}`), median(`list.pm2.jlist.${n}`), ms, { target });
  row(`  ${apps_}: the same, fastest run (list | ls)`, median(`list.muster.list.${n}.min`), median(`list.pm2.ls.${n}.min`), ms);
  row(`  ${apps_}: the same, fastest run (--json | jlist)`, median(`list.muster.json.${n}.min`), median(`list.pm2.jlist.${n}.min`), ms);
}

section('Start, stop, crash (medians)');
row('  start -i 2 → first HTTP 200', median('start.muster.to200'), median('start.pm2.to200'), ms);
row('  start -i 2: the CLI returns', median('start.muster.cli'), median('start.pm2.cli'), ms);
row('  kill -9 → new pid answers (fork)', median('kill.muster.fork'), median('kill.pm2.fork'), ms);
row('  kill -9 → new pid answers (-i 1)', median('kill.muster.cluster'), median('kill.pm2.cluster'), ms);
row('  stop one idle fork-mode app', median('stop.muster'), median('stop.pm2'), ms);
row(
  `  start ${apps - (apps > 10 ? 10 : 1)} idle apps (ecosystem file, until all online)`,
  median(`startmany.muster.${apps}`),
  median(`startmany.pm2.${apps}`),
  ms,
);
row(`  delete all ${apps} idle apps`, median('deletemany.muster'), median('deletemany.pm2'), ms);

section('Reload ×2 under wrk, 16 connections (sums over the rounds)');
row('  failed requests, keep-alive (wrk default)', sum('reload.muster.keepalive.failed'), sum('reload.pm2.keepalive.failed'), count, {
  ratio: false,
  target: [0, '= 0'],
});
row('  failed requests, Connection: close', sum('reload.muster.close.failed'), sum('reload.pm2.close.failed'), count, {
  ratio: false,
  target: [0, '= 0'],
});
row('  requests served, keep-alive', sum('reload.muster.keepalive.requests'), sum('reload.pm2.keepalive.requests'), count, { ratio: false });
row('  requests served, Connection: close', sum('reload.muster.close.requests'), sum('reload.pm2.close.requests'), count, { ratio: false });
row('  `reload` command (median)', median('reload.muster.cmd_ms'), median('reload.pm2.cmd_ms'), ms);
// 'n/a' when no reload ran: [].every(...) is true, and a summary must not say 'yes' about
// nothing.
const replacedSummary = (tool) => {
  const seen = [...(values.get(`reload.${tool}.keepalive.replaced`) || []), ...(values.get(`reload.${tool}.close.replaced`) || [])];
  if (seen.length === 0) return 'n/a';
  return seen.every((x) => x === 'yes') ? 'yes' : 'NO';
};
rows.push(['  every worker replaced', replacedSummary('muster'), replacedSummary('pm2'), '', '']);

section(`Log burst (${lines} lines, console.log as fast as it goes)`);
row('  lines lost', median('burst.muster.lost'), median('burst.pm2.lost'), count, {
  ratio: false,
  target: [0, '= 0'],
});
row('  CPU of the tool\'s processes', median('burst.muster.cpu_ms'), median('burst.pm2.cpu_ms'), ms);
row('  until the last line was in the file', median('burst.muster.drain_ms'), median('burst.pm2.drain_ms'), ms);

const head = ['figure', 'muster', 'pm2', 'pm2 ÷ muster', 'muster target'];
const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => [...r[i]].length)));
const pad = (s, w, right) => (right ? s.padStart(w) : s.padEnd(w));
const fmtRow = (r) => r.map((c, i) => pad(c, widths[i], i > 0 && i < 4)).join('  ').trimEnd();
const out = [];
out.push(`command: ${text('meta.cmdline')}`);
out.push(`muster:  ${text('meta.muster')}`);
out.push(`pm2:     ${text('meta.pm2')}; node ${text('meta.node')}; timer: ${text('meta.timer')}`);
out.push(`load:    before:${text('meta.uptime_before').replace(/.*load/, ' load')}`);
out.push(`         after: ${text('meta.uptime_after').replace(/.*load/, ' load')}`);
out.push('');
// The two-tool table only when one of its phases ran (`--only list,idle` runs none of them).
const twoTool = [...values.keys()].some((k) => /^(mem|list|start|stop|kill|reload|burst|startmany|deletemany)\./.test(k));
if (twoTool) {
  out.push(fmtRow(head));
  out.push(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) out.push(fmtRow(r));
}
console.log(out.join('\n'));

// The three-tool phases (list, idle): muster, OxMgr and pm2 side by side, with the ratios the
// targets are about.
if ([...values.keys()].some((k) => k.startsWith('list3.') || k.startsWith('idle.'))) {
  const rows3 = [];
  const r3 = (figure, m, o, p, fmt, target) => {
    let verdict = '';
    if (target && m != null) verdict = target[0] == null ? 'n/a' : m <= target[0] ? 'ok' : 'MISS';
    rows3.push([figure, fmt(m), fmt(o), fmt(p), ratio(m, o), ratio(m, p), target ? `${target[1]} ${verdict}` : '']);
  };
  const x = (v) => (v == null ? 'n/a' : `${v.toFixed(2)}×`);
  const ladder = [...new Set([1, 10, apps])];
  rows3.push(['`list`, whole command, median (table | --json / jlist)', '', '', '', '', '', '']);
  for (const n of ladder) {
    const apps_ = `${n} app${n > 1 ? 's' : ''}`;
    const ox = median(`list3.oxmgr.${n}`);
    r3(`  ${apps_}: list | list | ls`, median(`list3.muster.${n}`), ox, median(`list3.pm2.${n}`), ms,
      n === apps ? [ox, '≤ OxMgr\'s'] : undefined);
    r3(`  ${apps_}: list --json | list --json | jlist`, median(`list3.muster_json.${n}`), median(`list3.oxmgr_json.${n}`), median(`list3.pm2_json.${n}`), ms);
  }
  const growth = (k) => {
    const a = median(`${k}.1`);
    const b = median(`${k}.${apps}`);
    return a == null || b == null || a === 0 ? null : b / a;
  };
  rows3.push([`  list at ${apps} ÷ list at 1 (table)`, x(growth('list3.muster')), x(growth('list3.oxmgr')), x(growth('list3.pm2')), '', '',
    growth('list3.muster') == null ? '' : `≤ 1.50× ${growth('list3.muster') <= 1.5 ? 'ok' : 'MISS'}`]);
  rows3.push([`  list at ${apps} ÷ list at 1 (--json)`, x(growth('list3.muster_json')), x(growth('list3.oxmgr_json')), x(growth('list3.pm2_json')), '', '',
    growth('list3.muster_json') == null ? '' : `≤ 1.50× ${growth('list3.muster_json') <= 1.5 ? 'ok' : 'MISS'}`]);
  if (values.has('idle.secs')) {
    rows3.push([`Idle: ${apps} sleep apps, the tool's own processes, per minute (window ${Number(text('idle.secs')).toFixed(1)} s)`, '', '', '', '', '', '']);
    rows3.push(['  processes measured', text('idle.muster.procs'), text('idle.oxmgr.procs'), text('idle.pm2.procs'), '', '', '']);
    r3('  CPU (utime+stime, clock ticks)', median('idle.muster.cpu_ms'), median('idle.oxmgr.cpu_ms'), median('idle.pm2.cpu_ms'), ms, [30, '≤ 30 ms']);
    r3('  time on a CPU (schedstat, every thread)', median('idle.muster.run_ms'), median('idle.oxmgr.run_ms'), median('idle.pm2.run_ms'), ms, [30, '≤ 30 ms']);
    r3('  wake-ups (times scheduled in)', median('idle.muster.wakeups'), median('idle.oxmgr.wakeups'), median('idle.pm2.wakeups'), count);
  }
  const head3 = ['figure', 'muster', 'OxMgr', 'pm2', 'OxMgr ÷ muster', 'pm2 ÷ muster', 'muster target'];
  const w3 = head3.map((h, i) => Math.max(h.length, ...rows3.map((r) => [...r[i]].length)));
  const fmt3 = (r) => r.map((c, i) => (i > 0 && i < 6 ? c.padStart(w3[i]) : c.padEnd(w3[i]))).join('  ').trimEnd();
  console.log('');
  console.log(`oxmgr:   ${text('meta.oxmgr')}`);
  console.log('');
  console.log(fmt3(head3));
  console.log(w3.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows3) console.log(fmt3(r));
}

if (flags.includes('--json')) {
  const obj = {};
  for (const [k, v] of values) obj[k] = v.length === 1 ? v[0] : v;
  console.log(JSON.stringify(obj));
}
