// An ordinary Node cluster program. Run with `node app.js`, its master branch forks the
// workers; run under `muster cluster`, muster is the primary and only the worker branch runs.
const cluster = require('cluster');
const http = require('http');
const os = require('os');

const PORT = Number(process.env.PORT) || 20105;

if (cluster.isMaster) {
  console.log(`[master] ${process.pid} forking ${os.cpus().length} workers`);
  for (let i = 0; i < os.cpus().length; i++) cluster.fork();

  cluster.on('listening', (worker, address) =>
    console.log(`[master] worker ${worker.id} (pid ${worker.process.pid}) listens on port ${address.port}`));
  cluster.on('exit', (worker, code, signal) =>
    console.log(`[master] worker ${worker.id} (pid ${worker.process.pid}) exited: ${signal || code}`));
} else {
  console.log(`[worker] ${cluster.worker.id} started, pid ${process.pid}`);
  http
    .createServer((req, res) => res.end(`worker ${cluster.worker.id}, pid ${process.pid}\n`))
    .listen(PORT);
}
