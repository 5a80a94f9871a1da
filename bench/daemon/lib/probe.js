#!/usr/bin/env node
// Measuring helpers for bench/daemon/run.sh. Every wait is bounded; every result is one line of
// JSON (or plain words) on stdout. Tool-agnostic: it only runs commands, polls HTTP on
// 127.0.0.1 and reads JSON the tools print.
//
//   probe.js free-port START                     first port >= START nothing is bound to
//   probe.js wait-200 PORT TIMEOUT_MS            until GET / answers 200
//   probe.js start-until-200 PORT TIMEOUT_MS LOG -- CMD ARGS...
//                                                run CMD; time to the first 200 on PORT, and
//                                                to CMD's exit (its output goes to LOG)
//   probe.js kill-until-new PORT TIMEOUT_MS      GET / names the pid that answers; SIGKILL it,
//                                                time until another pid answers 200
//   probe.js time-cmd RUNS WARMUP -- CMD ARGS... wall time of CMD (no shell), median etc.
//                                                (the fallback when hyperfine is missing)
//   probe.js muster-pids < list.json             supervisor pids of `muster list --json`
//   probe.js muster-daemon-pid < ping.json       the daemon's pid from `muster ping --json`
//   probe.js muster-app NAME FIELD < list.json   FIELD: out_log, pids (workers'), supervisor,
//                                                status
//   probe.js pm2-app NAME FIELD < jlist.json     FIELD: out_log, pids, status
//   probe.js count-online TOOL < list.json       apps whose every worker is online
//   probe.js worker-pids TOOL < list.json        every app process's pid (muster's workers,
//                                                pm2's processes)
//   probe.js count-lines FILE EXPECTED TIMEOUT_MS [TRIGGER]
//                                                create TRIGGER (burst.js waits for it), then
//                                                wait until FILE has EXPECTED lines (or no
//                                                growth for 5 s, or the deadline); prints the
//                                                lines and when the last of them arrived
'use strict';
const http = require('http');
const net = require('net');
const fs = require('fs');
const { spawn, spawnSync } = require('child_process');

const now = () => Number(process.hrtime.bigint()) / 1e6; // ms
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const POLL_MS = 5;

function die(msg) {
  process.stderr.write(`probe.js: ${msg}\n`);
  process.exit(2);
}

// One GET / on a fresh connection: {status, body} or null (refused, reset, timed out).
function get(port, timeoutMs = 1000) {
  return new Promise((resolve) => {
    const req = http.get(
      { host: '127.0.0.1', port, path: '/', agent: false, timeout: timeoutMs },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode, body }));
        res.on('error', () => resolve(null));
      },
    );
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
  });
}

const pidOf = (body) => {
  const m = /hello from (\d+)/.exec(body || '');
  return m ? Number(m[1]) : null;
};

async function waitFor200(port, deadline, accept = () => true) {
  while (now() < deadline) {
    const r = await get(port, Math.max(50, Math.min(1000, deadline - now())));
    if (r && r.status === 200 && accept(r)) return r;
    await sleep(POLL_MS);
  }
  return null;
}

function readStdin() {
  return fs.readFileSync(0, 'utf8');
}

// pm2 may print a banner or warnings before the JSON: take the first line that parses.
function parseJsonLoose(text) {
  try {
    return JSON.parse(text);
  } catch {
    for (const line of text.split('\n')) {
      const t = line.trim();
      if (!t.startsWith('{') && !t.startsWith('[')) continue;
      try {
        return JSON.parse(t);
      } catch {}
    }
  }
  die('no JSON on stdin');
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? null : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

function afterDashes(args) {
  const i = args.indexOf('--');
  if (i < 0 || i === args.length - 1) die('expected -- CMD ARGS...');
  return [args.slice(0, i), args.slice(i + 1)];
}

const commands = {
  async 'free-port'([start]) {
    for (let p = Number(start); p < Number(start) + 200; p++) {
      const free = await new Promise((resolve) => {
        const s = net.createServer();
        s.once('error', () => resolve(false));
        s.listen(p, '127.0.0.1', () => s.close(() => resolve(true)));
      });
      if (free && !(await get(p, 200))) return console.log(p);
    }
    die(`no free port from ${start}`);
  },

  async 'wait-200'([port, timeout]) {
    const t0 = now();
    const r = await waitFor200(Number(port), t0 + Number(timeout));
    if (!r) die(`nothing answered 200 on 127.0.0.1:${port} within ${timeout} ms`);
    console.log(JSON.stringify({ ms: now() - t0, pid: pidOf(r.body) }));
  },

  async 'start-until-200'(args) {
    const [[port, timeout, log], cmd] = afterDashes(args);
    if (await get(Number(port), 200)) die(`something already answers on port ${port}`);
    const out = fs.openSync(log, 'a');
    const t0 = now();
    const deadline = t0 + Number(timeout);
    const child = spawn(cmd[0], cmd.slice(1), { stdio: ['ignore', out, out] });
    let cliMs = null;
    let cliRc = null;
    const exited = new Promise((resolve) =>
      child.on('exit', (code, sig) => {
        cliMs = now() - t0;
        cliRc = code ?? `signal ${sig}`;
        resolve();
      }),
    );
    child.on('error', (e) => die(`${cmd[0]}: ${e.message}`));
    const r = await waitFor200(Number(port), deadline);
    const to200 = r ? now() - t0 : null;
    // The CLI may return before or after the port answers; give it the rest of the deadline.
    await Promise.race([exited, sleep(Math.max(0, deadline - now()))]);
    if (cliMs === null) child.kill('SIGKILL');
    console.log(JSON.stringify({ to200_ms: to200, cli_ms: cliMs, cli_rc: cliRc }));
    if (!r) process.exit(1);
  },

  async 'kill-until-new'([port, timeout]) {
    const p = Number(port);
    const first = await waitFor200(p, now() + 5000);
    const old = first && pidOf(first.body);
    if (!old) die(`no pid-naming answer on port ${p}`);
    const t0 = now();
    process.kill(old, 'SIGKILL');
    const r = await waitFor200(p, t0 + Number(timeout), (res) => {
      const pid = pidOf(res.body);
      return pid !== null && pid !== old;
    });
    if (!r) die(`no new pid answered on port ${p} within ${timeout} ms of killing ${old}`);
    console.log(JSON.stringify({ ms: now() - t0, old, new: pidOf(r.body) }));
  },

  async 'time-cmd'(args) {
    const [[runs, warmup], cmd] = afterDashes(args);
    const times = [];
    for (let i = 0; i < Number(warmup) + Number(runs); i++) {
      const t0 = now();
      const r = spawnSync(cmd[0], cmd.slice(1), { stdio: 'ignore', timeout: 60000 });
      const ms = now() - t0;
      if (r.status !== 0) die(`${cmd.join(' ')} failed (${r.status ?? r.signal})`);
      if (i >= Number(warmup)) times.push(ms);
    }
    console.log(
      JSON.stringify({
        median_ms: median(times),
        min_ms: Math.min(...times),
        max_ms: Math.max(...times),
        runs: times.length,
      }),
    );
  },

  async 'muster-pids'() {
    const list = parseJsonLoose(readStdin());
    console.log(
      (list.apps || [])
        .map((a) => a.supervisor_pid)
        .filter(Boolean)
        .join(' '),
    );
  },

  async 'muster-daemon-pid'() {
    const pong = parseJsonLoose(readStdin());
    if (!pong.pid) die('the muster daemon is not running');
    console.log(pong.pid);
  },

  async 'muster-app'([name, field]) {
    const list = parseJsonLoose(readStdin());
    const app = (list.apps || []).find((a) => a.name === name);
    if (!app) die(`no muster app ${name}`);
    if (field === 'out_log') return console.log(app.out_log);
    if (field === 'supervisor') return console.log(app.supervisor_pid || '');
    if (field === 'status') return console.log(app.status);
    if (field === 'pids') {
      return console.log(
        app.workers
          .map((w) => w.pid)
          .filter(Boolean)
          .sort((a, b) => a - b)
          .join(' '),
      );
    }
    die(`unknown field ${field}`);
  },

  async 'pm2-app'([name, field]) {
    const procs = parseJsonLoose(readStdin()).filter((a) => a.name === name);
    if (procs.length === 0) die(`no pm2 app ${name}`);
    if (field === 'out_log') return console.log(procs[0].pm2_env.pm_out_log_path);
    if (field === 'status') return console.log(procs.map((p) => p.pm2_env.status).join(' '));
    if (field === 'pids') {
      return console.log(
        procs
          .map((p) => p.pid)
          .filter(Boolean)
          .sort((a, b) => a - b)
          .join(' '),
      );
    }
    die(`unknown field ${field}`);
  },

  async 'worker-pids'([tool]) {
    const list = parseJsonLoose(readStdin());
    const pids =
      tool === 'muster'
        ? (list.apps || []).flatMap((a) => a.workers.map((w) => w.pid))
        : list.map((p) => p.pid);
    console.log(pids.filter(Boolean).join(' '));
  },

  // Apps (muster) or processes (pm2, OxMgr) that are up: muster's "online", pm2's "online"
  // with a pid, OxMgr's "running" with a pid (`oxmgr list --json`).
  async 'count-online'([tool]) {
    const list = parseJsonLoose(readStdin());
    const n =
      tool === 'muster'
        ? (list.apps || []).filter((a) => a.status === 'online').length
        : tool === 'oxmgr'
          ? list.filter((p) => p.status === 'running' && p.pid).length
          : list.filter((p) => p.pm2_env.status === 'online' && p.pid).length;
    console.log(n);
  },

  async 'count-lines'([file, expected, timeout, trigger]) {
    const want = Number(expected);
    const t0 = now();
    if (trigger) fs.writeFileSync(trigger, 'go\n');
    const deadline = t0 + Number(timeout);
    let count = 0;
    let size = -1;
    let lastGrowth = t0;
    for (;;) {
      let st = null;
      try {
        st = fs.statSync(file);
      } catch {}
      if (st && st.size !== size) {
        size = st.size;
        const text = fs.readFileSync(file, 'latin1');
        count = 0;
        for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) count++;
        lastGrowth = now();
      }
      if (count >= want || now() > deadline || now() - lastGrowth > 5000) break;
      await sleep(20);
    }
    console.log(JSON.stringify({ lines: count, last_growth_ms: lastGrowth - t0 }));
  },
};

const [cmd, ...rest] = process.argv.slice(2);
if (!commands[cmd]) die(`unknown command ${cmd}; see the top of this file`);
// Exit as soon as the command is done: a pending deadline timer must not keep node alive.
// (stdout is a pipe or a file here, written synchronously on Linux.)
commands[cmd](rest).then(
  () => process.exit(process.exitCode ?? 0),
  (e) => die(e.stack || String(e)),
);
