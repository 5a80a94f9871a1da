// A worker that never calls listen(): the listening socket arrives as the handle of a
// message, the way child_process hands a net.Server to a child.
process.on('message', (msg, server) => {
  if (msg !== 'server') return;
  server.on('connection', (socket) => socket.end('child ' + process.pid + '\n'));
});
