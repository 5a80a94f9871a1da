'use strict';
// Garbage fixture for tests/node.rs: writes bad lines straight onto the channel descriptor
// (its number comes in CHAN_FD, since Node deletes NODE_CHANNEL_FD at bootstrap) between good
// messages. Each raw write happens only after the previous process.send() has completed, so
// the order on the wire is exactly the order below.

const fs = require('fs');

const fd = Number(process.env.CHAN_FD);
if (!Number.isInteger(fd) || fd < 0) throw new Error(`CHAN_FD not set: ${process.env.CHAN_FD}`);

const send = (m) =>
  new Promise((resolve, reject) => process.send(m, (err) => (err ? reject(err) : resolve())));

function raw(data) {
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data, 'utf8');
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(fd, buf, off, buf.length - off);
    } catch (e) {
      if (e.code !== 'EAGAIN') throw e; // the channel is non-blocking; these lines are tiny
    }
  }
}

async function go() {
  await send({ good: 1 });
  raw('garbage\n'); // not JSON
  await send({ good: 2 });
  raw('\n'); // empty line (would kill a Node reader)
  await send({ good: 3 });
  raw(Buffer.from([0xff, 0xfe, 0x0a])); // not UTF-8
  await send({ good: 4 });
  raw('{"unterminated":\n'); // truncated JSON
  await send({ good: 5 });
  await send({ s: 'lone \ud800 surrogate' }); // Node writes "\ud800", serde_json refuses it
  await send({ good: 6 });
  raw('}{\n');
  await send({ good: 7 });
}

process.on('message', (m) => {
  if (m.op === 'go') {
    go().then(
      () => process.send({ op: 'done' }),
      (e) => process.send({ op: 'error', error: String(e) }),
    );
  } else if (m.op === 'ping') {
    process.send({ op: 'pong', n: m.n });
  }
});
