'use strict';
// Handle fixture for tests/node.rs: receives sockets from the Rust parent and uses them.
//
//   {op:'serve-http'} + net.Server    -> serves HTTP on it, answers {op:'ready', ...}
//   {op:'take-socket'} + net.Socket   -> writes a greeting, echoes what it reads, ends on end
//   {op:'take-udp'} + dgram.Socket    -> echoes every datagram with an "echo:" prefix
//   {op:'note'}                       -> answers {op:'noted'}
// Every answer carries the request's `seq` and the kind of handle that came with it.
// On 'disconnect' everything is closed so the child can exit 0.

const net = require('net');
const dgram = require('dgram');
const http = require('http');

const held = [];

function kindOf(h) {
  if (h === undefined || h === null) return null;
  if (h instanceof net.Server) return 'net.Server';
  if (h instanceof net.Socket) return 'net.Socket';
  if (h instanceof dgram.Socket) return 'dgram.Socket';
  return `other:${h.constructor && h.constructor.name}`;
}

process.on('message', (m, handle) => {
  const kind = kindOf(handle);
  if (handle) held.push(handle);
  const reply = { op: 'ready', seq: m.seq, kind };
  switch (m.op) {
    case 'serve-http': {
      const web = http.createServer((req, res) => {
        res.setHeader('Connection', 'close');
        res.end(`hello ${req.url} from node ${process.version} pid ${process.pid}\n`);
      });
      handle.on('connection', (s) => web.emit('connection', s));
      reply.port = handle.address().port;
      reply.listening = handle.listening;
      break;
    }
    case 'take-socket': {
      handle.on('data', (d) => handle.write(d));
      handle.on('end', () => handle.end());
      handle.on('error', () => {});
      handle.write(`hello from ${process.pid}\n`);
      reply.remotePort = handle.remotePort;
      break;
    }
    case 'take-udp': {
      handle.on('message', (d, rinfo) => {
        handle.send(Buffer.concat([Buffer.from('echo:'), d]), rinfo.port, rinfo.address);
      });
      reply.port = handle.address().port;
      break;
    }
    case 'note':
      reply.op = 'noted';
      break;
    default:
      reply.op = 'error';
      reply.error = `unknown op ${JSON.stringify(m.op)}`;
  }
  process.send(reply);
});

process.on('disconnect', () => {
  for (const h of held) {
    if (h instanceof net.Socket) h.destroy();
    else h.close();
  }
});
