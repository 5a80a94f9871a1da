// A worker that hands over when it hits a bug: it tells the primary it is going away, so a
// replacement starts at once, then stops accepting and leaves once its open requests are done.
const http = require('http');

const port = Number(process.env.PORT) || 20104;
const slowMs = Number(process.env.SLOW_MS) || 1000;

const server = http.createServer((req, res) => {
  if (req.url === '/slow') {
    // A request that takes a while: it must finish even if the worker is going away.
    setTimeout(() => res.end(`slow done by ${process.pid}\n`), slowMs);
  } else if (req.url === '/long') {
    // A long poll that never gets its answer: only the kill timeout ends it.
    res.write(`long poll held by ${process.pid}\n`);
  } else if (req.url === '/boom') {
    res.end(`boom from ${process.pid}\n`);
    throw new Error('a bug in the /boom handler');
  } else {
    res.end(`hello from ${process.pid}\n`);
  }
});
server.listen(port, '127.0.0.1');

process.on('uncaughtException', (err) => {
  console.log(`worker ${process.pid}: ${err.message}; handing over`);
  // 1. Ask for a replacement now, not after we are gone.
  process.send({ act: 'suicide' });
  // 2. Stop taking connections; exit once the open ones are finished.
  server.close(() => process.exit(1));
  // 3. Do not wait forever for them.
  setTimeout(() => process.exit(1), 5000);
});
