import { DecodeError, FrameKind, H, type LocalReplyKind, type RpcCodec } from '../types.js';

/**
 * Apache Thrift, framed transport with the binary protocol. A frame is a 4-byte length and one
 * message: strict form `0x8001 0000 | type`, i32 name length, name, i32 seqid, then the struct
 * (the older non-strict form puts the name first and the type byte after it). The name is the
 * method, or `Service:method` through a TMultiplexedProtocol, which gives routing an interface.
 * The seqid is the request id. Thrift has no heartbeat, so idle upstream connections are left
 * alone.
 */

const CALL = 1;
const REPLY = 2;
const EXCEPTION = 3;
const ONEWAY = 4;
const VERSION_1 = 0x80010000 | 0;

/** TApplicationException types the proxy answers with. */
const REPLY_TYPE: Record<LocalReplyKind, number> = { no_route: 1 /* UNKNOWN_METHOD */, no_upstream: 6, overflow: 6, timeout: 6, bad_request: 7 /* PROTOCOL_ERROR */ };

/** Where the message name and seqid are; -1 if the message header is malformed or cut. */
const at = { nameOff: 0, nameLen: 0, seqOff: 0, type: 0 };

function messageHeader(buf: Buffer, p: number, end: number): number {
  if (p + 4 > end) return 0;
  const w = buf.readInt32BE(p);
  if (w < 0) {
    if ((w & 0xffff0000) !== VERSION_1) return DecodeError.BAD_MAGIC;
    if (p + 8 > end) return 0;
    at.type = w & 0xff;
    at.nameLen = buf.readInt32BE(p + 4);
    at.nameOff = p + 8;
    at.seqOff = at.nameOff + at.nameLen;
  } else {
    at.nameLen = w;
    at.nameOff = p + 4;
    if (at.nameOff + w + 1 > end) return 0;
    at.type = buf[at.nameOff + w]!;
    at.seqOff = at.nameOff + w + 1;
  }
  if (at.nameLen < 0) return DecodeError.BAD_HEADER;
  if (at.seqOff + 4 > end) return 0;
  return 1;
}

function decodeHeader(buf: Buffer, off: number, end: number, maxFrame: number, out: Int32Array): void {
  out.fill(-1);
  out[H.FRAME_LEN] = 0;
  if (end - off < 4) return void (out[H.STATE] = 0);
  const len = buf.readInt32BE(off);
  if (len < 0) return void (out[H.STATE] = DecodeError.BAD_HEADER);
  if (len + 4 > maxFrame) return void (out[H.STATE] = DecodeError.TOO_LARGE);
  const frameEnd = off + 4 + len;
  out[H.FRAME_LEN] = len + 4;
  if (end < frameEnd) {
    // Reject a wrong version as soon as its bytes are in.
    const early = messageHeader(buf, off + 4, end);
    return void (out[H.STATE] = early < 0 ? early : 0);
  }
  const r = messageHeader(buf, off + 4, frameEnd);
  if (r !== 1) return void (out[H.STATE] = r < 0 ? r : DecodeError.BAD_HEADER);
  const kind = at.type === CALL ? FrameKind.REQUEST : at.type === ONEWAY ? FrameKind.ONEWAY : at.type === REPLY || at.type === EXCEPTION ? FrameKind.RESPONSE : 0;
  if (!kind) return void (out[H.STATE] = DecodeError.UNKNOWN_TYPE);
  out[H.KIND] = kind;
  out[H.ID_HI] = 0;
  out[H.ID_LO] = buf.readInt32BE(at.seqOff);
  out[H.STATUS] = at.type === EXCEPTION ? 1 : 0;
  out[H.TIMEOUT_MS] = 0;
  out[H.SERIALIZATION] = 0;
  out[H.BODY_OFF] = at.seqOff + 4;
  // `Service:method` (multiplexed) or just `method`; version and group do not exist here.
  const colon = buf.indexOf(0x3a, at.nameOff);
  const split = colon >= 0 && colon < at.nameOff + at.nameLen ? colon : -1;
  out[H.SERVICE_OFF] = at.nameOff;
  out[H.SERVICE_LEN] = split < 0 ? 0 : split - at.nameOff;
  out[H.METHOD_OFF] = split < 0 ? at.nameOff : split + 1;
  out[H.METHOD_LEN] = split < 0 ? at.nameLen : at.nameOff + at.nameLen - split - 1;
  out[H.VERSION_OFF] = out[H.GROUP_OFF] = at.nameOff;
  out[H.VERSION_LEN] = out[H.GROUP_LEN] = 0;
  out[H.STATE] = 1;
}

function writeRequestId(buf: Buffer, off: number, _hi: number, lo: number): void {
  if (messageHeader(buf, off + 4, buf.length) === 1) buf.writeInt32BE(lo | 0, at.seqOff);
}

/** A TApplicationException reply: {1: string message, 2: i32 type}, under the call's name and seqid. */
function localReply(buf: Buffer, off: number, hdr: Int32Array, kind: LocalReplyKind, message: string): Buffer {
  messageHeader(buf, off + 4, off + hdr[H.FRAME_LEN]!);
  const name = buf.subarray(at.nameOff, at.nameOff + at.nameLen);
  const msg = Buffer.from(message, 'utf8');
  const body = 4 + 4 + name.length + 4 + (3 + 4 + msg.length) + (3 + 4) + 1;
  const out = Buffer.alloc(4 + body);
  let p = out.writeInt32BE(body, 0);
  p = out.writeInt32BE(VERSION_1 | EXCEPTION, p);
  p = out.writeInt32BE(name.length, p);
  p += name.copy(out, p);
  p = out.writeInt32BE(buf.readInt32BE(at.seqOff), p);
  p = out.writeInt8(11, p); // field 1: string
  p = out.writeInt16BE(1, p);
  p = out.writeInt32BE(msg.length, p);
  p += msg.copy(out, p);
  p = out.writeInt8(8, p); // field 2: i32
  p = out.writeInt16BE(2, p);
  p = out.writeInt32BE(REPLY_TYPE[kind], p);
  out.writeInt8(0, p); // stop
  return out;
}

export const thriftCodec = {
  name: 'thrift',
  decodeHeader,
  decodeLazy: () => {}, // everything routing needs is in the message header
  writeRequestId,
  lookup: () => undefined, // the binary protocol carries no headers
  heartbeatResponse: () => Buffer.alloc(0), // never asked: no frame decodes as a heartbeat
  heartbeatRequest: () => null,
  localReply,
} satisfies RpcCodec;

/** A framed strict-binary message: a length with a zero top byte, then 0x80 0x01. */
export function looksLikeThrift(buf: Buffer): boolean | null {
  if (buf.length === 0) return null;
  if (buf[0] !== 0) return false;
  if (buf.length < 6) return null;
  return buf[4] === 0x80 && buf[5] === 0x01;
}
