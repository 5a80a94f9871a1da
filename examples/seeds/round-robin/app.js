// An ordinary cluster HTTP server that says which worker answered. How connections are spread
// over the workers is the primary's business: Node's cluster.schedulingPolicy (or
// NODE_CLUSTER_SCHED_POLICY) when Node is the primary, `--schedule` under muster.
const cluster = require('cluster');
const http = require('http');
const os = require('os');

const PORT = Number(process.env.PORT) || 20106;

if (cluster.isMaster) {
  for (let i = 0; i < os.cpus().length; i++) cluster.fork();
} else {
  http
    .createServer((req, res) => {
      console.log(`worker ${cluster.worker.id} got ${req.url}`);
      res.end(`${cluster.worker.id}\n`);
    })
    .listen(PORT, '127.0.0.1');
}
