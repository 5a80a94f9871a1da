'use strict';
// Counting child for the one-way case: counts `{"seq":n}` messages and, on `{"done":true}`,
// answers `{"count":c}` with the number it received since the last answer.
let count = 0;
process.on('message', (m) => {
  if (m.done === true) {
    process.send({ count });
    count = 0;
  } else {
    count += 1;
  }
});
