// A worker with a bug at start-up: it dies before it ever serves.
console.log(`worker ${process.pid} starting`);
throw new Error('cannot read the config');
