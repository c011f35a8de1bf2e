// The codecs' metadata ability used by RPC tracing: one walk over a request's Bolt header map or
// Dubbo attachments, and a rewritten copy carrying new entries that peers' own decoders accept.
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { boltCodec } from '../../../src/protocols/bolt/codec.js';
import { dubboCodec } from '../../../src/protocols/dubbo/codec.js';
import { H, type RpcCodec } from '../../../src/protocols/types.js';

const require = createRequire(import.meta.url);
const v1 = require('sofa-bolt-node/lib/protocol/v1.js');
const v2 = require('sofa-bolt-node/lib/protocol/v2.js');
const RpcRequestCommand = require('sofa-bolt-node/lib/protocol/rpc_req_cmd.js');
const SimpleMapSerializer = require('sofa-bolt-node/lib/simple_map_serializer.js');
const ByteBuffer = require('byte');
const hessian = require('hessian.js');

class WithHeaders extends RpcRequestCommand {
  constructor(private readonly headers: Record<string, string>) {
    super({ serverSignature: 'com.example.UserService:1.0', methodName: 'hello', args: [{ $class: 'java.lang.String', $: 'ann' }], timeout: 3000 }, { codecType: 'hessian2' });
  }
  serializeHeader(b: { put(x: Buffer): void }): void {
    b.put(SimpleMapSerializer.encode(this.headers));
  }
}

/** sofa-bolt-node's decoders start after the protocol byte. */
function afterProto(frame: Buffer): unknown {
  const io = ByteBuffer.wrap(frame);
  io.get();
  return io;
}

function bolt(headers: Record<string, string>, version: 1 | 2 = 1): Buffer {
  return Buffer.from((version === 2 ? v2 : v1).encode(new WithHeaders(headers), { rpcType: 1, cmdCode: 1, id: 9, codecType: 'hessian2', boltVersion: 1, crcEnable: version === 2 }));
}

function dubbo(attachments: Record<string, string> | null): Buffer {
  const enc = new hessian.EncoderV2();
  for (const v of ['2.0.2', 'com.example.OrderService', '1.0.0', 'create', 'Ljava/lang/String;Ljava/util/Map;']) enc.write(v);
  enc.write('arg');
  enc.write({ $class: 'java.util.HashMap', $: { nested: 'map' } });
  if (attachments) enc.write({ $class: 'java.util.HashMap', $: attachments });
  const body: Buffer = enc.get();
  const h = Buffer.alloc(16);
  h.writeUInt16BE(0xdabb, 0);
  h[2] = 0xc2;
  h.writeBigInt64BE(3n, 4);
  h.writeInt32BE(body.length, 12);
  return Buffer.concat([h, body]);
}

function hdr(codec: RpcCodec, buf: Buffer): Int32Array {
  const out = new Int32Array(H.SIZE);
  codec.decodeHeader(buf, 0, buf.length, 1 << 20, out);
  expect(out[H.STATE]).toBe(1);
  return out;
}

function all(codec: typeof boltCodec | typeof dubboCodec, buf: Buffer): Record<string, string> {
  const o: Record<string, string> = {};
  expect(codec.entries(buf, 0, hdr(codec, buf), (k, v) => (o[k] = v))).toBe(true);
  return o;
}

describe('Bolt header map for tracing', () => {
  it('lists entries and rewrites them, replacing names in any case, for the SOFA decoder', () => {
    const buf = bolt({ service: 'com.example.UserService:1.0', 'X-B3-SpanId': 'aaaaaaaaaaaaaaaa', 'rpc_trace_context.sofaTraceId': 't1' });
    expect(all(boltCodec, buf)).toEqual({ service: 'com.example.UserService:1.0', 'X-B3-SpanId': 'aaaaaaaaaaaaaaaa', 'rpc_trace_context.sofaTraceId': 't1' });
    const out = boltCodec.withEntries(buf, 0, hdr(boltCodec, buf), [['x-b3-spanid', 'bbbbbbbbbbbbbbbb'], ['traceparent', '00-x-y-01']])!;
    const h = hdr(boltCodec, out);
    expect(h[H.FRAME_LEN]).toBe(out.length);
    expect(all(boltCodec, out)).toEqual({ service: 'com.example.UserService:1.0', 'rpc_trace_context.sofaTraceId': 't1', 'x-b3-spanid': 'bbbbbbbbbbbbbbbb', traceparent: '00-x-y-01' });
    // sofa-bolt-node reads the rewritten frame: same id, class and content.
    const got = v1.decode(afterProto(out), {});
    expect(got.packetId).toBe(9);
    expect(got.data.methodName).toBe('hello');
    expect(got.data.args).toEqual(['ann']);
  });

  it('keeps a BoltV2 CRC valid after the rewrite', () => {
    const buf = bolt({ service: 'com.example.UserService:1.0' }, 2);
    const out = boltCodec.withEntries(buf, 0, hdr(boltCodec, buf), [['traceparent', '00-a-b-01']])!;
    expect(all(boltCodec, out).traceparent).toBe('00-a-b-01');
    // sofa-bolt-node's v2 decoder checks the CRC.
    expect(v2.decode(afterProto(out), {}).packetId).toBe(9);
  });
});

describe('Dubbo attachments for tracing', () => {
  it('lists string attachments and rewrites them for a hessian2 decoder', () => {
    const buf = dubbo({ path: 'com.example.OrderService', 'X-B3-TraceId': 'old', b3: '0' });
    expect(all(dubboCodec, buf)).toEqual({ path: 'com.example.OrderService', 'X-B3-TraceId': 'old', b3: '0' });
    const out = dubboCodec.withEntries(buf, 0, hdr(dubboCodec, buf), [['X-B3-TraceId', 'new'], ['traceparent', '00-a-b-01']])!;
    const h = hdr(dubboCodec, out);
    expect(h[H.FRAME_LEN]).toBe(out.length);
    expect(out.readInt32BE(12)).toBe(out.length - 16);
    // hessian.js reads every value of the new body, the arguments untouched.
    const d = new hessian.DecoderV2(out.subarray(16));
    const values = Array.from({ length: 8 }, () => d.read());
    expect(values.slice(0, 7)).toEqual(['2.0.2', 'com.example.OrderService', '1.0.0', 'create', 'Ljava/lang/String;Ljava/util/Map;', 'arg', { nested: 'map' }]);
    expect(values[7]).toEqual({ path: 'com.example.OrderService', b3: '0', 'X-B3-TraceId': 'new', traceparent: '00-a-b-01' });
    // Routing still finds the group and the method in the rewritten frame.
    expect(dubboCodec.lookup(out, 0, h, 'path')).toBe('com.example.OrderService');
  });

  it('leaves a request without an attachments map alone', () => {
    const buf = dubbo(null);
    expect(all(dubboCodec, buf)).toEqual({});
    expect(dubboCodec.withEntries(buf, 0, hdr(dubboCodec, buf), [['traceparent', 'x']])).toBeNull();
  });
});
