'use strict';
// Lifetime fixture for tests/node.rs.
//
// The exit code starts at 3 and becomes 0 only when the 'disconnect' event fires, so "exit 0"
// proves the child saw the channel close. Says hello first; on {op:'disconnect-yourself'} it
// answers {op:'bye'} and calls process.disconnect() once that message is written.

process.exitCode = 3;
process.on('disconnect', () => {
  process.exitCode = 0;
});
process.on('message', (m) => {
  if (m.op === 'disconnect-yourself') {
    process.send({ op: 'bye' }, () => process.disconnect());
  }
});
process.send({ op: 'hello', pid: process.pid });
