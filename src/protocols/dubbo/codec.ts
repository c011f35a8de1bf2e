import { countJvmParams, Hessian2Skipper, readString, scalarText, span, spanEquals, writeString } from '../hessian2.js';
import { DecodeError, FrameKind, H, type LazyField, type LocalReplyKind, type ResponseClass, type RpcCodec } from '../types.js';
import { replaced, type MetadataAccess } from '../metadata.js';

/**
 * Dubbo 2: a 16-byte header — magic 0xdabb, flags (0x80 request, 0x40 two-way, 0x20 event,
 * low 5 bits serialization), status, request id int64, body length int32 — then the body.
 * A hessian2 request body is: dubbo version, service path, service version, method, parameter
 * descriptor, the arguments, and an attachments map. The first four are cheap and decoded with
 * the header; the group is in the attachments, past the arguments, so it is decoded on demand.
 */

const HEADER = 16;
const FLAG_REQUEST = 0x80;
const FLAG_TWOWAY = 0x40;
const FLAG_EVENT = 0x20;
const SERIALIZATION_MASK = 0x1f;
export const HESSIAN2 = 2;

export const DubboStatus = {
  OK: 20,
  CLIENT_TIMEOUT: 30,
  SERVER_TIMEOUT: 31,
  BAD_REQUEST: 40,
  BAD_RESPONSE: 50,
  SERVICE_NOT_FOUND: 60,
  SERVICE_ERROR: 70,
  SERVER_ERROR: 80,
  CLIENT_ERROR: 90,
  SERVER_THREADPOOL_EXHAUSTED: 100,
} as const;

const REPLY_STATUS: Record<LocalReplyKind, number> = {
  no_route: DubboStatus.SERVICE_NOT_FOUND,
  no_upstream: DubboStatus.SERVER_ERROR,
  overflow: DubboStatus.SERVER_THREADPOOL_EXHAUSTED,
  timeout: DubboStatus.SERVER_TIMEOUT,
  bad_request: DubboStatus.BAD_REQUEST,
};

const skipper = new Hessian2Skipper();

function decodeHeader(buf: Buffer, off: number, end: number, maxFrame: number, out: Int32Array): void {
  out.fill(-1);
  out[H.FRAME_LEN] = 0;
  const avail = end - off;
  // Reject a wrong magic as soon as its bytes are in, before buffering anything more.
  if (avail >= 1 && buf[off] !== 0xda) return void (out[H.STATE] = DecodeError.BAD_MAGIC);
  if (avail >= 2 && buf[off + 1] !== 0xbb) return void (out[H.STATE] = DecodeError.BAD_MAGIC);
  if (avail < HEADER) return void (out[H.STATE] = 0);
  const flag = buf[off + 2]!;
  const bodyLen = buf.readInt32BE(off + 12);
  if (bodyLen < 0) return void (out[H.STATE] = DecodeError.BAD_HEADER);
  const frameLen = HEADER + bodyLen;
  if (frameLen > maxFrame) return void (out[H.STATE] = DecodeError.TOO_LARGE);
  const isReq = (flag & FLAG_REQUEST) !== 0;
  let kind: number;
  if (flag & FLAG_EVENT) {
    // Heartbeats are two-way events; a one-way event (e.g. "readonly") needs no answer.
    if (isReq) kind = flag & FLAG_TWOWAY ? FrameKind.HEARTBEAT : FrameKind.EVENT;
    else kind = FrameKind.HEARTBEAT_RESPONSE;
  } else if (isReq) kind = flag & FLAG_TWOWAY ? FrameKind.REQUEST : FrameKind.ONEWAY;
  else kind = FrameKind.RESPONSE;
  const serialization = flag & SERIALIZATION_MASK;

  out[H.FRAME_LEN] = frameLen;
  out[H.KIND] = kind;
  out[H.ID_HI] = buf.readInt32BE(off + 4);
  out[H.ID_LO] = buf.readInt32BE(off + 8);
  out[H.TIMEOUT_MS] = 0;
  out[H.STATUS] = isReq ? 0 : buf[off + 3]!;
  out[H.SERIALIZATION] = serialization;
  out[H.BODY_OFF] = off + HEADER;
  if (avail < frameLen) return void (out[H.STATE] = 0);

  if (kind === FrameKind.REQUEST || kind === FrameKind.ONEWAY) {
    // Routing needs the body's strings; only hessian2 is understood (as by Envoy's dubbo_proxy).
    if (serialization !== HESSIAN2) return void (out[H.STATE] = DecodeError.BAD_BODY);
    const bodyEnd = off + frameLen;
    let p = readString(buf, off + HEADER, bodyEnd); // dubbo version
    if (p < 0) return void (out[H.STATE] = DecodeError.BAD_BODY);
    p = readString(buf, p, bodyEnd);
    if (p < 0) return void (out[H.STATE] = DecodeError.BAD_BODY);
    out[H.SERVICE_OFF] = span.off;
    out[H.SERVICE_LEN] = span.len;
    p = readString(buf, p, bodyEnd);
    if (p < 0) return void (out[H.STATE] = DecodeError.BAD_BODY);
    out[H.VERSION_OFF] = span.off;
    out[H.VERSION_LEN] = span.len;
    p = readString(buf, p, bodyEnd);
    if (p < 0) return void (out[H.STATE] = DecodeError.BAD_BODY);
    out[H.METHOD_OFF] = span.off;
    out[H.METHOD_LEN] = span.len;
  }
  out[H.STATE] = 1;
}

/**
 * Walks past the parameter descriptor and every argument to the attachments map. Returns the
 * position of its first key; `end` when the body has no attachments (very old clients, or a
 * null map); -1 when the body cannot be walked.
 */
function attachments(buf: Buffer, end: number, hdr: Int32Array): number {
  const methodOff = hdr[H.METHOD_OFF]!;
  if (methodOff < 0) return -1;
  let p = readString(buf, methodOff + hdr[H.METHOD_LEN]!, end);
  if (p < 0) return -1;
  const nArgs = countJvmParams(buf, span.off, span.len);
  if (nArgs < 0) return -1;
  skipper.reset();
  for (let i = 0; i < nArgs && p >= 0; i++) p = skipper.skip(buf, p, end);
  if (p < 0) return -1;
  if (p >= end) return end;
  const tag = buf[p]!;
  if (tag === 0x48 /* H */) return p + 1;
  if (tag === 0x4d /* M */) return readString(buf, p + 1, end); // past the map's type name
  if (tag === 0x4e /* N */) return end;
  return -1;
}

/**
 * Finds `key` in the attachments; leaves its value in `span` and returns its end, or returns
 * 0 when absent and -1 when the body cannot be walked. Keys are strings in practice; any other
 * key is skipped with its value.
 */
function findAttachment(buf: Buffer, off: number, hdr: Int32Array, key: string): number {
  const end = off + hdr[H.FRAME_LEN]!;
  let p = attachments(buf, end, hdr);
  if (p < 0) return -1;
  while (p < end && buf[p] !== 0x5a /* Z */) {
    const keyAt = p;
    p = skipper.skip(buf, p, end);
    if (p < 0) return -1;
    if (readString(buf, keyAt, end) >= 0 && spanEquals(buf, key)) return readString(buf, p, end);
    p = skipper.skip(buf, p, end);
    if (p < 0) return -1;
  }
  return 0;
}

/** The group is an attachment: an absent one is the empty group, an unwalkable body -2. */
function decodeLazy(buf: Buffer, off: number, out: Int32Array, field: LazyField): void {
  if (field === 'method') return; // decoded with the header
  const r = findAttachment(buf, off, out, 'group');
  out[H.GROUP_OFF] = r > 0 ? span.off : r === 0 ? out[H.BODY_OFF]! : -2;
  out[H.GROUP_LEN] = r > 0 ? span.len : 0;
}

/** Argument `index` as text (params_match): past the descriptor and the arguments before it. */
function param(buf: Buffer, off: number, hdr: Int32Array, index: number): string | undefined {
  const end = off + hdr[H.FRAME_LEN]!;
  const methodOff = hdr[H.METHOD_OFF]!;
  if (methodOff < 0) return undefined;
  let p = readString(buf, methodOff + hdr[H.METHOD_LEN]!, end);
  if (p < 0) return undefined;
  const nArgs = countJvmParams(buf, span.off, span.len);
  if (index >= nArgs) return undefined;
  skipper.reset();
  for (let i = 0; i < index && p >= 0; i++) p = skipper.skip(buf, p, end);
  return p < 0 ? undefined : scalarText(buf, p, end);
}

function lookup(buf: Buffer, off: number, hdr: Int32Array, key: string): string | undefined {
  return findAttachment(buf, off, hdr, key) > 0 ? buf.toString('utf8', span.off, span.off + span.len) : undefined;
}

/** The attachment string at `p` (one-piece strings only; chunked ones are never trace values), or null. */
function stringAt(buf: Buffer, p: number, end: number): string | null {
  if (p >= end || buf[p] === 0x52 /* R */ || readString(buf, p, end) < 0) return null;
  return buf.toString('utf8', span.off, span.off + span.len);
}

/** Tracing: every string-to-string attachment of a request, in one walk of the body. */
function entries(buf: Buffer, off: number, hdr: Int32Array, visit: (key: string, value: string) => void): boolean {
  const end = off + hdr[H.FRAME_LEN]!;
  let p = attachments(buf, end, hdr);
  if (p < 0) return false;
  while (p < end && buf[p] !== 0x5a /* Z */) {
    const key = stringAt(buf, p, end);
    p = skipper.skip(buf, p, end);
    if (p < 0) return false;
    const value = key === null ? null : stringAt(buf, p, end);
    p = skipper.skip(buf, p, end);
    if (p < 0) return false;
    if (value !== null) visit(key!, value);
  }
  return true;
}

/**
 * Tracing: the request with some attachments set. Entries are copied as bytes; dropping the
 * replaced ones (strings) shifts no object references. null when the body has no attachments
 * map to extend or cannot be walked.
 */
function withEntries(buf: Buffer, off: number, hdr: Int32Array, set: ReadonlyArray<readonly [string, string]>): Buffer | null {
  const end = off + hdr[H.FRAME_LEN]!;
  let p = attachments(buf, end, hdr);
  if (p < 0 || p >= end) return null;
  const parts: Buffer[] = [buf.subarray(off, p)];
  while (p < end && buf[p] !== 0x5a /* Z */) {
    const from = p;
    const key = stringAt(buf, p, end);
    p = skipper.skip(buf, p, end);
    if (p < 0) return null;
    p = skipper.skip(buf, p, end);
    if (p < 0) return null;
    if (key === null || !replaced(key, set)) parts.push(buf.subarray(from, p));
  }
  if (p >= end) return null;
  const added: number[] = [];
  for (const [k, v] of set) {
    writeString(added, k);
    writeString(added, v);
  }
  parts.push(Buffer.from(added), buf.subarray(p, end));
  const out = Buffer.concat(parts);
  out.writeInt32BE(out.length - HEADER, 12);
  return out;
}

function writeRequestId(buf: Buffer, off: number, hi: number, lo: number): void {
  // Byte stores, not writeInt32BE (its range checks): every call and answer passes here.
  buf[off + 4] = hi >>> 24;
  buf[off + 5] = hi >>> 16;
  buf[off + 6] = hi >>> 8;
  buf[off + 7] = hi;
  buf[off + 8] = lo >>> 24;
  buf[off + 9] = lo >>> 16;
  buf[off + 10] = lo >>> 8;
  buf[off + 11] = lo;
}

function frame(flag: number, status: number, idFrom: Buffer | null, idOff: number, hi: number, lo: number, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(HEADER + body.length);
  out[0] = 0xda;
  out[1] = 0xbb;
  out[2] = flag;
  out[3] = status;
  if (idFrom) idFrom.copy(out, 4, idOff + 4, idOff + 12);
  else {
    out.writeInt32BE(hi | 0, 4);
    out.writeInt32BE(lo | 0, 8);
  }
  out.writeInt32BE(body.length, 12);
  body.copy(out, HEADER);
  return out;
}

const NULL_BODY = Buffer.from([0x4e]);

/** hessian2 for the one-character string "R": Dubbo's READONLY event data. */
const READONLY_BODY = Buffer.from([0x01, 0x52]);

/**
 * Dubbo's READONLY event, as a provider going away sends it (a one-way request event whose data
 * is "R"): consumers mark the channel read-only and send their next calls elsewhere. Built
 * once and never written into: every drained connection gets the same bytes (id 0, never a call's).
 */
export const DUBBO_READONLY_EVENT: Buffer = frame(FLAG_REQUEST | FLAG_EVENT | HESSIAN2, 0, null, 0, 0, 0, READONLY_BODY);

/** Provider-side statuses; client errors (40, 90) and a missing service (60, 70) are not the host's health. */
function classify(hdr: Int32Array): ResponseClass {
  switch (hdr[H.STATUS]) {
    case DubboStatus.SERVER_THREADPOOL_EXHAUSTED:
      return 'overloaded';
    case DubboStatus.SERVER_TIMEOUT:
      return 'timeout';
    case DubboStatus.SERVER_ERROR:
    case DubboStatus.BAD_RESPONSE:
      return 'failed';
    default:
      return 'success';
  }
}

export const dubboCodec = {
  name: 'dubbo',
  classify,
  decodeHeader,
  decodeLazy,
  param,
  writeRequestId,
  lookup,
  entries,
  withEntries,
  heartbeatResponse: (buf, off, hdr) => frame(FLAG_EVENT | (hdr[H.SERIALIZATION]! & SERIALIZATION_MASK), DubboStatus.OK, buf, off, 0, 0, NULL_BODY),
  heartbeatRequest: (hi, lo) => frame(FLAG_REQUEST | FLAG_TWOWAY | FLAG_EVENT | HESSIAN2, 0, null, 0, hi, lo, NULL_BODY),
  localReply(buf, off, hdr, kind, message) {
    // A non-OK response carries the error message as one hessian2 string.
    const body: number[] = [];
    writeString(body, message);
    return frame(hdr[H.SERIALIZATION]! & SERIALIZATION_MASK, REPLY_STATUS[kind], buf, off, 0, 0, Buffer.from(body));
  },
} satisfies RpcCodec & MetadataAccess;

export function looksLikeDubbo(buf: Buffer): boolean | null {
  if (buf.length < 1) return null;
  if (buf[0] !== 0xda) return false;
  if (buf.length < 2) return null;
  return buf[1] === 0xbb;
}
