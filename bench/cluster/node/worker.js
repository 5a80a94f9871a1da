'use strict';
// The hello-world worker every Node case runs: muster rr/shared/reuseport and Node's own
// primary (node-primary.js) all start this same file.
const cluster = require('node:cluster');
const http = require('node:http');

const PORT = Number(process.env.PORT || 8080);
// The served-again probe (served-again.js) tells workers apart by the pid they answer.
const BODY = process.env.ANSWER_PID ? `${process.pid}\n` : 'hello\n';

if (cluster.isPrimary) {
  console.error('worker.js is a cluster worker: run it under `muster cluster` or node-primary.js');
  process.exit(2);
} else {
  http.createServer((q, s) => s.end(BODY)).listen(PORT, '127.0.0.1');
}
