// Idle app: does nothing, forever (one timer keeps the event loop alive).
setInterval(() => {}, 1 << 30);
