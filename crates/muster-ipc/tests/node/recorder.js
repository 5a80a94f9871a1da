'use strict';
// Recorder fixture for tests/node.rs: remembers every user message ('message') and every
// internal one ('internalMessage', Node's private event for NODE_* commands) and reports both
// lists on {op:'report'}.

const user = [];
const internal = [];

process.on('internalMessage', (m) => internal.push(m));
process.on('message', (m) => {
  if (m !== null && typeof m === 'object' && m.op === 'report') {
    process.send({ op: 'report', user, internal });
    return;
  }
  user.push(m);
});
