// Log burst: waits until the file named by the second argument exists (so the measuring side
// can take its "before" figures first), then prints N lines (first argument, default 200000) to
// stdout as fast as console.log goes, then stays idle (exiting would make the tool restart it
// and print the burst again).
//
//   node burst.js 200000 /tmp/go
const fs = require('fs');
const lines = Number(process.argv[2] || 200000);
const trigger = process.argv[3];

function burst() {
  for (let i = 1; i <= lines; i++) {
    console.log(`burst line ${String(i).padStart(7, '0')} of ${lines}`);
  }
  console.error(`burst: printed ${lines} lines`);
  setInterval(() => {}, 1 << 30);
}

if (!trigger) {
  burst();
} else {
  const poll = setInterval(() => {
    if (fs.existsSync(trigger)) {
      clearInterval(poll);
      burst();
    }
  }, 5);
}
