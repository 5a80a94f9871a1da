'use strict';
// Child -> parent split fixture for tests/node.rs.
//
// On {op:'split', text, cuts} it builds the frame JSON.stringify({op, text}) + LF and writes it
// straight onto the channel descriptor (CHAN_FD) in pieces cut at the given byte offsets. After
// each piece it prints "piece <i>" on stdout and writes the next one only when a line arrives on
// stdin, so the parent decides when each piece goes out (after it has read the previous one).

const fs = require('fs');

const fd = Number(process.env.CHAN_FD);
if (!Number.isInteger(fd) || fd < 0) throw new Error(`CHAN_FD not set: ${process.env.CHAN_FD}`);

function writeAll(buf) {
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(fd, buf, off, buf.length - off);
    } catch (e) {
      if (e.code !== 'EAGAIN') throw e;
    }
  }
}

process.on('message', (m) => {
  if (m.op !== 'split') return;
  const bytes = Buffer.from(JSON.stringify({ op: 'split', text: m.text }) + '\n', 'utf8');
  for (const c of m.cuts) {
    if ((bytes[c] & 0xc0) !== 0x80) {
      process.send({ op: 'error', error: `cut ${c} is not inside a UTF-8 character` });
      return;
    }
  }
  const bounds = [0, ...m.cuts, bytes.length];
  let i = 0;
  const next = () => {
    writeAll(bytes.subarray(bounds[i], bounds[i + 1]));
    process.stdout.write(`piece ${i}\n`);
    i += 1;
    if (i === bounds.length - 1) process.stdin.destroy();
  };
  let pending = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (d) => {
    pending += d;
    let nl;
    while ((nl = pending.indexOf('\n')) >= 0 && i < bounds.length - 1) {
      pending = pending.slice(nl + 1);
      next();
    }
  });
  next();
});
