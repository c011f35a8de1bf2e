import { DecodeError, FrameKind, H, type LocalReplyKind, type RpcCodec } from '../types.js';

/**
 * Apache Thrift, framed transport with the binary protocol. A frame is a 4-byte length and one
 * message: strict form `0x8001 0000 | type`, i32 name length, name, i32 seqid, then the struct
 * (the older non-strict form puts the name first and the type byte after it). The name is the
 * method, or `Service:method` through a TMultiplexedProtocol, which gives routing an interface.
 * The seqid is the request id. Thrift has no heartbeat, so idle upstream connections are left
 * alone.
 *
 * The header transport (THeader) is told apart per frame: after the length comes the magic
 * 0x0fff (a non-strict message's name length can never be that large), u16 flags, an i32 header
 * sequence number, a u16 header size in 4-byte words, then the headers (varint protocol id,
 * varint transform count, info blocks of key/value strings) and the message. Only the binary
 * protocol without transforms is accepted; the key/value headers are the request metadata that
 * `lookup` answers from.
 */

const CALL = 1;
const REPLY = 2;
const EXCEPTION = 3;
const ONEWAY = 4;
const VERSION_1 = 0x80010000 | 0;
const HEADER_MAGIC = 0x0fff;
const INFO_KEYVALUE = 1;

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

function isHeaderFrame(buf: Buffer, off: number, end: number): boolean {
  return end - off >= 6 && buf[off + 4] === HEADER_MAGIC >> 8 && buf[off + 5] === (HEADER_MAGIC & 0xff);
}

/** A varint's value at `pos.p` (advanced past it); -1 when cut or longer than 5 bytes. */
const pos = { p: 0 };
function varint(buf: Buffer, end: number): number {
  let v = 0;
  for (let i = 0; i < 5; i++) {
    if (pos.p >= end) return -1;
    const b = buf[pos.p++]!;
    v |= (b & 0x7f) << (7 * i);
    if (!(b & 0x80)) return v >>> 0;
  }
  return -1;
}

/**
 * Where a THeader frame's message starts (its header block checked: binary protocol, no
 * transforms), or a DecodeError. Needs the frame's first 14 bytes plus its header block.
 */
function headerFrameMessage(buf: Buffer, off: number, frameEnd: number): number {
  if (off + 14 > frameEnd) return DecodeError.BAD_HEADER;
  const hEnd = off + 14 + buf.readUInt16BE(off + 12) * 4;
  if (hEnd > frameEnd) return DecodeError.BAD_HEADER;
  pos.p = off + 14;
  // Protocol 0 is binary (2 would be compact); transforms (zlib, ...) would need decoding.
  if (varint(buf, hEnd) !== 0 || varint(buf, hEnd) !== 0) return DecodeError.BAD_HEADER;
  return hEnd;
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
  const header = isHeaderFrame(buf, off, end);
  if (end < frameEnd) {
    // Reject a wrong version as soon as its bytes are in.
    const early = header ? 0 : messageHeader(buf, off + 4, end);
    return void (out[H.STATE] = early < 0 ? early : 0);
  }
  const msg = header ? headerFrameMessage(buf, off, frameEnd) : off + 4;
  if (msg < 0) return void (out[H.STATE] = msg);
  const r = messageHeader(buf, msg, frameEnd);
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

/** Where the message of the whole frame at `off` starts (after a THeader block), or < 0. */
function messageStart(buf: Buffer, off: number): number {
  if (!isHeaderFrame(buf, off, buf.length)) return off + 4;
  return headerFrameMessage(buf, off, Math.min(buf.length, off + 4 + buf.readInt32BE(off)));
}

function writeRequestId(buf: Buffer, off: number, _hi: number, lo: number): void {
  const msg = messageStart(buf, off);
  if (msg < 0 || messageHeader(buf, msg, buf.length) !== 1) return;
  buf.writeInt32BE(lo | 0, at.seqOff);
  // THeader repeats the id in its own sequence number; replies carry it back.
  if (msg !== off + 4) buf.writeInt32BE(lo | 0, off + 8);
}

/**
 * The value of a THeader key/value header (names compared in any case, as Envoy lowercases
 * them); undefined for plain framed frames, which carry none.
 */
function lookup(buf: Buffer, off: number, _hdr: Int32Array, key: string): string | undefined {
  if (!isHeaderFrame(buf, off, buf.length) || headerFrameMessage(buf, off, buf.length) < 0) return undefined;
  const hEnd = off + 14 + buf.readUInt16BE(off + 12) * 4;
  pos.p = off + 14;
  varint(buf, hEnd);
  varint(buf, hEnd); // protocol id, transform count (0)
  for (;;) {
    const type = varint(buf, hEnd);
    if (type !== INFO_KEYVALUE) return undefined; // padding (0), unknown info, or the end
    let n = varint(buf, hEnd);
    if (n < 0) return undefined;
    while (n-- > 0) {
      const kl = varint(buf, hEnd);
      if (kl < 0 || pos.p + kl > hEnd) return undefined;
      const k = pos.p;
      pos.p += kl;
      const vl = varint(buf, hEnd);
      if (vl < 0 || pos.p + vl > hEnd) return undefined;
      const v = pos.p;
      pos.p += vl;
      if (kl === key.length && buf.toString('latin1', k, k + kl).toLowerCase() === key.toLowerCase()) return buf.toString('utf8', v, v + vl);
    }
  }
}

/** A TApplicationException reply: {1: string message, 2: i32 type}, under the call's name and seqid. */
function localReply(buf: Buffer, off: number, hdr: Int32Array, kind: LocalReplyKind, message: string): Buffer {
  const header = isHeaderFrame(buf, off, off + hdr[H.FRAME_LEN]!);
  messageHeader(buf, header ? headerFrameMessage(buf, off, off + hdr[H.FRAME_LEN]!) : off + 4, off + hdr[H.FRAME_LEN]!);
  const name = buf.subarray(at.nameOff, at.nameOff + at.nameLen);
  const msg = Buffer.from(message, 'utf8');
  // A THeader client reads THeader replies: the same framing with an empty header block
  // (binary protocol, no transforms, padded to one word) and the request's sequence number.
  const pre = header ? 18 : 4;
  const body = 4 + 4 + name.length + 4 + (3 + 4 + msg.length) + (3 + 4) + 1;
  const out = Buffer.alloc(pre + body);
  let p = out.writeInt32BE(pre - 4 + body, 0);
  if (header) {
    out.writeUInt16BE(HEADER_MAGIC, 4);
    out.writeInt32BE(buf.readInt32BE(off + 8), 8);
    out.writeUInt16BE(1, 12);
    p = 18; // protocol 0, no transforms, two bytes of padding: all zeros
  }
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
  lookup,
  heartbeatResponse: () => Buffer.alloc(0), // never asked: no frame decodes as a heartbeat
  heartbeatRequest: () => null,
  localReply,
} satisfies RpcCodec;

/** A framed strict-binary message (a length with a zero top byte, then 0x80 0x01) or a THeader frame (0x0f 0xff). */
export function looksLikeThrift(buf: Buffer): boolean | null {
  if (buf.length === 0) return null;
  if (buf[0] !== 0) return false;
  if (buf.length < 6) return null;
  return (buf[4] === 0x80 && buf[5] === 0x01) || (buf[4] === 0x0f && buf[5] === 0xff);
}
