// Preloaded by muster into Node cluster workers (NODE_OPTIONS=--require): a graceful drain
// that loses no keep-alive request.
//
// When the primary tells a cluster worker to disconnect, Node closes the worker's servers, and
// an HTTP server's close() (Node 19+) first destroys every keep-alive connection that sits idle
// between two requests. A client that sent its next request at that moment gets a reset. Here,
// once the server drains, each connection is answered with `Connection: close` on its next
// response instead (so it ends at a response boundary), and connections still idle after a
// short grace period are closed then. Node 18's close() does not close idle connections
// itself, so the drain also starts from close().
'use strict';
const http = require('http');
const GRACE_MS = 1000;
const closeIdle = http.Server.prototype.closeIdleConnections;
if (typeof closeIdle === 'function') {
  http.Server.prototype.closeIdleConnections = function musterDrain() {
    if (this.musterDraining) return;
    this.musterDraining = true;
    this.prependListener('request', (req, res) => res.setHeader('Connection', 'close'));
    setTimeout(() => closeIdle.call(this), GRACE_MS).unref();
  };
  // Node 18's close() only stops accepting: busy keep-alive connections would be served
  // (keep-alive) until the stop signal cut them mid-request. Draining from close() there too;
  // on Node 19+, close() calls closeIdleConnections itself, and the drain runs once.
  const close = http.Server.prototype.close;
  http.Server.prototype.close = function musterClose(...args) {
    this.closeIdleConnections();
    return close.apply(this, args);
  };
}
