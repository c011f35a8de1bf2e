import { describe, expect, it } from 'vitest';
import { thriftCodec } from '../../../src/protocols/thrift/codec.js';
import { DecodeError, FrameKind, H } from '../../../src/protocols/types.js';

// A THeader call as the thrift library writes it: magic 0x0fff, seq 0, one header word group
// (binary protocol, no transforms, key/value info x-version=1.0), then a strict-binary
// `whoami` CALL with seqid 1.
const CALL = Buffer.from('000000390fff00000000000000050000010109782d76657273696f6e03312e300000800100010000000677686f616d69000000010b0001000000016100', 'hex');

function decode(buf: Buffer): Int32Array {
  const h = new Int32Array(H.SIZE);
  thriftCodec.decodeHeader(buf, 0, buf.length, 1 << 20, h);
  return h;
}

describe('Thrift codec, header transport', () => {
  it('finds the message inside a THeader frame and answers header lookups in any case', () => {
    const h = decode(CALL);
    expect(h[H.STATE]).toBe(1);
    expect(h[H.KIND]).toBe(FrameKind.REQUEST);
    expect(h[H.ID_LO]).toBe(1);
    expect(CALL.toString('utf8', h[H.METHOD_OFF]!, h[H.METHOD_OFF]! + h[H.METHOD_LEN]!)).toBe('whoami');
    expect(thriftCodec.lookup(CALL, 0, h, 'X-Version')).toBe('1.0');
    expect(thriftCodec.lookup(CALL, 0, h, 'x-other')).toBeUndefined();
  });

  it('rewrites both the header sequence number and the message seqid', () => {
    const b = Buffer.from(CALL);
    thriftCodec.writeRequestId(b, 0, 0, 77);
    expect(b.readInt32BE(8)).toBe(77);
    expect(decode(b)[H.ID_LO]).toBe(77);
  });

  it('answers locally in THeader framing, which decodes as a THeader EXCEPTION', () => {
    const reply = thriftCodec.localReply(CALL, 0, decode(CALL), 'no_route', 'no route');
    expect(reply.readUInt16BE(4)).toBe(0x0fff);
    const h = decode(reply);
    expect(h[H.STATE]).toBe(1);
    expect(h[H.KIND]).toBe(FrameKind.RESPONSE);
    expect(h[H.STATUS]).toBe(1); // EXCEPTION
    expect(h[H.ID_LO]).toBe(1);
  });

  it('refuses the compact protocol and transforms inside a THeader frame', () => {
    const compact = Buffer.from(CALL);
    compact[14] = 2; // protocol id 2: compact
    expect(decode(compact)[H.STATE]).toBe(DecodeError.BAD_HEADER);
    const zlib = Buffer.from(CALL);
    zlib[15] = 1; // one transform
    expect(decode(zlib)[H.STATE]).toBe(DecodeError.BAD_HEADER);
  });
});
