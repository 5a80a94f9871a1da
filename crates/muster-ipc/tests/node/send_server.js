'use strict';
// Child -> parent handle fixture for tests/node.rs.
//
// Listens on 127.0.0.1 (any port), sends the net.Server to the parent, and right after that,
// in the same tick, sends another message. Node holds that second message in its handle queue
// until the parent answers NODE_HANDLE_ACK; `queuedBehindHandle` reports (from Node's
// internal `process._handleQueue`) that it really was queued behind the handle.

const net = require('net');

const server = net.createServer((s) => s.destroy());
server.listen(0, '127.0.0.1', () => {
  const port = server.address().port;
  process.send({ op: 'server', port }, server);
  const queuedBehindHandle = Array.isArray(process._handleQueue);
  process.send({ op: 'after', port, queuedBehindHandle });
});

process.on('message', () => {});
process.on('disconnect', () => server.close());
