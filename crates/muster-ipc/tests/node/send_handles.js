'use strict';
// Child -> parent handles of every kind, for tests/node.rs.
//
//   {op:'socket'} -> opens a TCP connection to a server of its own and sends the accepted end
//                    (a net.Socket, so Node adds a `key`) after writing a line on the client
//                    end; what the parent writes back arrives as {op:'client-got', data}
//   {op:'udp'}    -> sends a bound udp4 dgram.Socket
//   {op:'big-server', reps} -> sends a listening net.Server with a 1 MiB message, then {op:'after'}

const net = require('net');
const dgram = require('dgram');

const keep = [];

process.on('message', (m) => {
  switch (m.op) {
    case 'socket': {
      // pauseOnConnect, as Node's docs advise for sockets that are sent on: otherwise the
      // accepted socket starts reading at once, and after process.send() its handle keeps
      // reading into a no-op until our ACK, so early bytes from the client would be lost.
      const server = net.createServer({ pauseOnConnect: true }, (conn) => {
        process.send({ op: 'socket', clientPort: client.localPort }, conn);
      });
      keep.push(server);
      let client;
      server.listen(0, '127.0.0.1', () => {
        client = net.connect(server.address().port, '127.0.0.1', () => {
          client.write('hello from the child\n');
        });
        keep.push(client);
        let got = '';
        client.setEncoding('utf8');
        client.on('data', (d) => {
          got += d;
          if (got.endsWith('\n')) process.send({ op: 'client-got', data: got });
        });
      });
      break;
    }
    case 'udp': {
      const sock = dgram.createSocket('udp4');
      keep.push(sock);
      sock.bind(0, '127.0.0.1', () => {
        process.send({ op: 'udp', port: sock.address().port }, sock);
      });
      break;
    }
    case 'big-server': {
      const server = net.createServer((s) => s.destroy());
      keep.push(server);
      server.listen(0, '127.0.0.1', () => {
        const port = server.address().port;
        process.send({ op: 'big-server', port, data: m.unit.repeat(m.reps) }, server);
        process.send({ op: 'after', port });
      });
      break;
    }
    default:
      process.send({ op: 'error', error: `unknown op ${JSON.stringify(m.op)}` });
  }
});

process.on('disconnect', () => {
  for (const h of keep) {
    if (h instanceof net.Socket) h.destroy();
    else h.close();
  }
});
