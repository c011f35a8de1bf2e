import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { boltCodec, BoltStatus } from '../../../src/protocols/bolt/codec.js';
import { detectProtocol } from '../../../src/protocols/index.js';
import { DecodeError, FrameKind, H } from '../../../src/protocols/types.js';

// Frames come from the SOFARPC Node client's own encoder (sofa-bolt-node), as a client sends them.
const require = createRequire(import.meta.url);
const v1 = require('sofa-bolt-node/lib/protocol/v1.js');
const v2 = require('sofa-bolt-node/lib/protocol/v2.js');
const RpcRequestCommand = require('sofa-bolt-node/lib/protocol/rpc_req_cmd.js');
const RpcResponseCommand = require('sofa-bolt-node/lib/protocol/rpc_res_cmd.js');
const ByteBuffer = require('byte');
const hessian = require('hessian.js');

const MAX = 1 << 20;

function request(opts: { id?: number; method?: string; service?: string; version?: 2; crc?: boolean; timeout?: number; app?: string } = {}): Buffer {
  const cmd = new RpcRequestCommand(
    {
      serverSignature: opts.service ?? 'com.example.UserService:1.0',
      methodName: opts.method ?? 'hello',
      args: [{ $class: 'java.lang.String', $: 'ann' }, { $class: 'int', $: 7 }],
      timeout: opts.timeout ?? 3000,
      targetAppName: opts.app ?? 'shop',
    },
    { codecType: 'hessian2' },
  );
  const enc = opts.version === 2 ? v2 : v1;
  return Buffer.from(enc.encode(cmd, { rpcType: 1, cmdCode: 1, id: opts.id ?? 7, codecType: 'hessian2', boltVersion: 1, crcEnable: opts.crc ?? false }));
}

function decode(buf: Buffer, max = MAX): Int32Array {
  const out = new Int32Array(H.SIZE);
  boltCodec.decodeHeader(buf, 0, buf.length, max, out);
  return out;
}

const str = (buf: Buffer, off: number, len: number) => buf.toString('utf8', off, off + len);

describe('Bolt codec', () => {
  it('finds frame length, id, timeout and the service header of a request without reading the body', () => {
    const buf = request({ id: 41, timeout: 1500 });
    const h = decode(buf);
    expect(h[H.STATE]).toBe(1);
    expect(h[H.FRAME_LEN]).toBe(buf.length);
    expect(h[H.KIND]).toBe(FrameKind.REQUEST);
    expect(h[H.ID_LO]).toBe(41);
    expect(h[H.TIMEOUT_MS]).toBe(1500);
    expect(str(buf, h[H.SERVICE_OFF]!, h[H.SERVICE_LEN]!)).toBe('com.example.UserService');
    expect(str(buf, h[H.VERSION_OFF]!, h[H.VERSION_LEN]!)).toBe('1.0');
    // The method is only in the body: not decoded until asked for.
    expect(h[H.METHOD_OFF]).toBe(-1);
    boltCodec.decodeLazy(buf, 0, h, 'method');
    expect(str(buf, h[H.METHOD_OFF]!, h[H.METHOD_LEN]!)).toBe('hello');
  });

  it('splits the service at the last colon', () => {
    const buf = request({ service: 'com.example.A:uid:2.0' });
    const h = decode(buf);
    expect(str(buf, h[H.SERVICE_OFF]!, h[H.SERVICE_LEN]!)).toBe('com.example.A:uid');
    expect(str(buf, h[H.VERSION_OFF]!, h[H.VERSION_LEN]!)).toBe('2.0');
  });

  it('reads the method from a final-form hessian2 SofaRequest (as Java writes it), skipping fields before it', () => {
    const enc = new hessian.EncoderV2();
    enc.write({
      $class: 'com.alipay.sofa.rpc.core.request.SofaRequest',
      $: { targetAppName: 'shop', requestProps: { $class: 'java.util.HashMap', $: { a: 'b', n: 1 } }, methodArgSigs: ['java.lang.String'], methodName: 'löschen', targetServiceUniqueName: 'com.example.S:1.0' },
    });
    const content: Buffer = enc.get();
    const cls = Buffer.from('com.alipay.sofa.rpc.core.request.SofaRequest');
    const header = Buffer.concat([u32(7), Buffer.from('service'), u32(17), Buffer.from('com.example.S:1.0')]);
    const fixed = Buffer.alloc(22);
    fixed[0] = 1;
    fixed[1] = 1;
    fixed.writeUInt16BE(1, 2);
    fixed[4] = 1;
    fixed.writeUInt32BE(9, 5);
    fixed[9] = 1;
    fixed.writeInt32BE(1000, 10);
    fixed.writeUInt16BE(cls.length, 14);
    fixed.writeUInt16BE(header.length, 16);
    fixed.writeUInt32BE(content.length, 18);
    const buf = Buffer.concat([fixed, cls, header, content]);
    const h = decode(buf);
    expect(h[H.STATE]).toBe(1);
    boltCodec.decodeLazy(buf, 0, h, 'method');
    expect(str(buf, h[H.METHOD_OFF]!, h[H.METHOD_LEN]!)).toBe('löschen');
  });

  it('takes the method from the header map when a client puts it there', () => {
    const cls = Buffer.alloc(0);
    const header = Buffer.concat([u32(21), Buffer.from('sofa_head_method_name'), u32(3), Buffer.from('put'), u32(7), Buffer.from('service'), u32(5), Buffer.from('a.B:1')]);
    const fixed = Buffer.alloc(22);
    fixed[0] = 1;
    fixed[1] = 2; // oneway
    fixed.writeUInt16BE(1, 2);
    fixed[9] = 11; // protobuf content: the body cannot be read, the header still routes
    fixed.writeUInt16BE(cls.length, 14);
    fixed.writeUInt16BE(header.length, 16);
    const buf = Buffer.concat([fixed, header]);
    const h = decode(buf);
    expect(h[H.KIND]).toBe(FrameKind.ONEWAY);
    expect(str(buf, h[H.METHOD_OFF]!, h[H.METHOD_LEN]!)).toBe('put');
    // Any header-map entry can be matched by a route.
    expect(boltCodec.lookup(buf, 0, h, 'service')).toBe('a.B:1');
    expect(boltCodec.lookup(buf, 0, h, 'nope')).toBeUndefined();
  });

  it('never reports a frame before all of it is there, at every cut point', () => {
    const buf = request();
    for (let cut = 0; cut < buf.length; cut++) {
      const h = new Int32Array(H.SIZE);
      boltCodec.decodeHeader(buf, 0, cut, MAX, h);
      expect(h[H.STATE], `cut at ${cut}`).toBe(0);
      if (cut >= 22) expect(h[H.FRAME_LEN]).toBe(buf.length);
    }
  });

  it('rejects oversize frames from the header, bad protocol bytes and bad header maps', () => {
    expect(decode(request(), 64)[H.STATE]).toBe(DecodeError.TOO_LARGE);
    expect(decode(Buffer.from([0x09, 1, 0]))[H.STATE]).toBe(DecodeError.BAD_MAGIC);
    expect(decode(Buffer.from([0x01, 0x07]))[H.STATE]).toBe(DecodeError.UNKNOWN_TYPE);
    const bad = request();
    bad.writeUInt32BE(0xffff, 22 + bad.readUInt16BE(14)); // first key length runs past the header map
    expect(decode(bad)[H.STATE]).toBe(DecodeError.BAD_HEADER);
  });

  it('rewrites request ids in place, keeping a BoltV2 CRC valid', () => {
    const buf = request({ version: 2, crc: true, id: 5 });
    const h = decode(buf);
    expect(h[H.STATE]).toBe(1);
    expect(h[H.ID_LO]).toBe(5);
    boltCodec.writeRequestId(buf, 0, 0, 123456);
    expect(decode(buf)[H.ID_LO]).toBe(123456);
    // sofa-bolt-node checks the CRC when it decodes.
    const got = v2.decode(afterProto(buf), {});
    expect(got.packetId).toBe(123456);
  });

  it('builds local replies a SOFARPC client turns into an error carrying the message', () => {
    const req = request({ id: 77 });
    const h = decode(req);
    const reply = boltCodec.localReply(req, 0, h, 'no_route', 'no route for com.example.UserService:1.0');
    const r = decode(reply);
    expect(r[H.KIND]).toBe(FrameKind.RESPONSE);
    expect(r[H.ID_LO]).toBe(77);
    expect(r[H.STATUS]).toBe(BoltStatus.NO_PROCESSOR);
    const got = v1.decode(afterProto(reply), {});
    expect(got.packetId).toBe(77);
    expect(String(got.data.error.message)).toContain('no route for com.example.UserService:1.0');
  });

  it('decodes responses and answers heartbeats with the same id', () => {
    const res = new RpcResponseCommand({ appResponse: 'ok' }, { codecType: 'hessian2' });
    const buf = Buffer.from(v1.encode(res, { rpcType: 0, cmdCode: 2, id: 9, codecType: 'hessian2' }));
    const h = decode(buf);
    expect([h[H.STATE], h[H.KIND], h[H.ID_LO], h[H.STATUS], h[H.FRAME_LEN]]).toEqual([1, FrameKind.RESPONSE, 9, 0, buf.length]);
    const hb = boltCodec.heartbeatRequest(0, 31);
    const hh = decode(hb);
    expect([hh[H.KIND], hh[H.ID_LO]]).toEqual([FrameKind.HEARTBEAT, 31]);
    const ack = boltCodec.heartbeatResponse(hb, 0, hh);
    expect(v1.decode(afterProto(ack), {})).toMatchObject({ packetId: 31, packetType: 'heartbeat_ack' });
  });

  it('is recognised from its first bytes', () => {
    expect(detectProtocol(request())?.name).toBe('bolt');
    expect(detectProtocol(Buffer.from([0x01]))).toBeNull();
    expect(detectProtocol(Buffer.from('GET / HTTP/1.1\r\n'))).toBeUndefined();
  });
});

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

/** sofa-bolt-node's decoders start after the proto byte, on a buffer wrapping the whole frame. */
function afterProto(frame: Buffer): unknown {
  const io = ByteBuffer.wrap(frame);
  io.get();
  return io;
}
