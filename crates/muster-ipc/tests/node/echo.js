'use strict';
// Echo fixture for tests/node.rs.
//
// Every user message is answered with `process.send(m)`, unchanged. Objects with a string
// `__ctl` field are control requests instead: they ask what the child saw, or make the child
// produce data of its own.

const seen = [];

function kind(m) {
  if (m === null) return 'null';
  if (Array.isArray(m)) return 'array';
  return typeof m;
}

// Non-ASCII text built from escapes in this file, compared byte for byte by the Rust side.
const SAY =
  '\u4f60\u597d\uff0c\u4e16\u754c ' + // 你好，世界
  '\ud83d\ude00\ud83d\udc4d\ud83c\udffd ' + // 😀👍🏽
  'e\u0301 Z\u0324\u0354\u0367 ' + // combining marks
  '\u0645\u0631\u062d\u0628\u0627 ' + // مرحبا
  '\u2028\u2029 \udbff\udfff'; // line/paragraph separators, U+10FFFF

function control(m) {
  switch (m.__ctl) {
    case 'seen':
      process.send({ __ctl: 'seen', seen });
      break;
    case 'measure':
      // How JS sees the strings it received: UTF-16 units, code points, UTF-8 bytes.
      process.send({
        __ctl: 'measure',
        strings: m.strings.map((s) => ({
          utf16: s.length,
          codePoints: [...s].length,
          utf8: Buffer.byteLength(s, 'utf8'),
        })),
      });
      break;
    case 'say':
      process.send({ __ctl: 'say', text: SAY, [SAY]: SAY });
      break;
    case 'big-check': {
      const expected = m.unit.repeat(m.reps);
      process.send({
        __ctl: 'big-check',
        ok: m.data === expected,
        utf16: m.data.length,
        utf8: Buffer.byteLength(m.data, 'utf8'),
      });
      break;
    }
    case 'big-make':
      process.send({ __ctl: 'big', data: m.unit.repeat(m.reps) });
      break;
    default:
      process.send({ __ctl: 'error', error: `unknown control ${JSON.stringify(m.__ctl)}` });
  }
}

process.on('message', (m) => {
  if (m !== null && typeof m === 'object' && !Array.isArray(m) && typeof m.__ctl === 'string') {
    control(m);
    return;
  }
  seen.push(kind(m));
  process.send(m);
});
