// Seeded random fuzzing of the native HTTP/1.1 head parser (parseHttp1Head), meant to run under
// AddressSanitizer or valgrind (see native/README.md). Each input is a mutation of a realistic
// request or response head, copied into a buffer of exactly its own size so that any read past
// its end hits a redzone, and parsed whole, cut at a random point, and under tight limits.
// Crashes are the failure mode; the result slot is only sanity-checked.
//
// usage: node native/tools/http1-fuzz.mjs [iterations=1000000] [seed=1]
// Prints "http1-fuzz: ok <n> inputs" and exits 0.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { parseHttp1Head } = require('../../build/Release/strait_native.node');

const iterations = Number(process.argv[2] ?? 1_000_000);
let seed = Number(process.argv[3] ?? 1) >>> 0;

function rand() {
  // mulberry32
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (a) => a[Math.floor(rand() * a.length)];

const CORPUS = [
  [true, 'GET /api/v1/users/12345?fields=name HTTP/1.1\r\nHost: svc.example.com\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n'],
  [true, 'POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\nExpect: 100-continue\r\n\r\n'],
  [true, '\r\nPUT /x HTTP/1.0\nContent-Length: 5, 5\nConnection: Upgrade, close\nUpgrade: websocket\n\n'],
  [true, 'OPTIONS * HTTP/1.1\r\nHost: c\r\nTE: trailers\r\nKeep-Alive: 5\r\nProxy-Connection: x\r\nX-Empty:\r\n\r\n'],
  [false, 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 64\r\n\r\n'],
  [false, 'HTTP/1.0 204\nTransfer-Encoding: gzip\n\n'],
  [false, 'HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n'],
].map(([req, s]) => [req, Buffer.from(s, 'latin1')]);
const INTERESTING = [0x00, 0x09, 0x0a, 0x0d, 0x20, 0x2c, 0x30, 0x39, 0x3a, 0x48, 0x7f, 0x80, 0xa0, 0xff];

function mutate(src) {
  let b = Buffer.from(src);
  const edits = 1 + Math.floor(rand() * 4);
  for (let e = 0; e < edits; e++) {
    const at = Math.floor(rand() * b.length);
    const op = rand();
    if (op < 0.35) b[at] = Math.floor(rand() * 256);
    else if (op < 0.75) b[at] = pick(INTERESTING);
    else if (op < 0.88) b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1)]);
    else b = Buffer.concat([b.subarray(0, at), Buffer.from([pick(INTERESTING)]), b.subarray(at)]);
  }
  // Exactly its own size, outside Node's shared pool, so ASan's redzone follows the last byte.
  const exact = Buffer.from(new ArrayBuffer(b.length));
  b.copy(exact);
  return exact;
}

const out = new Int32Array(16 + 5 * 100);
let heads = 0;
for (let i = 0; i < iterations; i++) {
  const [req, src] = pick(CORPUS);
  const buf = mutate(src);
  for (const [end, maxHead, maxHeaders] of [
    [buf.length, 60 * 1024, 100],
    [Math.floor(rand() * (buf.length + 1)), 60 * 1024, 100],
    [buf.length, 1 + Math.floor(rand() * buf.length), 1 + Math.floor(rand() * 4)],
  ]) {
    parseHttp1Head(req, buf, 0, end, maxHead, maxHeaders, out);
    const r = out[0];
    if (r > end || r < -2) throw new Error(`result ${r} outside [-2, ${end}] for ${buf.toString('hex')}`);
    if (r > 0) heads++;
  }
}
console.log(`http1-fuzz: ok ${iterations} inputs (${heads} whole heads)`);
