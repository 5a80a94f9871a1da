'use strict';
// Node's own cluster primary for the comparison: forks WORKERS (default 2) workers of
// worker.js and replaces any that dies, like `muster cluster` does.
//
//   node node-primary.js rr|none
//
// Prints one line per event on stdout, with a wall-clock timestamp in ms (fractional):
//   listening <ms> <worker pid> <address>:<port>
//   disconnect <ms> <worker pid>     (its IPC channel closed; Node emits none for a worker
//                                     that was killed: its exit comes instead)
//   exit <ms> <worker pid> <code> <signal>
const cluster = require('node:cluster');
const path = require('node:path');
const { performance } = require('node:perf_hooks');

const policy = process.argv[2] || 'rr';
if (policy !== 'rr' && policy !== 'none') {
  console.error('usage: node node-primary.js rr|none');
  process.exit(2);
}
// Must be set before the first fork.
cluster.schedulingPolicy = policy === 'rr' ? cluster.SCHED_RR : cluster.SCHED_NONE;
cluster.setupPrimary({ exec: path.join(__dirname, 'worker.js') });

const now = () => (performance.timeOrigin + performance.now()).toFixed(3);
const n = Number(process.env.WORKERS || 2);
let stopping = false;

cluster.on('listening', (w, a) => {
  console.log(`listening ${now()} ${w.process.pid} ${a.address}:${a.port}`);
});
cluster.on('disconnect', (w) => {
  console.log(`disconnect ${now()} ${w.process.pid}`);
});
cluster.on('exit', (w, code, signal) => {
  console.log(`exit ${now()} ${w.process.pid} ${code} ${signal}`);
  if (!stopping) cluster.fork();
  else if (Object.keys(cluster.workers).length === 0) process.exit(0);
});

function stop() {
  if (stopping) return;
  stopping = true;
  if (Object.keys(cluster.workers).length === 0) process.exit(0);
  for (const w of Object.values(cluster.workers)) w.disconnect();
  setTimeout(() => process.exit(1), 5000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

for (let i = 0; i < n; i++) cluster.fork();
