// Hello-world HTTP server on 127.0.0.1:<port> (first argument, or $PORT). The body names the
// process, so a client can tell a replacement from the worker it replaced.
const http = require('http');
const port = Number(process.argv[2] || process.env.PORT || 3000);
const body = `hello from ${process.pid}\n`;
http
  .createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  })
  .listen(port, '127.0.0.1');
