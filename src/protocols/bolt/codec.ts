import zlib from 'node:zlib';
import { Hessian2DraftSkipper, Hessian2Skipper, intValue, utf8SkipChars, readInt, readString, span, spanEquals, writeInt, writeString } from '../hessian2.js';
import { DecodeError, FrameKind, H, type LazyField, type LocalReplyKind, type ResponseClass, type RpcCodec } from '../types.js';
import { replaced, type MetadataAccess } from '../metadata.js';

/**
 * SOFARPC Bolt, v1 (proto 0x01) and v2 (proto 0x02). All fields big-endian:
 *
 *   v1 request  proto type cmd:2 ver2 id:4 codec timeout:4 classLen:2 headerLen:2 contentLen:4   (22)
 *   v1 response proto type cmd:2 ver2 id:4 codec status:2  classLen:2 headerLen:2 contentLen:4   (20)
 *   v2 adds ver1 after proto and a switch byte after codec (bit 0: a CRC32 trails the frame).
 *
 * Then class name, a header map of (u32 len, key, u32 len, value) pairs, and the content.
 */

const TYPE_RESPONSE = 0;
const TYPE_REQUEST = 1;
const TYPE_ONEWAY = 2;
const CMD_HEARTBEAT = 0;
const CMD_REQUEST = 1;
const CMD_RESPONSE = 2;
const CODEC_HESSIAN2 = 1;

export const BoltStatus = {
  SUCCESS: 0x0000,
  ERROR: 0x0001,
  SERVER_EXCEPTION: 0x0002,
  UNKNOWN: 0x0003,
  SERVER_THREADPOOL_BUSY: 0x0004,
  ERROR_COMM: 0x0005,
  NO_PROCESSOR: 0x0006,
  TIMEOUT: 0x0007,
  CLIENT_SEND_ERROR: 0x0008,
  CODEC_EXCEPTION: 0x0009,
  CONNECTION_CLOSED: 0x0010,
} as const;

const REPLY_STATUS: Record<LocalReplyKind, number> = {
  no_route: BoltStatus.NO_PROCESSOR,
  no_upstream: BoltStatus.CONNECTION_CLOSED,
  overflow: BoltStatus.SERVER_THREADPOOL_BUSY,
  timeout: BoltStatus.TIMEOUT,
  bad_request: BoltStatus.CODEC_EXCEPTION,
};

const KEY_SERVICE = 'service';
const KEY_METHOD = 'sofa_head_method_name';
const KEY_APP = 'sofa_head_target_app';
const ERROR_CLASS = 'com.alipay.remoting.rpc.exception.RpcServerException';

/** Where the version-dependent fields sit: v2 shifts everything after proto by one (ver1) and after codec by two. */
function layout(proto: number): number {
  return proto === 1 ? 0 : 1;
}

const skipper = new Hessian2Skipper();
const draftSkipper = new Hessian2DraftSkipper();

function decodeHeader(buf: Buffer, off: number, end: number, maxFrame: number, out: Int32Array): void {
  out.fill(-1);
  out[H.FRAME_LEN] = 0;
  const avail = end - off;
  if (avail < 1) return void (out[H.STATE] = 0);
  const proto = buf[off]!;
  if (proto !== 1 && proto !== 2) return void (out[H.STATE] = DecodeError.BAD_MAGIC);
  const v2 = layout(proto);
  if (avail < 2 + v2) return void (out[H.STATE] = 0);
  const type = buf[off + 1 + v2]!;
  if (type > TYPE_ONEWAY) return void (out[H.STATE] = DecodeError.UNKNOWN_TYPE);
  const isResp = type === TYPE_RESPONSE;
  const hdrLen = (isResp ? 20 : 22) + 2 * v2;
  if (avail < hdrLen) return void (out[H.STATE] = 0);

  const cmd = buf.readUInt16BE(off + 2 + v2);
  const codec = buf[off + 9 + v2]!;
  const after = off + 10 + 2 * v2; // timeout (request) or status (response)
  const lens = after + (isResp ? 2 : 4);
  const classLen = buf.readUInt16BE(lens);
  const headerLen = buf.readUInt16BE(lens + 2);
  const contentLen = buf.readUInt32BE(lens + 4);
  const crc = v2 && buf[off + 11]! & 1 ? 4 : 0;
  const frameLen = hdrLen + classLen + headerLen + contentLen + crc;
  if (frameLen > maxFrame) return void (out[H.STATE] = DecodeError.TOO_LARGE);

  let kind: number;
  if (cmd === CMD_HEARTBEAT) kind = isResp ? FrameKind.HEARTBEAT_RESPONSE : FrameKind.HEARTBEAT;
  else if (cmd === CMD_REQUEST && !isResp) kind = type === TYPE_ONEWAY ? FrameKind.ONEWAY : FrameKind.REQUEST;
  else if (cmd === CMD_RESPONSE && isResp) kind = FrameKind.RESPONSE;
  else return void (out[H.STATE] = DecodeError.UNKNOWN_TYPE);

  out[H.FRAME_LEN] = frameLen;
  out[H.KIND] = kind;
  out[H.ID_HI] = 0;
  out[H.ID_LO] = buf.readInt32BE(off + 5 + v2);
  out[H.SERIALIZATION] = codec;
  out[H.TIMEOUT_MS] = isResp ? 0 : Math.max(0, buf.readInt32BE(after));
  out[H.STATUS] = isResp ? buf.readUInt16BE(after) : 0;
  const hdrStart = off + hdrLen + classLen;
  const bodyOff = hdrStart + headerLen;
  out[H.BODY_OFF] = bodyOff;
  if (avail < frameLen) return void (out[H.STATE] = 0);

  if (kind === FrameKind.REQUEST || kind === FrameKind.ONEWAY) {
    // Bolt has no group; an empty one is decoded for free.
    out[H.GROUP_OFF] = bodyOff;
    out[H.GROUP_LEN] = 0;
    out[H.SERVICE_OFF] = hdrStart;
    out[H.SERVICE_LEN] = 0;
    out[H.VERSION_OFF] = hdrStart;
    out[H.VERSION_LEN] = 0;
    let p = hdrStart;
    while (p < bodyOff) {
      if (p + 4 > bodyOff) return void (out[H.STATE] = DecodeError.BAD_HEADER);
      const kl = buf.readInt32BE(p);
      const k = p + 4;
      if (kl < 0 || k + kl + 4 > bodyOff) return void (out[H.STATE] = DecodeError.BAD_HEADER);
      // sofa-bolt-node writes a null value as length -1: read it as empty.
      const rawVl = buf.readInt32BE(k + kl);
      const vl = rawVl === -1 ? 0 : rawVl;
      const v = k + kl + 4;
      if (vl < 0 || v + vl > bodyOff) return void (out[H.STATE] = DecodeError.BAD_HEADER);
      if (keyIs(buf, k, kl, KEY_SERVICE)) {
        // `<interface>:<version>`; the version is what follows the last ':'.
        const colon = buf.lastIndexOf(0x3a, v + vl - 1);
        if (colon >= v) {
          out[H.SERVICE_OFF] = v;
          out[H.SERVICE_LEN] = colon - v;
          out[H.VERSION_OFF] = colon + 1;
          out[H.VERSION_LEN] = v + vl - colon - 1;
        } else {
          out[H.SERVICE_OFF] = v;
          out[H.SERVICE_LEN] = vl;
        }
      } else if (keyIs(buf, k, kl, KEY_METHOD)) {
        out[H.METHOD_OFF] = v;
        out[H.METHOD_LEN] = vl;
      } else if (keyIs(buf, k, kl, KEY_APP)) {
        out[H.APP_OFF] = v;
        out[H.APP_LEN] = vl;
      }
      p = v + vl;
    }
  }
  out[H.STATE] = 1;
}

function keyIs(buf: Buffer, off: number, len: number, key: string): boolean {
  if (len !== key.length) return false;
  for (let i = 0; i < len; i++) if (buf[off + i] !== key.charCodeAt(i)) return false;
  return true;
}

/**
 * The method of a hessian2 request lives in the SofaRequest object that opens the content:
 * a class definition naming the fields, then the object's values in that order.
 */
function decodeLazy(buf: Buffer, off: number, out: Int32Array, field: LazyField): void {
  if (field === 'group') {
    out[H.GROUP_OFF] = out[H.BODY_OFF]!;
    out[H.GROUP_LEN] = 0;
    return;
  }
  out[H.METHOD_OFF] = -2;
  out[H.METHOD_LEN] = 0;
  if (out[H.SERIALIZATION] !== CODEC_HESSIAN2) return;
  const proto = buf[off]!;
  const crc = layout(proto) && buf[off + 11]! & 1 ? 4 : 0;
  const end = off + out[H.FRAME_LEN]! - crc;
  let p = out[H.BODY_OFF]!;
  if (p >= end) return;
  // Class definition: type name, field count, field names; note where `methodName` sits.
  // Java SOFA writes the final hessian2 form ('C' + string); Node SOFA clients the draft form
  // ('O' + int length + raw bytes).
  const draft = buf[p] === 0x4f;
  if (!draft && buf[p] !== 0x43) return;
  if (draft) {
    p = readInt(buf, p + 1, end);
    if (p < 0 || intValue < 0) return;
    p = utf8SkipChars(buf, p, end, intValue);
  } else p = readString(buf, p + 1, end);
  if (p < 0) return;
  p = readInt(buf, p, end);
  const n = intValue;
  if (p < 0 || n < 0) return;
  let idx = -1;
  for (let i = 0; i < n; i++) {
    p = readString(buf, p, end);
    if (p < 0) return;
    if (idx < 0 && spanEquals(buf, 'methodName')) idx = i;
  }
  if (idx < 0 || p + 2 > end) return;
  // The instance: draft 'o' + int ref; final 'O' + int ref or the compact 0x60 + ref.
  const tag = buf[p]!;
  if (tag === 0x60 && !draft) p += 1;
  else if (tag === (draft ? 0x6f : 0x4f) && buf[p + 1] === 0x90) p += 2;
  else return;
  const walker = draft ? draftSkipper.reset().addClass(n) : skipper.reset().addClass(n);
  for (let i = 0; i < idx && p >= 0; i++) p = walker.skip(buf, p, end);
  if (p < 0 || readString(buf, p, end) < 0) return;
  out[H.METHOD_OFF] = span.off;
  out[H.METHOD_LEN] = span.len;
}

function fixCrc(buf: Buffer, off: number): void {
  if (buf[off] !== 2 || !(buf[off + 11]! & 1)) return;
  decodeHeader(buf, off, buf.length, 0x7fffffff, scratch);
  const len = scratch[H.FRAME_LEN]!;
  if (len <= 4 || off + len > buf.length) return;
  buf.writeUInt32BE(zlib.crc32(buf.subarray(off, off + len - 4)), off + len - 4);
}
const scratch = new Int32Array(H.SIZE);

function writeRequestId(buf: Buffer, off: number, _hi: number, lo: number): void {
  // Byte stores, not writeUInt32BE (its range checks): every call and answer passes here.
  const at = off + 5 + layout(buf[off]!);
  buf[at] = lo >>> 24;
  buf[at + 1] = lo >>> 16;
  buf[at + 2] = lo >>> 8;
  buf[at + 3] = lo;
  fixCrc(buf, off);
}

/** A response frame with an empty class, no header and the given content. */
function response(req: Buffer, off: number, cmd: number, status: number, cls: string, content: Buffer): Buffer {
  const proto = req[off]!;
  const v2 = layout(proto);
  const clsBytes = Buffer.from(cls, 'latin1');
  const hdrLen = 20 + 2 * v2;
  const out = Buffer.allocUnsafe(hdrLen + clsBytes.length + content.length);
  out[0] = proto;
  if (v2) out[1] = req[off + 1]!;
  out[1 + v2] = TYPE_RESPONSE;
  out.writeUInt16BE(cmd, 2 + v2);
  out[4 + v2] = req[off + 4 + v2]!;
  req.copy(out, 5 + v2, off + 5 + v2, off + 9 + v2);
  out[9 + v2] = req[off + 9 + v2]!;
  if (v2) out[11] = 0; // no CRC on frames the proxy builds
  const after = 10 + 2 * v2;
  out.writeUInt16BE(status, after);
  out.writeUInt16BE(clsBytes.length, after + 2);
  out.writeUInt16BE(0, after + 4);
  out.writeUInt32BE(content.length, after + 6);
  clsBytes.copy(out, hdrLen);
  content.copy(out, hdrLen + clsBytes.length);
  return out;
}

/**
 * An RpcServerException, which SOFA clients turn into the error they raise. Written in the
 * hessian dialect the request used: Java clients read final hessian2, Node SOFA clients the
 * 2.0 draft (and fail on the other), so the reply mirrors the request's class definition.
 */
function errorContent(message: string, draft: boolean): Buffer {
  const b: number[] = [];
  if (draft) {
    b.push(0x4f);
    writeInt(b, ERROR_CLASS.length);
    for (let i = 0; i < ERROR_CLASS.length; i++) b.push(ERROR_CLASS.charCodeAt(i));
  } else {
    b.push(0x43);
    writeString(b, ERROR_CLASS);
  }
  writeInt(b, 3);
  writeString(b, 'detailMessage');
  writeString(b, 'stackTrace');
  writeString(b, 'cause');
  if (draft) b.push(0x6f, 0x90);
  else b.push(0x60);
  writeString(b, message, draft);
  b.push(0x4e, 0x4e);
  return Buffer.from(b);
}

/** True if the request's content opens with a draft-form class definition. */
function usesDraft(buf: Buffer, hdr: Int32Array): boolean {
  const body = hdr[H.BODY_OFF]!;
  return body >= 0 && body < buf.length && buf[body] === 0x4f;
}

const EMPTY = Buffer.alloc(0);

function lookup(buf: Buffer, off: number, hdr: Int32Array, key: string): string | undefined {
  const bodyOff = hdr[H.BODY_OFF]!;
  const v2 = layout(buf[off]!);
  let p = bodyOff - buf.readUInt16BE(off + 16 + 2 * v2);
  while (p + 4 <= bodyOff) {
    const kl = buf.readInt32BE(p);
    const vl = Math.max(0, buf.readInt32BE(p + 4 + kl)); // -1 = null (validated by decodeHeader)
    const v = p + 8 + kl;
    if (keyIs(buf, p + 4, kl, key)) return buf.toString('utf8', v, v + vl);
    p = v + vl;
  }
  return undefined;
}

/** Tracing: every header-map entry of a request (the map was validated by decodeHeader). */
function entries(buf: Buffer, off: number, hdr: Int32Array, visit: (key: string, value: string) => void): boolean {
  const bodyOff = hdr[H.BODY_OFF]!;
  let p = bodyOff - buf.readUInt16BE(off + 16 + 2 * layout(buf[off]!));
  while (p + 4 <= bodyOff) {
    const kl = buf.readInt32BE(p);
    const vl = Math.max(0, buf.readInt32BE(p + 4 + kl));
    const v = p + 8 + kl;
    visit(buf.toString('utf8', p + 4, p + 4 + kl), buf.toString('utf8', v, v + vl));
    p = v + vl;
  }
  return true;
}

/** Tracing: the request with some header-map entries set; null if the map would outgrow its u16 length. */
function withEntries(buf: Buffer, off: number, hdr: Int32Array, set: ReadonlyArray<readonly [string, string]>): Buffer | null {
  const v2 = layout(buf[off]!);
  const lenAt = off + 16 + 2 * v2;
  const bodyOff = hdr[H.BODY_OFF]!;
  const hdrStart = bodyOff - buf.readUInt16BE(lenAt);
  const end = off + hdr[H.FRAME_LEN]!;
  const parts: Buffer[] = [buf.subarray(off, hdrStart)];
  let p = hdrStart;
  while (p + 4 <= bodyOff) {
    const kl = buf.readInt32BE(p);
    const next = p + 8 + kl + Math.max(0, buf.readInt32BE(p + 4 + kl));
    if (!replaced(buf.toString('utf8', p + 4, p + 4 + kl), set)) parts.push(buf.subarray(p, next));
    p = next;
  }
  for (const [k, v] of set) {
    const kb = Buffer.from(k, 'utf8');
    const vb = Buffer.from(v, 'utf8');
    const e = Buffer.allocUnsafe(8 + kb.length + vb.length);
    e.writeInt32BE(kb.length, 0);
    kb.copy(e, 4);
    e.writeInt32BE(vb.length, 4 + kb.length);
    vb.copy(e, 8 + kb.length);
    parts.push(e);
  }
  let headerLen = 0;
  for (let i = 1; i < parts.length; i++) headerLen += parts[i]!.length;
  if (headerLen > 0xffff) return null;
  parts.push(buf.subarray(bodyOff, end));
  const out = Buffer.concat(parts);
  out.writeUInt16BE(headerLen, lenAt - off);
  fixCrc(out, 0);
  return out;
}

/**
 * SERVER_EXCEPTION is how SOFA reports an exception thrown by the service (a business error),
 * so it does not count against the host; transport and server failures do.
 */
function classify(hdr: Int32Array): ResponseClass {
  switch (hdr[H.STATUS]) {
    case BoltStatus.SERVER_THREADPOOL_BUSY:
      return 'overloaded';
    case BoltStatus.TIMEOUT:
      return 'timeout';
    case BoltStatus.ERROR:
    case BoltStatus.UNKNOWN:
    case BoltStatus.ERROR_COMM:
    case BoltStatus.NO_PROCESSOR:
    case BoltStatus.CODEC_EXCEPTION:
      return 'failed';
    default:
      return 'success';
  }
}

export const boltCodec = {
  name: 'bolt',
  classify,
  decodeHeader,
  decodeLazy,
  writeRequestId,
  lookup,
  entries,
  withEntries,
  heartbeatResponse: (buf, off) => response(buf, off, CMD_HEARTBEAT, BoltStatus.SUCCESS, '', EMPTY),
  heartbeatRequest(_hi, lo) {
    const out = Buffer.alloc(22);
    out[0] = 1;
    out[1] = TYPE_REQUEST;
    out.writeUInt16BE(CMD_HEARTBEAT, 2);
    out[4] = 1;
    out.writeUInt32BE(lo >>> 0, 5);
    out[9] = CODEC_HESSIAN2;
    out.writeInt32BE(3000, 10);
    return out;
  },
  localReply: (buf, off, hdr, kind, message) => response(buf, off, CMD_RESPONSE, REPLY_STATUS[kind], ERROR_CLASS, errorContent(message, usesDraft(buf, hdr))),
} satisfies RpcCodec & MetadataAccess;

/** Bolt frames start with proto 1 or 2 and a type byte of 0–2 (request, response, oneway). */
export function looksLikeBolt(buf: Buffer): boolean | null {
  if (buf.length < 1) return null;
  const proto = buf[0];
  if (proto !== 1 && proto !== 2) return false;
  const typeAt = proto === 1 ? 1 : 2;
  if (buf.length <= typeAt) return null;
  return buf[typeAt]! <= TYPE_ONEWAY;
}
