// Seeded random fuzzing of the native decoders (decodeHeader, decodeLazy, decodeFrames), meant
// to run under AddressSanitizer or valgrind (see native/README.md). The corpus is frames written
// by the real client libraries (sofa-bolt-node, apache-dubbo-js, hessian.js 1.x/2.x); each input
// is a mutation of one, copied into a buffer of exactly its own size so that any read past its
// end hits a redzone. Crashes are the failure mode; results are only sanity-checked.
//
// usage: node native/tools/codec-fuzz.mjs [iterations=1000000] [seed=1]
// Prints "codec-fuzz: ok <n> inputs" and exits 0.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const b = require('../../build/Release/strait_native.node');
const boltProtocol = require('sofa-bolt-node/lib/protocol');
const boltHessian = require('sofa-bolt-node/lib/codec/hessian');
const DubboEncoder = require('apache-dubbo-js/es7/encode.js').default;
const hessianFinal = require('hessian.js');
const hessianDraft = require('hessian.js-1');

const iterations = Number(process.argv[2] ?? 1_000_000);
let seed = Number(process.argv[3] ?? 1) >>> 0;
const BOLT = 1;
const DUBBO = 2;
const SIZE = 19; // H.SIZE
const STATE = 0;
const KIND = 2;

function rand() {
  // mulberry32
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (a) => a[Math.floor(rand() * a.length)];

// ---- corpus ----
const boltOpts = { protocolType: 'bolt', codecType: 'hessian2', boltVersion: 1, crcEnable: false };
const boltReq = (id, opts = {}, over = {}) =>
  Buffer.from(
    boltProtocol.requestEncode(
      id,
      {
        serverSignature: 'com.example.UserService:1.0',
        methodName: 'hello',
        args: [{ $class: 'java.lang.String', $: 'x' }, 3, { $class: 'java.util.Map', $: { k: [1, 2] } }],
        timeout: 3000,
        targetAppName: 'app',
        requestProps: { a: 'b' },
        ...over,
      },
      Object.create({ ...boltOpts, ...opts }),
    ),
  );
function javaOrdered(dialect) {
  const enc = new (dialect === 'final' ? hessianFinal : hessianDraft).EncoderV2();
  enc.write({
    $class: 'com.alipay.sofa.rpc.core.request.SofaRequest',
    $: {
      targetServiceUniqueName: 'com.example.UserService:1.0',
      methodArgSigs: { $class: '[java.lang.String', $: ['java.lang.String'] },
      requestProps: { $class: 'java.util.HashMap', $: { k: 'v', l: [1.5, -7, 'x', null, true] } },
      methodName: 'queryUserAccountBalanceByUserIdAndCurrency',
    },
  });
  enc.write('x');
  const content = enc.get();
  const frame = boltReq(1);
  const at = 22 + frame.readUInt16BE(14) + frame.readUInt16BE(16);
  const out = Buffer.concat([frame.subarray(0, at), content]);
  out.writeUInt32BE(content.length, 18);
  return out;
}
const dubboReq = (id, over = {}) =>
  new DubboEncoder({
    requestId: id,
    dubboVersion: '2.0.2',
    dubboInterface: 'com.example.UserService',
    path: 'com.example.UserService',
    version: '1.0.0',
    methodName: 'hello',
    group: 'g1',
    timeout: 3000,
    application: { name: 'app' },
    attachments: { k: 'v' },
    methodArgs: [
      { $class: 'java.lang.String', $: 'x' },
      { $class: 'com.example.Req', $: { a: 1, b: 'bb', c: [1, 2, 3], d: { $class: 'com.example.Inner', $: { z: null } } } },
      { $class: 'long', $: 1234567890123 },
      { $class: 'double', $: 123456.789 },
      { $class: 'java.util.Map', $: { x: 1, y: [true, false] } },
      { $class: 'java.util.Date', $: new Date(1700000000000) },
      { $class: 'java.lang.String', $: 'héllo ✓ 𝄞' },
    ],
    ...over,
  }).encode();

boltHessian.setVersion('4.0');
const boltFinal = boltReq(2);
boltHessian.setVersion('3.0');
const corpus = [
  [BOLT, boltReq(1)],
  [BOLT, boltFinal],
  [BOLT, javaOrdered('final')],
  [BOLT, javaOrdered('draft')],
  [BOLT, boltReq(3, { protocolType: 'bolt2', boltVersion: 2, crcEnable: true })],
  [BOLT, Buffer.from(boltProtocol.responseEncode(1, { isError: false, appResponse: 'ok' }, Object.create(boltOpts)))],
  [BOLT, Buffer.from(boltProtocol.heartbeatEncode(9, {}, boltOpts))],
  [DUBBO, dubboReq(1)],
  [DUBBO, dubboReq(2, { group: undefined, methodArgs: [] })],
  [DUBBO, dubboReq(3, { methodArgs: [{ $class: 'java.lang.String', $: 'y'.repeat(33000) }] })],
];
const INTERESTING = [0x00, 0x01, 0x1f, 0x20, 0x30, 0x33, 0x34, 0x38, 0x3a, 0x41, 0x42, 0x43, 0x48, 0x49, 0x4d, 0x4e, 0x4f, 0x51, 0x52, 0x53, 0x55, 0x56, 0x57, 0x58, 0x5a, 0x60, 0x6e, 0x6f, 0x70, 0x73, 0x74, 0x75, 0x76, 0x78, 0x7a, 0x7f, 0x80, 0x90, 0xbf, 0xc0, 0xd0, 0xd8, 0xe0, 0xf0, 0xf8, 0xff];

function mutate(src) {
  let m = Buffer.from(src);
  const edits = 1 + Math.floor(rand() * 6);
  for (let e = 0; e < edits; e++) {
    const at = Math.floor(rand() * m.length);
    const op = rand();
    if (op < 0.4) m[at] = Math.floor(rand() * 256);
    else if (op < 0.75) m[at] = pick(INTERESTING);
    else if (op < 0.82) m = Buffer.concat([m.subarray(0, at), m.subarray(at + 1)]);
    else if (op < 0.89) m = Buffer.concat([m.subarray(0, at), Buffer.from([Math.floor(rand() * 256)]), m.subarray(at)]);
    else if (op < 0.95 && at + 4 <= m.length) m.writeUInt32BE(pick([0, 1, 0x7fffffff, 0x80000000, 0xffffffff, Math.floor(rand() * 65536)]), at);
    else m = m.subarray(0, at); // truncated
  }
  // Its own allocation, exactly this long: reading one byte past it is an ASan error.
  const exact = Buffer.allocUnsafeSlow(m.length);
  m.copy(exact);
  return exact;
}

// ---- run ----
const out = new Int32Array(SIZE);
const lazyOut = new Int32Array(SIZE);
const batch = new Int32Array(8 * SIZE);
let whole = 0;
let errors = 0;
for (let i = 0; i < iterations; i++) {
  const [proto, src] = corpus[i % corpus.length];
  const buf = mutate(src);
  b.decodeHeader(proto, buf, 0, buf.length, 1 << 24, out);
  const st = out[STATE];
  if (st < -5 || st > 1) throw new Error(`codec-fuzz: state ${st} at input ${i}`);
  if (st < 0) errors++;
  if (st === 1) {
    whole++;
    // decodeLazy trusts nothing in `out` beyond the buffer; also give it a stale copy sometimes.
    for (const field of [1, 2]) {
      lazyOut.set(out);
      if (rand() < 0.05) lazyOut[Math.floor(rand() * SIZE)] = Math.floor(rand() * 2 ** 32) | 0;
      b.decodeLazy(proto, buf, 0, lazyOut, field);
    }
  }
  if (i % 16 === 0) {
    const two = Buffer.concat([buf, buf]);
    const exact = Buffer.allocUnsafeSlow(two.length);
    two.copy(exact);
    const n = b.decodeFrames(proto, exact, 0, exact.length, 1 << 24, batch, 8);
    if (n > 8) throw new Error(`codec-fuzz: decodeFrames returned ${n}`);
  }
}
console.log(`codec-fuzz: ok ${iterations} inputs (${whole} whole frames, ${errors} decode errors)`);
