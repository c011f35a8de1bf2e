/**
 * 64-bit hashes for consistent hashing, computed on pairs of unsigned 32-bit halves: a JavaScript
 * number holds only 53 bits exactly and a BigInt is a heap object, so neither fits a data path
 * that must not allocate. Results land in a caller-owned `Hash64`.
 *
 * - `xxHash64`: XXH64 as Envoy's HashUtil::xxHash64 uses it (ring hash points, Maglev offsets,
 *   and route hash policies), so keys land where they would in Envoy.
 * - `murmurHash2`: 64-bit MurmurHash2 with the seed of libstdc++'s std::hash<std::string>, for
 *   `ring_hash_lb_config.hash_function: MURMUR_HASH_2`.
 */

/** A 64-bit value as two unsigned 32-bit halves. */
export interface Hash64 {
  hi: number;
  lo: number;
}

// Result registers of the 64-bit helpers below: H = R[0], L = R[1], as int32 bit patterns.
// A typed array rather than module variables or returned objects: V8 boxes a number above 2^31
// stored in a module variable, and a returned object is an allocation; an Int32Array store is
// neither. Every helper reads its arguments before writing R.
const R = new Int32Array(2);

const TWO32 = 4294967296;

/** R = a * b mod 2^64. The 32×32 low product is split into 16-bit limbs to stay exact. */
function mul(ah: number, al: number, bh: number, bl: number): void {
  const a0 = al & 0xffff;
  const a1 = al >>> 16;
  const b0 = bl & 0xffff;
  const b1 = bl >>> 16;
  const mid = a1 * b0 + a0 * b1; // < 2^33: exact in a double
  const low = a0 * b0 + (mid & 0xffff) * 65536; // < 2^33
  // Cross terms only matter modulo 2^32, which Math.imul gives directly.
  R[0] = a1 * b1 + Math.floor(mid / 65536) + (low >= TWO32 ? 1 : 0) + Math.imul(ah, bl) + Math.imul(al, bh);
  R[1] = low;
}

/** R = a + b mod 2^64. */
function add(ah: number, al: number, bh: number, bl: number): void {
  const lo = (al >>> 0) + (bl >>> 0);
  R[0] = ah + bh + (lo >= TWO32 ? 1 : 0);
  R[1] = lo;
}

/** R = rotate left by r, 0 < r < 32. */
function rotl(h: number, l: number, r: number): void {
  R[0] = (h << r) | (l >>> (32 - r));
  R[1] = (l << r) | (h >>> (32 - r));
}

/** R = x ^ (x >> s), 32 ≤ s < 64. */
function xorShiftHigh(h: number, l: number, s: number): void {
  R[0] = h;
  R[1] = l ^ (h >>> (s - 32));
}

/** R = x ^ (x >> s), 0 < s < 32. */
function xorShiftLow(h: number, l: number, s: number): void {
  R[0] = h ^ (h >>> s);
  R[1] = l ^ ((l >>> s) | (h << (32 - s)));
}

/** Little-endian 32 bits at p, as an int32 bit pattern. */
function read32(b: Uint8Array, p: number): number {
  return b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16) | (b[p + 3]! << 24);
}

// XXH64 primes, as (hi, lo) int32 bit patterns (small integers stay unboxed).
const P1H = 0x9e3779b1 | 0;
const P1L = 0x85ebca87 | 0;
const P2H = 0xc2b2ae3d | 0;
const P2L = 0x27d4eb4f | 0;
const P3H = 0x165667b1 | 0;
const P3L = 0x9e3779f9 | 0;
const P4H = 0x85ebca77 | 0;
const P4L = 0xc2b2ae63 | 0;
const P5H = 0x27d4eb2f | 0;
const P5L = 0x165667c5 | 0;

/** R = rotl(acc + input * P2, 31) * P1: one lane step of XXH64. */
function round(ah: number, al: number, ih: number, il: number): void {
  mul(ih, il, P2H, P2L);
  add(ah, al, R[0]!, R[1]!);
  rotl(R[0]!, R[1]!, 31);
  mul(R[0]!, R[1]!, P1H, P1L);
}

/** R = (acc ^ round(0, v)) * P1 + P4: folds one lane into the result. */
function mergeRound(ah: number, al: number, vh: number, vl: number): void {
  round(0, 0, vh, vl);
  mul(ah ^ R[0]!, al ^ R[1]!, P1H, P1L);
  add(R[0]!, R[1]!, P4H, P4L);
}

/** XXH64 of `data[offset, offset + length)` with a 64-bit seed (default 0), into `out`. */
export function xxHash64(data: Uint8Array, offset: number, length: number, out: Hash64, seedHi = 0, seedLo = 0): Hash64 {
  const end = offset + length;
  let p = offset;
  let hh: number;
  let hl: number;
  if (length >= 32) {
    add(seedHi, seedLo, P1H, P1L);
    add(R[0]!, R[1]!, P2H, P2L);
    let v1h = R[0]!;
    let v1l = R[1]!;
    add(seedHi, seedLo, P2H, P2L);
    let v2h = R[0]!;
    let v2l = R[1]!;
    let v3h = seedHi | 0;
    let v3l = seedLo | 0;
    // seed - P1 = seed + (2^64 - P1): two's complement of P1 is ~P1 + 1 (no carry: P1L is odd).
    add(seedHi, seedLo, ~P1H, ~P1L + 1);
    let v4h = R[0]!;
    let v4l = R[1]!;
    const limit = end - 32;
    do {
      round(v1h, v1l, read32(data, p + 4), read32(data, p));
      v1h = R[0]!;
      v1l = R[1]!;
      round(v2h, v2l, read32(data, p + 12), read32(data, p + 8));
      v2h = R[0]!;
      v2l = R[1]!;
      round(v3h, v3l, read32(data, p + 20), read32(data, p + 16));
      v3h = R[0]!;
      v3l = R[1]!;
      round(v4h, v4l, read32(data, p + 28), read32(data, p + 24));
      v4h = R[0]!;
      v4l = R[1]!;
      p += 32;
    } while (p <= limit);
    rotl(v1h, v1l, 1);
    hh = R[0]!;
    hl = R[1]!;
    rotl(v2h, v2l, 7);
    add(hh, hl, R[0]!, R[1]!);
    hh = R[0]!;
    hl = R[1]!;
    rotl(v3h, v3l, 12);
    add(hh, hl, R[0]!, R[1]!);
    hh = R[0]!;
    hl = R[1]!;
    rotl(v4h, v4l, 18);
    add(hh, hl, R[0]!, R[1]!);
    mergeRound(R[0]!, R[1]!, v1h, v1l);
    mergeRound(R[0]!, R[1]!, v2h, v2l);
    mergeRound(R[0]!, R[1]!, v3h, v3l);
    mergeRound(R[0]!, R[1]!, v4h, v4l);
  } else {
    add(seedHi, seedLo, P5H, P5L);
  }
  add(R[0]!, R[1]!, Math.floor(length / TWO32), length);
  hh = R[0]!;
  hl = R[1]!;
  while (p + 8 <= end) {
    round(0, 0, read32(data, p + 4), read32(data, p));
    rotl(hh ^ R[0]!, hl ^ R[1]!, 27);
    mul(R[0]!, R[1]!, P1H, P1L);
    add(R[0]!, R[1]!, P4H, P4L);
    hh = R[0]!;
    hl = R[1]!;
    p += 8;
  }
  if (p + 4 <= end) {
    mul(0, read32(data, p), P1H, P1L);
    rotl(hh ^ R[0]!, hl ^ R[1]!, 23);
    mul(R[0]!, R[1]!, P2H, P2L);
    add(R[0]!, R[1]!, P3H, P3L);
    hh = R[0]!;
    hl = R[1]!;
    p += 4;
  }
  while (p < end) {
    mul(0, data[p]!, P5H, P5L);
    rotl(hh ^ R[0]!, hl ^ R[1]!, 11);
    mul(R[0]!, R[1]!, P1H, P1L);
    hh = R[0]!;
    hl = R[1]!;
    p++;
  }
  // Avalanche.
  xorShiftHigh(hh, hl, 33);
  mul(R[0]!, R[1]!, P2H, P2L);
  xorShiftLow(R[0]!, R[1]!, 29);
  mul(R[0]!, R[1]!, P3H, P3L);
  xorShiftHigh(R[0]!, R[1]!, 32);
  out.hi = R[0]! >>> 0;
  out.lo = R[1]! >>> 0;
  return out;
}

// MurmurHash64A multiplier and libstdc++'s std::hash seed (which Envoy's STD_HASH_SEED copies).
const MH = 0xc6a4a793 | 0;
const ML = 0x5bd1e995 | 0;
const STD_HASH_SEED = 0xc70f6907 | 0;

/** 64-bit MurmurHash2 as libstdc++'s std::hash<std::string> computes it, into `out`. */
export function murmurHash2(data: Uint8Array, offset: number, length: number, out: Hash64, seedHi = 0, seedLo = STD_HASH_SEED): Hash64 {
  mul(Math.floor(length / TWO32), length, MH, ML);
  let hh = seedHi ^ R[0]!;
  let hl = seedLo ^ R[1]!;
  const end = offset + (length & ~7);
  let p = offset;
  for (; p < end; p += 8) {
    mul(read32(data, p + 4), read32(data, p), MH, ML);
    xorShiftHigh(R[0]!, R[1]!, 47);
    mul(R[0]!, R[1]!, MH, ML);
    mul(hh ^ R[0]!, hl ^ R[1]!, MH, ML);
    hh = R[0]!;
    hl = R[1]!;
  }
  const rest = length & 7;
  if (rest !== 0) {
    // The tail is loaded little-endian into the low bytes of one word.
    let th = 0;
    let tl = 0;
    for (let i = rest - 1; i >= 0; i--) {
      th = (th << 8) | (tl >>> 24);
      tl = (tl << 8) | data[p + i]!;
    }
    mul(hh ^ th, hl ^ tl, MH, ML);
    hh = R[0]!;
    hl = R[1]!;
  }
  xorShiftHigh(hh, hl, 47);
  mul(R[0]!, R[1]!, MH, ML);
  xorShiftHigh(R[0]!, R[1]!, 47);
  out.hi = R[0]! >>> 0;
  out.lo = R[1]! >>> 0;
  return out;
}

let scratch = Buffer.allocUnsafe(256);

/** UTF-8 bytes of `s` in a shared scratch buffer (grown, rarely, for long strings); returns the length. */
export function utf8Scratch(s: string): number {
  const n = s.length;
  // Three bytes per UTF-16 unit is the most UTF-8 can need, so a write never truncates.
  if (n * 3 > scratch.length) scratch = Buffer.allocUnsafe(n * 3);
  // Keys are nearly always ASCII (header values, cookies, IPs): copying them in JavaScript is
  // several times cheaper than a call into Buffer#write.
  let i = 0;
  for (; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) break;
    scratch[i] = c;
  }
  return i === n ? n : scratch.write(s, 0, 'utf8');
}

/** The scratch buffer `utf8Scratch` last wrote into. */
export function scratchBytes(): Buffer {
  return scratch;
}

/** XXH64 of a string's UTF-8 bytes, into `out`. */
export function xxHash64String(s: string, out: Hash64, seedHi = 0, seedLo = 0): Hash64 {
  const n = utf8Scratch(s);
  return xxHash64(scratch, 0, n, out, seedHi, seedLo);
}

/**
 * (hi·2^32 + lo) mod m, exactly, for unsigned 32-bit halves and 0 < m < 2^23. Division and
 * floor instead of `%`, which V8 runs as a slow floating-point remainder on values past 2^31;
 * every quotient stays under 2^46, so floor(x / m) can be off by at most one and is corrected.
 */
export function mod64(hi: number, lo: number, m: number): number {
  const a = hi - Math.floor(hi / m) * m;
  const b = lo - Math.floor(lo / m) * m;
  const x = a * (TWO32 - Math.floor(TWO32 / m) * m) + b;
  let r = x - Math.floor(x / m) * m;
  if (r < 0) r += m;
  else if (r >= m) r -= m;
  return r;
}
