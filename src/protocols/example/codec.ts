import { DecodeError, FrameKind, H, type LocalReplyKind, type RpcCodec } from '../types.js';

/**
 * The template for a new private protocol: copy this file, change the wire format, add one
 * line to src/protocols/index.ts, and `rpc_proxy` routes, balances, multiplexes, retries and
 * answers locally for it — select it with `codec: <name>` in the filter config.
 *
 * The "example" wire format, 16-byte header, big-endian:
 *
 *   magic:2 = 0x5852 ('XR')  type:1  status:1  id:4  metaLen:2  reserved:2  bodyLen:4
 *
 * type: 0 request, 1 response, 2 one-way request, 3 heartbeat, 4 heartbeat response.
 * Then `metaLen` bytes of `key=value\n` lines (service, version, method, group and any other
 * entry a route may match as a header), then `bodyLen` opaque bytes.
 */

const MAGIC = 0x5852;
const HEADER = 16;
const T_REQUEST = 0;
const T_RESPONSE = 1;
const T_ONEWAY = 2;
const T_HEARTBEAT = 3;
const T_HEARTBEAT_RESPONSE = 4;
const KINDS = [FrameKind.REQUEST, FrameKind.RESPONSE, FrameKind.ONEWAY, FrameKind.HEARTBEAT, FrameKind.HEARTBEAT_RESPONSE];

/** Status codes of local replies; 0 is success. */
export const ExampleStatus: Record<LocalReplyKind, number> = { no_route: 1, no_upstream: 2, overflow: 3, timeout: 4, bad_request: 5 };

const SLOTS: Record<string, [number, number]> = {
  service: [H.SERVICE_OFF, H.SERVICE_LEN],
  version: [H.VERSION_OFF, H.VERSION_LEN],
  method: [H.METHOD_OFF, H.METHOD_LEN],
  group: [H.GROUP_OFF, H.GROUP_LEN],
};

function decodeHeader(buf: Buffer, off: number, end: number, maxFrame: number, out: Int32Array): void {
  out.fill(-1);
  out[H.FRAME_LEN] = 0;
  const avail = end - off;
  if (avail >= 2 && buf.readUInt16BE(off) !== MAGIC) return void (out[H.STATE] = DecodeError.BAD_MAGIC);
  if (avail < HEADER) return void (out[H.STATE] = 0);
  const type = buf[off + 2]!;
  if (type >= KINDS.length) return void (out[H.STATE] = DecodeError.UNKNOWN_TYPE);
  const metaLen = buf.readUInt16BE(off + 8);
  const frameLen = HEADER + metaLen + buf.readUInt32BE(off + 12);
  if (frameLen > maxFrame) return void (out[H.STATE] = DecodeError.TOO_LARGE);
  out[H.FRAME_LEN] = frameLen;
  out[H.KIND] = KINDS[type]!;
  out[H.ID_HI] = 0;
  out[H.ID_LO] = buf.readInt32BE(off + 4);
  out[H.STATUS] = buf[off + 3]!;
  out[H.TIMEOUT_MS] = 0;
  out[H.SERIALIZATION] = 0;
  out[H.BODY_OFF] = off + HEADER + metaLen;
  if (avail < frameLen) return void (out[H.STATE] = 0);
  if (type === T_REQUEST || type === T_ONEWAY) {
    // Every routing field is in the metadata, so all are decoded here; absent ones are empty.
    for (const [o, l] of Object.values(SLOTS)) {
      out[o] = off + HEADER;
      out[l] = 0;
    }
    const metaEnd = off + HEADER + metaLen;
    for (let p = off + HEADER; p < metaEnd; ) {
      let nl = buf.indexOf(0x0a, p);
      if (nl < 0 || nl > metaEnd) nl = metaEnd;
      const eq = buf.indexOf(0x3d, p);
      if (eq < 0 || eq > nl) return void (out[H.STATE] = DecodeError.BAD_HEADER);
      const slot = SLOTS[buf.toString('latin1', p, eq)];
      if (slot) {
        out[slot[0]] = eq + 1;
        out[slot[1]] = nl - eq - 1;
      }
      p = nl + 1;
    }
  }
  out[H.STATE] = 1;
}

function lookup(buf: Buffer, off: number, hdr: Int32Array, key: string): string | undefined {
  const meta = buf.toString('utf8', off + HEADER, hdr[H.BODY_OFF]!);
  for (const line of meta.split('\n')) {
    const eq = line.indexOf('=');
    if (line.slice(0, eq) === key) return line.slice(eq + 1);
  }
  return undefined;
}

/** Builds a frame; `meta` is the metadata lines already encoded. */
export function exampleFrame(type: number, id: number, status: number, meta: string, body: Buffer): Buffer {
  const m = Buffer.from(meta, 'utf8');
  const out = Buffer.alloc(HEADER + m.length + body.length);
  out.writeUInt16BE(MAGIC, 0);
  out[2] = type;
  out[3] = status;
  out.writeUInt32BE(id >>> 0, 4);
  out.writeUInt16BE(m.length, 8);
  out.writeUInt32BE(body.length, 12);
  m.copy(out, HEADER);
  body.copy(out, HEADER + m.length);
  return out;
}

export const exampleCodec = {
  name: 'example',
  decodeHeader,
  // Nothing is lazy here: the metadata is small and decoded with the header.
  decodeLazy: () => {},
  writeRequestId: (buf, off, _hi, lo) => void buf.writeUInt32BE(lo >>> 0, off + 4),
  lookup,
  heartbeatResponse: (buf, off) => exampleFrame(T_HEARTBEAT_RESPONSE, buf.readUInt32BE(off + 4), 0, '', Buffer.alloc(0)),
  heartbeatRequest: (_hi, lo) => exampleFrame(T_HEARTBEAT, lo, 0, '', Buffer.alloc(0)),
  localReply: (buf, off, _hdr, kind, message) => exampleFrame(T_RESPONSE, buf.readUInt32BE(off + 4), ExampleStatus[kind], '', Buffer.from(message)),
} satisfies RpcCodec;

export function looksLikeExample(buf: Buffer): boolean | null {
  if (buf.length < 2) return buf.length === 1 && buf[0] === MAGIC >> 8 ? null : buf.length === 0 ? null : false;
  return buf.readUInt16BE(0) === MAGIC;
}

export const ExampleType = { REQUEST: T_REQUEST, RESPONSE: T_RESPONSE, ONEWAY: T_ONEWAY, HEARTBEAT: T_HEARTBEAT, HEARTBEAT_RESPONSE: T_HEARTBEAT_RESPONSE };
