'use strict';
// For tests/node.rs: the parent sends a handle and at once drops every sender. Reports on
// stdout (the channel is gone by then) whether the handle's message was still delivered, and
// in which order relative to 'disconnect'.

process.on('message', (m, handle) => {
  const kind = handle ? handle.constructor.name : 'none';
  process.stdout.write(`message ${m.op} ${kind}\n`);
  if (handle) handle.close();
});
process.on('disconnect', () => process.stdout.write('disconnect\n'));
