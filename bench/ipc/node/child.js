'use strict';
// Echo child: every message goes straight back (round trips and the 1 MiB latency case).
process.on('message', (m) => process.send(m));
