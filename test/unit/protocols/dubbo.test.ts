import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { dubboCodec, DubboStatus } from '../../../src/protocols/dubbo/codec.js';
import { detectProtocol } from '../../../src/protocols/index.js';
import { DecodeError, FrameKind, H } from '../../../src/protocols/types.js';

// Bodies are written by hessian.js, the hessian2 library Node Dubbo clients use.
const require = createRequire(import.meta.url);
const hessian = require('hessian.js');

const MAX = 1 << 20;

function frame(flag: number, id: bigint, body: Buffer, status = 0): Buffer {
  const h = Buffer.alloc(16);
  h.writeUInt16BE(0xdabb, 0);
  h[2] = flag;
  h[3] = status;
  h.writeBigInt64BE(id, 4);
  h.writeInt32BE(body.length, 12);
  return Buffer.concat([h, body]);
}

function request(opts: { id?: bigint; attachments?: Record<string, string> | null; desc?: string; args?: unknown[]; oneway?: boolean } = {}): Buffer {
  const enc = new hessian.EncoderV2();
  enc.write('2.0.2');
  enc.write('com.example.OrderService');
  enc.write('1.0.0');
  enc.write('create');
  const args = opts.args ?? [
    'a string',
    7,
    { $class: 'com.example.Order', $: { id: 1, items: ['x', 'y'], owner: { $class: 'com.example.User', $: { name: 'ann' } } } },
    { $class: 'java.util.HashMap', $: { k: 'v', group: 'not-this-one' } },
    [1.5, -3, 9007199254740991],
    Buffer.from('bytes'),
    null,
    true,
  ];
  enc.write(opts.desc ?? 'Ljava/lang/String;ILcom/example/Order;Ljava/util/Map;[Ljava/lang/Object;[BLjava/lang/Object;Z');
  for (const a of args) enc.write(a);
  if (opts.attachments !== null) enc.write({ $class: 'java.util.HashMap', $: opts.attachments ?? { path: 'com.example.OrderService', interface: 'com.example.OrderService', version: '1.0.0', group: 'gray', timeout: '3000' } });
  return frame(0x80 | (opts.oneway ? 0 : 0x40) | 2, opts.id ?? 1n, enc.get());
}

function decode(buf: Buffer, max = MAX): Int32Array {
  const out = new Int32Array(H.SIZE);
  dubboCodec.decodeHeader(buf, 0, buf.length, max, out);
  return out;
}

const str = (buf: Buffer, off: number, len: number) => buf.toString('utf8', off, off + len);

describe('Dubbo codec', () => {
  it('decodes interface, version and method with the header, and the group only when asked', () => {
    const buf = request({ id: 0x1_0000_0002n });
    const h = decode(buf);
    expect(h[H.STATE]).toBe(1);
    expect(h[H.KIND]).toBe(FrameKind.REQUEST);
    expect(h[H.FRAME_LEN]).toBe(buf.length);
    expect([h[H.ID_HI], h[H.ID_LO]]).toEqual([1, 2]);
    expect(str(buf, h[H.SERVICE_OFF]!, h[H.SERVICE_LEN]!)).toBe('com.example.OrderService');
    expect(str(buf, h[H.VERSION_OFF]!, h[H.VERSION_LEN]!)).toBe('1.0.0');
    expect(str(buf, h[H.METHOD_OFF]!, h[H.METHOD_LEN]!)).toBe('create');
    expect(h[H.GROUP_OFF]).toBe(-1);
    dubboCodec.decodeLazy(buf, 0, h, 'group');
    // Past every argument, including a map whose key is also "group".
    expect(str(buf, h[H.GROUP_OFF]!, h[H.GROUP_LEN]!)).toBe('gray');
  });

  it('reads an argument as text for params_match: strings, ints and longs of every width; nothing else', () => {
    const buf = request();
    const h = decode(buf);
    // 'a string', 7, an object, a map, a list, bytes, null, true.
    expect([0, 1, 2, 3, 4, 5, 6, 7, 8].map((i) => dubboCodec.param(buf, 0, h, i))).toEqual(['a string', '7', undefined, undefined, undefined, undefined, undefined, undefined, undefined]);
    const longs = [0, -8, 15, -2048, 2047, -262144, 262143, 2 ** 31 - 1, -(2 ** 31), 2 ** 40];
    const enc = (v: number) => ({ $class: 'long', $: v });
    const lb = request({ desc: 'J'.repeat(longs.length), args: longs.map(enc) });
    const lh = decode(lb);
    expect(longs.map((_, i) => dubboCodec.param(lb, 0, lh, i))).toEqual(longs.map(String));
    const ints = [0, -16, 47, -2048, 2047, -262144, 262143, 2 ** 31 - 1, -(2 ** 31)];
    const ib = request({ desc: 'I'.repeat(ints.length), args: ints.map((v) => ({ $class: 'int', $: v })) });
    const ih = decode(ib);
    expect(ints.map((_, i) => dubboCodec.param(ib, 0, ih, i))).toEqual(ints.map(String));
  });

  it('looks up any attachment for header matching', () => {
    const buf = request();
    const h = decode(buf);
    expect(dubboCodec.lookup(buf, 0, h, 'timeout')).toBe('3000');
    expect(dubboCodec.lookup(buf, 0, h, 'interface')).toBe('com.example.OrderService');
    expect(dubboCodec.lookup(buf, 0, h, 'absent')).toBeUndefined();
  });

  it('reads an absent group as empty, and an unwalkable body as undecodable', () => {
    const none = request({ attachments: { path: 'p' } });
    const h = decode(none);
    dubboCodec.decodeLazy(none, 0, h, 'group');
    expect(h[H.GROUP_OFF]).toBeGreaterThan(0);
    expect(h[H.GROUP_LEN]).toBe(0);
    const noMap = request({ attachments: null });
    const h2 = decode(noMap);
    dubboCodec.decodeLazy(noMap, 0, h2, 'group');
    expect(h2[H.GROUP_LEN]).toBe(0);
    expect(h2[H.GROUP_OFF]).toBeGreaterThan(0);
    // The descriptor promises three arguments, the body holds one then ends.
    const short = request({ desc: 'III', args: [1], attachments: null });
    const h3 = decode(short);
    dubboCodec.decodeLazy(short, 0, h3, 'group');
    expect(h3[H.GROUP_OFF]).toBe(-2);
  });

  it('never reports a frame before all of it is there, at every cut point', () => {
    const buf = request();
    for (let cut = 0; cut < buf.length; cut++) {
      const h = new Int32Array(H.SIZE);
      dubboCodec.decodeHeader(buf, 0, cut, MAX, h);
      expect(h[H.STATE], `cut at ${cut}`).toBe(0);
      if (cut >= 16) expect(h[H.FRAME_LEN]).toBe(buf.length);
    }
  });

  it('rejects a wrong magic at once, oversize bodies from the header, and unreadable bodies', () => {
    expect(decode(Buffer.from([0xda]))[H.STATE]).toBe(0);
    expect(decode(Buffer.from([0xdb]))[H.STATE]).toBe(DecodeError.BAD_MAGIC);
    expect(decode(Buffer.from([0xda, 0x00]))[H.STATE]).toBe(DecodeError.BAD_MAGIC);
    expect(decode(request(), 100)[H.STATE]).toBe(DecodeError.TOO_LARGE);
    const neg = request();
    neg.writeInt32BE(-5, 12);
    expect(decode(neg)[H.STATE]).toBe(DecodeError.BAD_HEADER);
    expect(decode(frame(0xc2, 1n, Buffer.from([0x49])))[H.STATE]).toBe(DecodeError.BAD_BODY);
    // Only hessian2 bodies can be routed.
    expect(decode(frame(0xc0 | 6, 1n, Buffer.from([0x01, 0x02])))[H.STATE]).toBe(DecodeError.BAD_BODY);
  });

  it('tells heartbeats, events, one-way requests and responses apart', () => {
    const kind = (b: Buffer) => decode(b)[H.KIND];
    expect(kind(frame(0xe2, 0n, Buffer.from([0x4e])))).toBe(FrameKind.HEARTBEAT);
    expect(kind(frame(0x22, 0n, Buffer.from([0x4e]), 20))).toBe(FrameKind.HEARTBEAT_RESPONSE);
    expect(kind(frame(0xa2, 0n, Buffer.from([0x01, 0x52])))).toBe(FrameKind.EVENT);
    expect(kind(request({ oneway: true }))).toBe(FrameKind.ONEWAY);
    const res = frame(0x02, 5n, Buffer.from([0x91, 0x02, 0x6f, 0x6b]), 20);
    const h = decode(res);
    expect([h[H.KIND], h[H.STATUS], h[H.ID_LO]]).toEqual([FrameKind.RESPONSE, 20, 5]);
  });

  it('answers heartbeats with the same id and builds error replies Dubbo clients read', () => {
    const hb = frame(0xe2, 99n, Buffer.from([0x4e]));
    const ack = dubboCodec.heartbeatResponse(hb, 0, decode(hb));
    const a = decode(ack);
    expect([a[H.KIND], a[H.ID_LO], a[H.STATUS]]).toEqual([FrameKind.HEARTBEAT_RESPONSE, 99, 20]);
    const req = request({ id: 12n });
    const reply = dubboCodec.localReply(req, 0, decode(req), 'no_route', 'no route for com.example.OrderService:1.0.0');
    const r = decode(reply);
    expect([r[H.KIND], r[H.ID_LO], r[H.STATUS]]).toEqual([FrameKind.RESPONSE, 12, DubboStatus.SERVICE_NOT_FOUND]);
    expect(hessian.decode(reply.subarray(16), '2.0')).toBe('no route for com.example.OrderService:1.0.0');
  });

  it('rewrites the 64-bit request id in place', () => {
    const buf = request({ id: 7n });
    dubboCodec.writeRequestId(buf, 0, 0, 4242);
    expect(buf.readBigInt64BE(4)).toBe(4242n);
    expect(decode(buf)[H.STATE]).toBe(1);
  });

  it('is recognised from its first bytes', () => {
    expect(detectProtocol(request())?.name).toBe('dubbo');
    expect(detectProtocol(Buffer.from([0xda]))).toBeNull();
  });
});
