// A plain HTTP server. Under muster every worker runs this file; the port is shared.
const http = require('http');

const port = Number(process.env.PORT) || 20102;

http
  .createServer((req, res) => res.end('served by ' + process.pid + '\n'))
  .listen(port, '127.0.0.1', () => console.log(`worker ${process.pid} listening on ${port}`));
