/**
 * x-request-id values (random UUID v4, as Envoy generates) written as bytes straight into an
 * outgoing head: no string per request unless something asks for it (access log, response
 * header), and one randomFillSync per 1024 ids. uuidV4() is the string form, from the same pool,
 * for where a string is needed anyway (HTTP/2 header lists).
 */
import crypto from 'node:crypto';

/** The line to reserve in a head; writeUuidV4 overwrites its value in place. */
export const REQUEST_ID_LINE = 'x-request-id: 00000000-0000-4000-8000-000000000000\r\n';
/** Offset of the value in REQUEST_ID_LINE. */
export const REQUEST_ID_VALUE_AT = 'x-request-id: '.length;
export const UUID_LENGTH = 36;

// 1024 ids per refill: randomFillSync's fixed cost per call is most of its cost at 4 KiB
// (measured: 11 ns an id at 4 KiB, 4 ns at 16 KiB).
const POOL = Buffer.allocUnsafe(16 * 1024);
let used = POOL.length;
const HEX = Buffer.from('0123456789abcdef', 'latin1');

/** Two lower-case hex digits per byte value. */
const HEX2: string[] = [];
for (let i = 0; i < 256; i++) HEX2.push((i < 16 ? '0' : '') + i.toString(16));

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

/**
 * A fresh random UUID v4 (RFC 9562 §5.4) as a string, spelled by a byte → hex table: about half
 * of crypto.randomUUID's cost, and a quarter of writeUuidV4 plus a latin1 slice (measured).
 */
export function uuidV4(): string {
  const r = POOL;
  const o = take16();
  const h = HEX2;
  return (
    h[r[o]!]! + h[r[o + 1]!]! + h[r[o + 2]!]! + h[r[o + 3]!]! + '-' + h[r[o + 4]!]! + h[r[o + 5]!]! + '-' + h[(r[o + 6]! & 0x0f) | 0x40]! + h[r[o + 7]!]! + '-' +
    h[(r[o + 8]! & 0x3f) | 0x80]! + h[r[o + 9]!]! + '-' + h[r[o + 10]!]! + h[r[o + 11]!]! + h[r[o + 12]!]! + h[r[o + 13]!]! + h[r[o + 14]!]! + h[r[o + 15]!]!
  );
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
