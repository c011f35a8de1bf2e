/**
 * x-request-id values (random UUID v4, as Envoy generates) written as bytes straight into an
 * outgoing head: no string per request unless something asks for it (access log, response
 * header), and one randomFillSync per 1024 ids. The addon writes the ids of forwarded HTTP/1
 * heads itself (native/io/request_id.cc); writeUuidV4 is the path without it. uuidV4() is the
 * string form, for where a string is needed anyway (HTTP/2 header lists): the addon's requestId()
 * where it is loaded, else uuidV4Js from this module's pool.
 */
import crypto from 'node:crypto';
import { loadNative } from '../../native.js';

/** The line to reserve in a head; writeUuidV4 overwrites its value in place. */
export const REQUEST_ID_LINE = 'x-request-id: 00000000-0000-4000-8000-000000000000\r\n';
/**
 * An HTTP/2 upstream list's x-request-id pair whose value the addon replaces with a fresh id as
 * it writes the request (FlatRequest's fillsId): the last pair of the list's additions.
 */
export const REQUEST_ID_FILL_PAIR = 'x-request-id\x0000000000-0000-4000-8000-000000000000\x00';
/** Offset of the value in REQUEST_ID_LINE. */
export const REQUEST_ID_VALUE_AT = 'x-request-id: '.length;
export const UUID_LENGTH = 36;

// 1024 ids per refill: randomFillSync's fixed cost per call is most of its cost at 4 KiB
// (measured: 11 ns an id at 4 KiB, 4 ns at 16 KiB).
const POOL = Buffer.allocUnsafe(16 * 1024);
let used = POOL.length;
const HEX = Buffer.from('0123456789abcdef', 'latin1');

/** 16 fresh random bytes: their offset in POOL. */
function take16(): number {
  if (used === POOL.length) {
    crypto.randomFillSync(POOL);
    used = 0;
  }
  const o = used;
  used += 16;
  return o;
}

/** The hex digit of a byte's high and low nibble, as char codes (uuidV4). */
const HI = new Uint8Array(256);
const LO = new Uint8Array(256);
for (let i = 0; i < 256; i++) {
  HI[i] = HEX[i >> 4]!;
  LO[i] = HEX[i & 15]!;
}

/**
 * A fresh random UUID v4 (RFC 9562 §5.4) as a string, made here: uuidV4() without the addon.
 * One String.fromCharCode call of fixed arity makes one flat 36-byte string; joining 20 pieces
 * with + made a ConsString per piece (~0.5 KiB of garbage per id, and a flattening copy when the
 * addon reads the header list), and took twice as long (measured with the copy: 140 ns against
 * 316 ns; crypto.randomUUID and writeUuidV4 plus a latin1 slice are slower still).
 */
export function uuidV4Js(): string {
  const r = POOL;
  const o = take16();
  const b0 = r[o]!;
  const b1 = r[o + 1]!;
  const b2 = r[o + 2]!;
  const b3 = r[o + 3]!;
  const b4 = r[o + 4]!;
  const b5 = r[o + 5]!;
  // Version 4, variant 10.
  const b6 = (r[o + 6]! & 0x0f) | 0x40;
  const b7 = r[o + 7]!;
  const b8 = (r[o + 8]! & 0x3f) | 0x80;
  const b9 = r[o + 9]!;
  const b10 = r[o + 10]!;
  const b11 = r[o + 11]!;
  const b12 = r[o + 12]!;
  const b13 = r[o + 13]!;
  const b14 = r[o + 14]!;
  const b15 = r[o + 15]!;
  const h = HI;
  const l = LO;
  return String.fromCharCode(
    h[b0]!, l[b0]!, h[b1]!, l[b1]!, h[b2]!, l[b2]!, h[b3]!, l[b3]!, 0x2d,
    h[b4]!, l[b4]!, h[b5]!, l[b5]!, 0x2d,
    h[b6]!, l[b6]!, h[b7]!, l[b7]!, 0x2d,
    h[b8]!, l[b8]!, h[b9]!, l[b9]!, 0x2d,
    h[b10]!, l[b10]!, h[b11]!, l[b11]!, h[b12]!, l[b12]!, h[b13]!, l[b13]!, h[b14]!, l[b14]!, h[b15]!, l[b15]!,
  );
}

/** The addon's requestId(), or null without it (an addon built before it, or none). */
const nativeRequestId: (() => string) | null = (() => {
  try {
    const f = (loadNative() as unknown as { requestId?: () => string }).requestId;
    return typeof f === 'function' ? f : null;
  } catch {
    return null;
  }
})();

/** Where uuidV4() ids come from. */
export const UUID_SOURCE: 'addon' | 'js' = nativeRequestId !== null ? 'addon' : 'js';

/**
 * A fresh random UUID v4 as a string: from the addon where it is loaded, which formats it from
 * its own random bytes and returns it flat. uuidV4Js's String.fromCharCode of 36 arguments cost
 * ~850 instructions with their set-up, inlined into every upstream header list builder.
 */
export function uuidV4(): string {
  return nativeRequestId !== null ? nativeRequestId() : uuidV4Js();
}

/** Writes a fresh random UUID v4 (36 lower-case chars) to out[at, at + 36). */
export function writeUuidV4(out: Buffer, at: number): void {
  const r = POOL;
  const o = take16();
  // Version 4, variant 10 (RFC 9562 §5.4).
  r[o + 6] = (r[o + 6]! & 0x0f) | 0x40;
  r[o + 8] = (r[o + 8]! & 0x3f) | 0x80;
  let p = at;
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) out[p++] = 0x2d;
    const b = r[o + i]!;
    out[p++] = HEX[b >> 4]!;
    out[p++] = HEX[b & 15]!;
  }
}
