// Native header decoding (native/codec/) against frames written by the real client libraries:
// sofa-bolt-node (the encoder under sofa-rpc-node) for Bolt, apache-dubbo-js's encoder and the
// hessian.js Dubbo provider fixture for Dubbo. Every frame is decoded natively and by the
// TypeScript codec; the slots must be equal, and equal to what the client was asked to send.
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { NativeLoadError } from '../../src/errors.js';
import { loadNative, NativeCodecProtocol, NativeLazyField } from '../../src/native.js';
import { boltCodec } from '../../src/protocols/bolt/codec.js';
import { dubboCodec } from '../../src/protocols/dubbo/codec.js';
import { decodeFrames, hasNativeDecoder, isBatchDecoder, nativeCodec } from '../../src/protocols/native_codec.js';
import { DecodeError, FrameKind, H, type LazyField, type RpcCodec } from '../../src/protocols/types.js';
import { rng } from '../helpers/rng.js';

const require = createRequire(import.meta.url);
const boltProtocol = require('sofa-bolt-node/lib/protocol');
const boltHessian = require('sofa-bolt-node/lib/codec/hessian');
const protobuf = require('protobufjs');
const DubboEncoder = require('apache-dubbo-js/es7/encode.js').default;
const DubboHeartBeat = require('apache-dubbo-js/es7/heartbeat.js').default;
const dubboProvider = require('../fixtures/rpc/dubbo_provider.cjs');
const hessianFinal = require('hessian.js');
const hessianDraft = require('hessian.js-1');

const nb = loadNative();
const nBolt = nativeCodec(boltCodec);
const nDubbo = nativeCodec(dubboCodec);
const MAX = 1 << 24;

// ---- frames ----

interface Expect {
  kind: number;
  id: number;
  idHi?: number;
  service?: string | null;
  version?: string | null;
  method?: string | null;
  /** What decodeLazy finds (method for Bolt when the header lacks it, group for Dubbo). */
  lazyMethod?: string;
  group?: string;
  app?: string | null;
  timeout?: number;
  status?: number;
  serialization: number;
}
interface Frame {
  name: string;
  buf: Buffer;
  ts: RpcCodec;
  nat: RpcCodec;
  expect: Expect;
}

const SERVICE = 'com.example.UserService';
const boltOpts = { protocolType: 'bolt', codecType: 'hessian2', boltVersion: 1, crcEnable: false };
const protoRoot = protobuf.parse(
  'syntax="proto3"; package com.example; message Req { string name = 1; } message Res { string msg = 1; } service UserService { rpc hello (Req) returns (Res); }',
).root;

function boltReq(id: number, opts: object, req: object = {}): Buffer {
  const r = {
    serverSignature: `${SERVICE}:1.0`,
    methodName: 'hello',
    args: [{ $class: 'java.lang.String', $: 'x' }, 3, { $class: 'java.util.Map', $: { k: 'v' } }],
    timeout: 3000,
    targetAppName: 'app',
    requestProps: { rpc_trace_context: { sofaTraceId: 'abc' } },
    ...req,
  };
  return Buffer.from(boltProtocol.requestEncode(id, r, Object.create({ ...boltOpts, ...opts })));
}

/** sofa-bolt-node writes SofaRequest in hessian "3.0" (SOFA's draft dialect) unless told "4.0". */
function withHessianVersion<T>(v: string, fn: () => T): T {
  boltHessian.setVersion(v);
  try {
    return fn();
  } finally {
    boltHessian.setVersion('3.0');
  }
}

/**
 * A SofaRequest in Java's field order (targetServiceUniqueName before methodName, as Java SOFA
 * clients write it), encoded by hessian.js (final 2.0) or hessian.js 1.x (SOFA's draft dialect),
 * as the content of a frame sofa-bolt-node wrote.
 */
function boltJavaOrdered(id: number, dialect: 'final' | 'draft', methodName: string): Buffer {
  const enc = new (dialect === 'final' ? hessianFinal : hessianDraft).EncoderV2();
  enc.write({
    $class: 'com.alipay.sofa.rpc.core.request.SofaRequest',
    $: {
      targetServiceUniqueName: `${SERVICE}:1.0`,
      methodArgSigs: { $class: '[java.lang.String', $: ['java.lang.String', 'int'] },
      requestProps: { $class: 'java.util.HashMap', $: { k: 'v', n: 1, l: [1, 'two'] } },
      targetAppName: null,
      methodName,
    },
  });
  enc.write('x');
  enc.write(3);
  const content: Buffer = enc.get();
  const frame = boltReq(id, {});
  const contentAt = 22 + frame.readUInt16BE(14) + frame.readUInt16BE(16);
  const out = Buffer.concat([frame.subarray(0, contentAt), content]);
  out.writeUInt32BE(content.length, 18);
  return out;
}

function boltFrames(): Frame[] {
  const f = (name: string, buf: Buffer, expect: Expect): Frame => ({ name: `bolt ${name}`, buf, ts: boltCodec, nat: nBolt, expect });
  const req = { kind: FrameKind.REQUEST, service: SERVICE, version: '1.0', method: null, lazyMethod: 'hello', app: null, timeout: 3000, status: 0, serialization: 1 };
  const v2crc = { protocolType: 'bolt2', boltVersion: 2, crcEnable: true };
  const v2 = { protocolType: 'bolt2', boltVersion: 1, crcEnable: false };
  return [
    f('v1 request (hessian draft)', boltReq(7, {}), { ...req, id: 7 }),
    f('v1 request (hessian 4.0)', withHessianVersion('4.0', () => boltReq(8, {})), { ...req, id: 8 }),
    f('v1 request, method not first field', withHessianVersion('4.0', () => boltReq(9, {}, { targetAppName: undefined, methodName: 'sayHelloWithALongerName' })), {
      ...req,
      id: 9,
      lazyMethod: 'sayHelloWithALongerName',
    }),
    f('v1 request, Java field order (final)', boltJavaOrdered(14, 'final', 'hello'), { ...req, id: 14 }),
    f('v1 request, Java field order (draft)', boltJavaOrdered(15, 'draft', 'hello'), { ...req, id: 15 }),
    // 42 characters: past the draft's short form, so written as 'S' + length.
    f('v1 request, long method name (final)', boltJavaOrdered(16, 'final', 'queryUserAccountBalanceByUserIdAndCurrency'), {
      ...req,
      id: 16,
      lazyMethod: 'queryUserAccountBalanceByUserIdAndCurrency',
    }),
    f('v1 request, long method name (draft)', boltJavaOrdered(17, 'draft', 'queryUserAccountBalanceByUserIdAndCurrency'), {
      ...req,
      id: 17,
      lazyMethod: 'queryUserAccountBalanceByUserIdAndCurrency',
    }),
    f('v1 oneway', boltReq(10, {}, { oneway: true }), { ...req, kind: FrameKind.ONEWAY, id: 10 }),
    f('v1 request, no args, id 2^31 (u32 on the wire)', boltReq(-0x80000000, {}, { args: [] }), { ...req, id: -0x80000000 }),
    f('v1 request, protobuf', boltReq(11, { codecType: 'protobuf', proto: protoRoot }, { args: [{ name: 'n' }] }), {
      ...req,
      id: 11,
      method: 'hello',
      lazyMethod: undefined,
      app: 'app',
      serialization: 11,
    }),
    f('v2 request with CRC', boltReq(12, v2crc), { ...req, id: 12 }),
    f('v2 request', boltReq(13, v2), { ...req, id: 13 }),
    f('v1 response', Buffer.from(boltProtocol.responseEncode(7, { isError: false, appResponse: 'ok' }, Object.create(boltOpts))), {
      kind: FrameKind.RESPONSE,
      id: 7,
      status: 0,
      timeout: 0,
      serialization: 1,
    }),
    f('v1 error response', Buffer.from(boltProtocol.responseEncode(8, { isError: true, errorMsg: 'boom' }, Object.create(boltOpts))), {
      kind: FrameKind.RESPONSE,
      id: 8,
      status: 2,
      timeout: 0,
      serialization: 1,
    }),
    f('v2 response with CRC', Buffer.from(boltProtocol.responseEncode(12, { isError: false, appResponse: { $class: 'java.lang.String', $: 'ok' } }, Object.create({ ...boltOpts, ...v2crc }))), {
      kind: FrameKind.RESPONSE,
      id: 12,
      status: 0,
      timeout: 0,
      serialization: 1,
    }),
    f('v1 heartbeat', Buffer.from(boltProtocol.heartbeatEncode(20, {}, boltOpts)), { kind: FrameKind.HEARTBEAT, id: 20, timeout: 3000, status: 0, serialization: 1 }),
    f('v1 heartbeat ack', Buffer.from(boltProtocol.heartbeatAckEncode(20, boltOpts)), { kind: FrameKind.HEARTBEAT_RESPONSE, id: 20, timeout: 0, status: 0, serialization: 1 }),
    f('v2 heartbeat', Buffer.from(boltProtocol.heartbeatEncode(21, {}, { ...boltOpts, ...v2crc })), { kind: FrameKind.HEARTBEAT, id: 21, timeout: 3000, status: 0, serialization: 1 }),
  ];
}

function dubboReq(requestId: number, over: Record<string, unknown> = {}): Buffer {
  const ctx = {
    requestId,
    dubboVersion: '2.0.2',
    dubboInterface: SERVICE,
    path: SERVICE,
    version: '1.0.0',
    methodName: 'hello',
    group: 'g1',
    timeout: 3000,
    application: { name: 'app' },
    attachments: { k: 'v' },
    methodArgs: [{ $class: 'java.lang.String', $: 'x' }],
    ...over,
  };
  return new DubboEncoder(ctx).encode();
}

// Arguments of most hessian2 shapes: the group lies past all of them.
const RICH_ARGS = [
  { $class: 'java.lang.String', $: 'x' },
  { $class: 'int', $: -300000 },
  { $class: 'com.example.Req', $: { a: 1, b: 'bb', c: [1, 2, 3], d: { $class: 'com.example.Inner', $: { z: null } } } },
  { $class: 'com.example.Req', $: { a: 2, b: 'cc', c: [], d: null } },
  { $class: 'long', $: 1234567890123 },
  { $class: 'long', $: -5 },
  { $class: 'double', $: 1.5 },
  { $class: 'double', $: 123456.789 },
  { $class: 'boolean', $: true },
  { $class: 'java.util.Map', $: { x: 1, y: [true, false] } },
  { $class: 'java.util.List', $: ['a', 'b', 1, 2.5] },
  { $class: 'java.util.Date', $: new Date(1700000000000) },
  { $class: 'java.lang.String', $: 'héllo wörld ✓ 𝄞' },
];

function dubboFrames(): Frame[] {
  const f = (name: string, buf: Buffer, expect: Expect): Frame => ({ name: `dubbo ${name}`, buf, ts: dubboCodec, nat: nDubbo, expect });
  const req = { kind: FrameKind.REQUEST, service: SERVICE, version: '1.0.0', method: 'hello', group: 'g1', app: null, timeout: 0, status: 0, serialization: 2 };
  const oneway = dubboReq(3);
  oneway[2]! &= ~0x40; // dubbo-js always sends two-way; Java clients clear this bit for oneway calls
  return [
    f('request', dubboReq(1), { ...req, id: 1 }),
    f('request, many argument types', dubboReq(2, { methodArgs: RICH_ARGS }), { ...req, id: 2 }),
    f('request, no group', dubboReq(4, { group: undefined }), { ...req, id: 4, group: '' }),
    f('request, no args, empty version', dubboReq(5, { methodArgs: [], version: '' }), { ...req, id: 5, version: '', group: 'g1' }),
    f('request, 64-bit id', dubboReq(2 ** 40 + 6), { ...req, id: 6, idHi: 256 }),
    f('oneway request', oneway, { ...req, kind: FrameKind.ONEWAY, id: 3 }),
    f('heartbeat (dubbo-js)', DubboHeartBeat.encode(), { kind: FrameKind.HEARTBEAT, id: 0, timeout: 0, status: 0, serialization: 2 }),
    f('heartbeat (provider)', dubboProvider.heartbeatRequest(9), { kind: FrameKind.HEARTBEAT, id: 9, timeout: 0, status: 0, serialization: 2 }),
    f('heartbeat response', dubboProvider.heartbeatResponse(9), { kind: FrameKind.HEARTBEAT_RESPONSE, id: 9, timeout: 0, status: 20, serialization: 2 }),
    f('response', dubboProvider.resultResponse(1, { value: 'ok', dubboVersion: '2.0.2' }), { kind: FrameKind.RESPONSE, id: 1, timeout: 0, status: 20, serialization: 2 }),
    f('exception response', dubboProvider.resultResponse(2, { error: new Error('boom'), dubboVersion: '2.0.2' }), {
      kind: FrameKind.RESPONSE,
      id: 2,
      timeout: 0,
      status: 20,
      serialization: 2,
    }),
    f('error status response', dubboProvider.errorResponse(3, 70, 'no such service'), { kind: FrameKind.RESPONSE, id: 3, timeout: 0, status: 70, serialization: 2 }),
  ];
}

const FRAMES: Frame[] = [...boltFrames(), ...dubboFrames()];

// ---- helpers ----

function header(codec: RpcCodec, buf: Buffer, off = 0, end = buf.length, max = MAX): Int32Array {
  const out = new Int32Array(H.SIZE).fill(0x5a5a5a5a); // stale values must all be overwritten
  codec.decodeHeader(buf, off, end, max, out);
  return out;
}

function lazy(codec: RpcCodec, buf: Buffer, off: number, hdr: Int32Array, field: LazyField): Int32Array {
  const out = hdr.slice();
  codec.decodeLazy(buf, off, out, field);
  return out;
}

function text(buf: Buffer, out: Int32Array, offSlot: number): string | null {
  const off = out[offSlot]!;
  return off < 0 ? null : buf.toString('utf8', off, off + out[offSlot + 1]!);
}

const slots = (a: Int32Array): number[] => Array.from(a);

/** A copy in its own allocation of exactly this size (small Buffer.from copies share a pool slab), so under ASan a read past its end is an error. */
function exact(src: Buffer): Buffer {
  const b = Buffer.allocUnsafeSlow(src.length);
  src.copy(b);
  return b;
}

// ---- tests ----

describe('native codec: frames from real clients', () => {
  it('the addon exports the decoders and both protocols have one', () => {
    expect(typeof nb.decodeHeader).toBe('function');
    expect(hasNativeDecoder('bolt') && hasNativeDecoder('dubbo')).toBe(true);
    expect(hasNativeDecoder('http1')).toBe(false);
  });

  for (const fr of FRAMES) {
    it(`${fr.name}: native slots match the frame`, () => {
      const { buf, expect: e } = fr;
      const out = header(fr.nat, buf);
      expect(out[H.STATE]).toBe(1);
      expect(out[H.FRAME_LEN]).toBe(buf.length);
      expect(out[H.KIND]).toBe(e.kind);
      expect(out[H.ID_LO]).toBe(e.id | 0);
      expect(out[H.ID_HI]).toBe(e.idHi ?? 0);
      expect(out[H.SERIALIZATION]).toBe(e.serialization);
      if (e.timeout !== undefined) expect(out[H.TIMEOUT_MS]).toBe(e.timeout);
      if (e.status !== undefined) expect(out[H.STATUS]).toBe(e.status);
      if (e.service !== undefined) expect(text(buf, out, H.SERVICE_OFF)).toBe(e.service);
      if (e.version !== undefined) expect(text(buf, out, H.VERSION_OFF)).toBe(e.version);
      if (e.method !== undefined) expect(text(buf, out, H.METHOD_OFF)).toBe(e.method);
      if (e.app !== undefined) expect(text(buf, out, H.APP_OFF)).toBe(e.app);
      if (e.lazyMethod !== undefined) expect(text(buf, lazy(fr.nat, buf, 0, out, 'method'), H.METHOD_OFF)).toBe(e.lazyMethod);
      if (e.group !== undefined) expect(text(buf, lazy(fr.nat, buf, 0, out, 'group'), H.GROUP_OFF)).toBe(e.group);
    });

    it(`${fr.name}: native and TypeScript decode it alike`, () => {
      const { buf } = fr;
      // In the middle of a larger buffer, as the framer sees it.
      const big = Buffer.concat([Buffer.from([1, 2, 3]), buf, Buffer.from([0xda, 0xbb, 1])]);
      for (const [b, off, end] of [
        [buf, 0, buf.length],
        [big, 3, big.length],
        [big, 3, 3 + buf.length],
      ] as const) {
        const t = header(fr.ts, b, off, end);
        const n = header(fr.nat, b, off, end);
        expect(slots(n)).toEqual(slots(t));
        if (t[H.STATE] !== 1) continue;
        for (const field of ['method', 'group'] as const) expect(slots(lazy(fr.nat, b, off, n, field))).toEqual(slots(lazy(fr.ts, b, off, t, field)));
      }
    });

    it(`${fr.name}: every truncation needs more bytes, never an error`, () => {
      const { buf } = fr;
      const whole = header(fr.nat, buf);
      for (let cut = 0; cut < buf.length; cut++) {
        // Exactly `cut` bytes: under ASan, reading past them is caught, not just checked by `end`.
        const part = exact(buf.subarray(0, cut));
        const n = header(fr.nat, part);
        expect(n[H.STATE], `cut ${cut}`).toBe(0);
        const t = header(fr.ts, part);
        expect(slots(n), `cut ${cut}`).toEqual(slots(t));
        // Once the fixed header is in, the frame length is known (FRAME_LEN 0 = not yet).
        if (n[H.FRAME_LEN] !== 0) expect(n[H.FRAME_LEN]).toBe(whole[H.FRAME_LEN]);
      }
      const fixed = fr.buf[0] === 0xda ? 16 : fr.buf[0] === 2 ? 24 : 22;
      if (buf.length > fixed) expect(header(fr.nat, exact(buf.subarray(0, fixed)))[H.FRAME_LEN]).toBe(buf.length);
    });

    it(`${fr.name}: a frame longer than maxFrame is TOO_LARGE from its header alone`, () => {
      const { buf } = fr;
      const fixed = buf[0] === 0xda ? 16 : buf[0] === 2 ? 24 : 22;
      for (const end of [Math.min(fixed, buf.length), buf.length]) {
        const n = header(fr.nat, buf, 0, end, buf.length - 1);
        expect(n[H.STATE]).toBe(DecodeError.TOO_LARGE);
        expect(slots(n)).toEqual(slots(header(fr.ts, buf, 0, end, buf.length - 1)));
      }
      expect(header(fr.nat, buf, 0, buf.length, buf.length)[H.STATE]).toBe(1);
    });
  }
});

describe('native codec: bad input', () => {
  const cases: [string, RpcCodec, RpcCodec, Buffer, number][] = [
    ['bolt: wrong first byte', boltCodec, nBolt, Buffer.from([0x47, 0x45, 0x54]), DecodeError.BAD_MAGIC],
    ['bolt: unknown type byte', boltCodec, nBolt, Buffer.from([1, 7]), DecodeError.UNKNOWN_TYPE],
    ['bolt: unknown command code', boltCodec, nBolt, (() => { const b = boltReq(1, {}); b.writeUInt16BE(9, 2); return b; })(), DecodeError.UNKNOWN_TYPE],
    ['bolt: 4 GB content', boltCodec, nBolt, (() => { const b = boltReq(1, {}).subarray(0, 22); b.writeUInt32BE(0xffffffff, 18); return b; })(), DecodeError.TOO_LARGE],
    ['bolt: header map entry past its end', boltCodec, nBolt, (() => { const b = boltReq(1, {}); b.writeInt32BE(1000, 22 + b.readUInt16BE(14)); return b; })(), DecodeError.BAD_HEADER],
    ['dubbo: wrong magic', dubboCodec, nDubbo, Buffer.from([0xda, 0xbc]), DecodeError.BAD_MAGIC],
    ['dubbo: 2 GB body (negative int32)', dubboCodec, nDubbo, (() => { const b = dubboReq(1).subarray(0, 16); b.writeUInt32BE(0x80000000, 12); return b; })(), DecodeError.BAD_HEADER],
    ['dubbo: body past maxFrame', dubboCodec, nDubbo, (() => { const b = dubboReq(1).subarray(0, 16); b.writeUInt32BE(0x7fffffff, 12); return b; })(), DecodeError.TOO_LARGE],
    ['dubbo: request that is not hessian2', dubboCodec, nDubbo, (() => { const b = dubboReq(1); b[2] = (b[2]! & ~0x1f) | 6; return b; })(), DecodeError.BAD_BODY],
    ['dubbo: service is not a string', dubboCodec, nDubbo, (() => { const b = dubboReq(1); b[16 + 6] = 0x90; return b; })(), DecodeError.BAD_BODY],
  ];
  for (const [name, ts, nat, buf, state] of cases) {
    it(name, () => {
      const n = header(nat, buf);
      expect(n[H.STATE]).toBe(state);
      expect(slots(n)).toEqual(slots(header(ts, buf)));
    });
  }

  it('a lazy field the body cannot give is -2, never a throw', () => {
    const buf = dubboReq(1, { methodArgs: RICH_ARGS });
    const hdr = header(nDubbo, buf);
    // A reserved code where the first attachment key starts: the walk fails, the frame stays whole.
    const bad = Buffer.from(buf);
    const key = bad.lastIndexOf('application');
    expect(bad[key - 1]).toBe('application'.length);
    bad[key - 1] = 0x40;
    const out = lazy(nDubbo, bad, 0, hdr, 'group');
    expect(out[H.GROUP_OFF]).toBe(-2);
    expect(slots(out)).toEqual(slots(lazy(dubboCodec, bad, 0, hdr, 'group')));
  });

  it('slots that lie about the frame cannot make decodeLazy read outside the buffer', () => {
    const buf = exact(boltReq(1, {}));
    const hdr = header(nBolt, buf);
    for (const [slot, v] of [
      [H.FRAME_LEN, 0x7fffffff],
      [H.BODY_OFF, buf.length + 100],
      [H.BODY_OFF, -7],
      [H.FRAME_LEN, -100],
    ] as const) {
      const out = hdr.slice();
      out[slot] = v;
      nb.decodeLazy(NativeCodecProtocol.BOLT, buf, 0, out, NativeLazyField.METHOD);
      expect(out[H.METHOD_OFF] === -2 || out[H.METHOD_OFF]! + out[H.METHOD_LEN]! <= buf.length).toBe(true);
    }
    const d = exact(dubboReq(1));
    const dh = header(nDubbo, d);
    dh[H.FRAME_LEN] = 0x7fffffff;
    dh[H.METHOD_OFF] = d.length - 1;
    nb.decodeLazy(NativeCodecProtocol.DUBBO, d, 0, dh, NativeLazyField.GROUP);
    expect(dh[H.GROUP_OFF]).toBe(-2);
  });

  it('bad arguments throw TypeError/RangeError', () => {
    const buf = dubboReq(1);
    const out = new Int32Array(H.SIZE);
    expect(() => nb.decodeHeader(3 as never, buf, 0, buf.length, MAX, out)).toThrow(RangeError);
    expect(() => nb.decodeHeader(NativeCodecProtocol.DUBBO, 'x' as never, 0, 1, MAX, out)).toThrow(TypeError);
    expect(() => nb.decodeHeader(NativeCodecProtocol.DUBBO, buf, 0, buf.length + 1, MAX, out)).toThrow(RangeError);
    expect(() => nb.decodeHeader(NativeCodecProtocol.DUBBO, buf, 5, 4, MAX, out)).toThrow(RangeError);
    expect(() => nb.decodeHeader(NativeCodecProtocol.DUBBO, buf, 0.5, 4, MAX, out)).toThrow(RangeError);
    expect(() => nb.decodeHeader(NativeCodecProtocol.DUBBO, buf, 0, buf.length, 2 ** 31, out)).toThrow(RangeError);
    expect(() => nb.decodeHeader(NativeCodecProtocol.DUBBO, buf, 0, buf.length, MAX, new Int32Array(H.SIZE - 1))).toThrow(RangeError);
    expect(() => nb.decodeHeader(NativeCodecProtocol.DUBBO, buf, 0, buf.length, MAX, new Uint32Array(H.SIZE) as never)).toThrow(TypeError);
    expect(() => nb.decodeLazy(NativeCodecProtocol.DUBBO, buf, 0, out, 3 as never)).toThrow(RangeError);
    expect(() => (nb.decodeFrames as (...a: unknown[]) => number)(NativeCodecProtocol.DUBBO, buf, 0)).toThrow(TypeError);
  });
});

describe('native codec: hessian2 beyond what the TypeScript reader handles', () => {
  // hessian.js and Java both write a string over 32768 UTF-16 units as 'R' chunks followed by a
  // final chunk in whatever form fits (here a short string), which the spec allows.
  it('finds the Dubbo group past a chunked string argument', () => {
    const buf = dubboReq(1, { methodArgs: [{ $class: 'java.lang.String', $: 'y'.repeat(32768 + 5) }, ...RICH_ARGS] });
    expect(buf.indexOf(Buffer.from([0x52, 0x80, 0x00]))).toBeGreaterThan(0);
    const out = lazy(nDubbo, buf, 0, header(nDubbo, buf), 'group');
    expect(text(buf, out, H.GROUP_OFF)).toBe('g1');
  });

  it('reads a one-piece \'S\' string as its bytes, without the marker', () => {
    // The draft has no medium string form, so a 42-character method name is 'S' 0x00 0x2a ...
    const buf = boltJavaOrdered(1, 'draft', 'queryUserAccountBalanceByUserIdAndCurrency');
    expect(buf.indexOf(Buffer.from([0x53, 0x00, 0x2a]))).toBeGreaterThan(0);
    const out = lazy(nBolt, buf, 0, header(nBolt, buf), 'method');
    expect(text(buf, out, H.METHOD_OFF)).toBe('queryUserAccountBalanceByUserIdAndCurrency');
  });

  it('accepts a Bolt header value of length -1 (a null, as SOFA writes it)', () => {
    const buf = boltReq(1, { codecType: 'protobuf', proto: protoRoot }, { args: [{ name: 'n' }], targetAppName: null });
    // sofa-bolt-node writes '' for a missing target app; make it the null form its map writer uses.
    const key = buf.indexOf('sofa_head_target_app');
    expect(buf.readInt32BE(key + 20)).toBe(0);
    buf.writeInt32BE(-1, key + 20);
    const out = header(nBolt, buf);
    expect(out[H.STATE]).toBe(1);
    expect(out[H.APP_LEN]).toBe(0);
    expect(text(buf, out, H.METHOD_OFF)).toBe('hello');
  });
});

describe('native codec: batched decoding', () => {
  const stream = (fs: Frame[], n: number): Buffer => Buffer.concat(Array.from({ length: n }, (_, i) => fs[i % fs.length]!.buf));

  for (const [proto, ts, nat, fs] of [
    ['bolt', boltCodec, nBolt, FRAMES.filter((f) => f.ts === boltCodec)],
    ['dubbo', dubboCodec, nDubbo, FRAMES.filter((f) => f.ts === dubboCodec)],
  ] as const) {
    it(`${proto}: one call decodes every whole frame of a read, and stops at a partial one`, () => {
      const whole = stream(fs, 40);
      const tail = fs[0]!.buf.subarray(0, 10);
      const buf = Buffer.concat([whole, tail]);
      const out = new Int32Array(64 * H.SIZE);
      expect(isBatchDecoder(nat)).toBe(true);
      const n = decodeFrames(nat, buf, 0, buf.length, MAX, out, 64);
      expect(n).toBe(41);
      let pos = 0;
      for (let i = 0; i < 40; i++) {
        const rec = out.subarray(i * H.SIZE, (i + 1) * H.SIZE);
        expect(slots(rec)).toEqual(slots(header(ts, buf, pos, buf.length)));
        pos += rec[H.FRAME_LEN]!;
      }
      expect(pos).toBe(whole.length);
      expect(out[40 * H.SIZE + H.STATE]).toBe(0);
      // The TypeScript fallback of the helper gives the same records.
      const viaTs = new Int32Array(64 * H.SIZE);
      expect(decodeFrames(ts, buf, 0, buf.length, MAX, viaTs, 64)).toBe(41);
      expect(slots(viaTs.subarray(0, 41 * H.SIZE))).toEqual(slots(out.subarray(0, 41 * H.SIZE)));
    });

    it(`${proto}: maxFrames, the size of out, and an error bound the batch`, () => {
      const buf = stream(fs, 10);
      const out = new Int32Array(10 * H.SIZE);
      expect(decodeFrames(nat, buf, 0, buf.length, MAX, out, 4)).toBe(4);
      expect(decodeFrames(nat, buf, 0, buf.length, MAX, out.subarray(0, 3 * H.SIZE + 5), 10)).toBe(3);
      expect(decodeFrames(nat, buf, 0, buf.length, MAX, out, 10)).toBe(10);
      expect(decodeFrames(nat, buf, buf.length, buf.length, MAX, out, 10)).toBe(0);
      const bad = Buffer.concat([fs[0]!.buf, fs[1]!.buf, Buffer.from('GET / HTTP/1.1\r\n\r\n'), fs[0]!.buf]);
      expect(decodeFrames(nat, bad, 0, bad.length, MAX, out, 10)).toBe(3);
      expect(out[2 * H.SIZE + H.STATE]).toBe(DecodeError.BAD_MAGIC);
    });
  }
});

describe('native codec: the bound frame decoder', () => {
  for (const [proto, nat, fs] of [
    ['bolt', nBolt, FRAMES.filter((f) => f.ts === boltCodec)],
    ['dubbo', nDubbo, FRAMES.filter((f) => f.ts === dubboCodec)],
  ] as const) {
    it(`${proto}: gives decodeFrames' records for the same reads, into the array it was bound to`, () => {
      const whole = Buffer.concat(Array.from({ length: 12 }, (_, i) => fs[i % fs.length]!.buf));
      const buf = Buffer.concat([whole, fs[0]!.buf.subarray(0, 7)]);
      const bound = new Int32Array(8 * H.SIZE);
      const decode = nat.bindFrames!(MAX, bound, 8);
      expect(typeof decode).toBe('function');
      const ref = new Int32Array(8 * H.SIZE);
      let off = 0;
      // Three reads of at most 8 records each, as the framer calls it.
      for (let k = 0; k < 3 && off < buf.length; k++) {
        const n = decode!(buf, off, buf.length);
        expect(n).toBe(decodeFrames(nat, buf, off, buf.length, MAX, ref, 8));
        expect(slots(bound.subarray(0, n * H.SIZE))).toEqual(slots(ref.subarray(0, n * H.SIZE)));
        for (let i = 0; i < n && bound[i * H.SIZE + H.STATE] === 1; i++) off += bound[i * H.SIZE + H.FRAME_LEN]!;
      }
      expect(off).toBe(whole.length);
      // A frame larger than the bound maxFrame is TOO_LARGE, as with decodeFrames.
      const small = nat.bindFrames!(8, bound, 8)!;
      expect(small(buf, 0, buf.length)).toBe(1);
      expect(bound[H.STATE]).toBe(DecodeError.TOO_LARGE);
    });
  }

  it('bad arguments throw TypeError/RangeError and never read outside the buffer', () => {
    const out = new Int32Array(4 * H.SIZE);
    const bind = nb.bindFrameDecoder!;
    const decode = bind(NativeCodecProtocol.BOLT, MAX, out, 4);
    const buf = Buffer.alloc(30);
    expect(() => decode(buf, 0, 31)).toThrow(RangeError);
    expect(() => decode(buf, 20, 10)).toThrow(RangeError);
    expect(() => decode(buf, -1, 10)).toThrow(RangeError);
    expect(() => (decode as (...a: unknown[]) => number)('x', 0, 1)).toThrow(TypeError);
    expect(() => (decode as (...a: unknown[]) => number)(buf, 0)).toThrow(TypeError);
    expect(() => bind(NativeCodecProtocol.BOLT, MAX, new Int32Array(2), 4)).toThrow(RangeError);
    expect(() => (bind as (...a: unknown[]) => unknown)(9, MAX, out, 4)).toThrow(RangeError);
    expect(() => (bind as (...a: unknown[]) => unknown)(NativeCodecProtocol.BOLT, MAX, new Uint8Array(64), 4)).toThrow(TypeError);
    // maxFrames larger than `out` holds is capped by `out`.
    const frames = Buffer.concat(Array.from({ length: 6 }, () => FRAMES.find((f) => f.ts === boltCodec)!.buf));
    expect(bind(NativeCodecProtocol.BOLT, MAX, out, 100)(frames, 0, frames.length)).toBe(4);
  });
});

describe('native codec: the wrapped codec', () => {
  it('keeps the TypeScript builders and name', () => {
    const hb = boltProtocol.heartbeatEncode(5, {}, boltOpts) as Buffer;
    const hdr = header(nBolt, Buffer.from(hb));
    expect(nBolt.name).toBe('bolt');
    expect(nBolt.heartbeatResponse(Buffer.from(hb), 0, hdr).equals(boltCodec.heartbeatResponse(Buffer.from(hb), 0, hdr))).toBe(true);
    const req = dubboReq(77);
    const dh = header(nDubbo, req);
    expect(nDubbo.localReply(req, 0, dh, 'no_route', 'x').equals(dubboCodec.localReply(req, 0, dh, 'no_route', 'x'))).toBe(true);
    nDubbo.writeRequestId(req, 0, 1, 2);
    expect(header(nDubbo, req)[H.ID_LO]).toBe(2);
    // Ids with the top bit set are written byte by byte as the int32 they are.
    nDubbo.writeRequestId(req, 0, -2, -0x7ffffffe);
    expect(req.readInt32BE(4)).toBe(-2);
    expect(req.readInt32BE(8)).toBe(-0x7ffffffe);
    const breq = Buffer.from(FRAMES.find((f) => f.ts === boltCodec)!.buf);
    nBolt.writeRequestId(breq, 0, 0, 0x89abcdef | 0);
    expect(breq.readUInt32BE(5)).toBe(0x89abcdef);
    expect(header(nBolt, breq)[H.ID_LO]! >>> 0).toBe(0x89abcdef);
  });

  it('refuses a protocol the addon has no decoder for', () => {
    expect(() => nativeCodec({ ...boltCodec, name: 'thrift' })).toThrow(NativeLoadError);
  });
});

describe('native codec: fuzz (seeded mutations of real frames)', () => {
  // Bytes that mean something to the decoders: hessian codes, length edges.
  const INTERESTING = [0x00, 0x01, 0x02, 0x1f, 0x20, 0x30, 0x33, 0x34, 0x38, 0x3a, 0x41, 0x42, 0x43, 0x48, 0x49, 0x4d, 0x4e, 0x4f, 0x51, 0x52, 0x53, 0x55, 0x56, 0x57, 0x58, 0x5a, 0x60, 0x6f, 0x70, 0x78, 0x7a, 0x7f, 0x80, 0x90, 0xbf, 0xc0, 0xd0, 0xd8, 0xe0, 0xf0, 0xf8, 0xff];

  function mutate(src: Buffer, r: () => number): Buffer {
    let b = Buffer.from(src);
    const edits = 1 + Math.floor(r() * 4);
    for (let e = 0; e < edits; e++) {
      const at = Math.floor(r() * b.length);
      const op = r();
      if (op < 0.45) b[at] = Math.floor(r() * 256);
      else if (op < 0.8) b[at] = INTERESTING[Math.floor(r() * INTERESTING.length)]!;
      else if (op < 0.9) b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1)]);
      else b = Buffer.concat([b.subarray(0, at), Buffer.from([Math.floor(r() * 256)]), b.subarray(at)]);
    }
    return b;
  }

  it('native and TypeScript agree on 8000 mutated frames, and nothing throws', () => {
    const r = rng(0x5eed);
    let whole = 0;
    let lazyWalks = 0;
    // Every disagreement, so one run shows all kinds: "<frame> <what>" -> [count, first input].
    const diffs = new Map<string, [number, string]>();
    const note = (what: string, buf: Buffer): void => {
      const d = diffs.get(what);
      diffs.set(what, [(d?.[0] ?? 0) + 1, d?.[1] ?? buf.toString('hex')]);
    };
    const same = (a: Int32Array, b: Int32Array): boolean => a.every((v, k) => v === b[k]);
    for (let i = 0; i < 8000; i++) {
      const fr = FRAMES[i % FRAMES.length]!;
      const buf = exact(mutate(fr.buf, r));
      const n = header(fr.nat, buf);
      const t = header(fr.ts, buf);
      if (!same(n, t)) note(`${fr.name}: header`, buf);
      if (n[H.STATE] !== 1 || t[H.STATE] !== 1) continue;
      whole++;
      if (n[H.KIND] !== FrameKind.REQUEST && n[H.KIND] !== FrameKind.ONEWAY) continue;
      for (const field of ['method', 'group'] as const) {
        if (!same(lazy(fr.nat, buf, 0, n, field), lazy(fr.ts, buf, 0, t, field))) note(`${fr.name}: ${field}`, buf);
        lazyWalks++;
      }
    }
    expect(Object.fromEntries(diffs)).toEqual({});
    // The mutations must leave enough frames whole for the body walks to be exercised.
    expect(whole).toBeGreaterThan(2000);
    expect(lazyWalks).toBeGreaterThan(2000);
  });
});
