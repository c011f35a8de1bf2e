import { describe, expect, it } from 'vitest';
import { LbContext } from '../../../src/upstream/lb/context.js';
import { murmurHash2, xxHash64, xxHash64String, type Hash64 } from '../../../src/upstream/lb/hash.js';

const hex = (h: Hash64) => h.hi.toString(16).padStart(8, '0') + h.lo.toString(16).padStart(8, '0');
const big = (hi: number, lo: number) => (BigInt(hi) << 32n) | BigInt(lo);

// Reference values computed with libxxhash 0.8.1's XXH64 (seeds 0 and 1) and with g++/libstdc++
// std::hash<std::string> (64-bit MurmurHash2): the C implementations Envoy links against.
// Lengths cover every branch: empty, 1–3 byte tails, the 4- and 8-byte steps, 32-byte stripes.
const VECTORS: Array<[input: string | Buffer, xx0: string, xx1: string, murmur: string]> = [
  ['', 'ef46db3751d8e999', 'd5afba1336a3be4b', '553e93901e462a6e'],
  ['abc', '44bc2cf5ad770999', 'bea9ca8199328908', '32d82bf8ed3dba39'],
  ['user-42', '397e9d3a76af7c81', '8cbd5a85d97d4f4d', 'a5b81751eb86779b'],
  ['[::1]:8080', '4a01777e5480c1ef', 'e084f56b8a720609', 'b63075f46d1b5ccc'],
  ['10.0.0.1:80', '011facba8043b217', 'a456919bcbffaa92', 'bfbc45c9f4269b08'],
  ['10.0.0.1:80_7', '4abe204356f68c82', '779fd395e5f2267a', '8318d8fc1aa5a2e0'],
  ['127.0.0.1:80_0', '4bb2f57cda42c065', 'bbbac2881432d35c', 'f46ef02bbe939e15'],
  ['The quick brown fox jumps over the lazy dog', '0b242d361fda71bc', 'df5091b6dad2c6db', 'dccbf2541704bc75'],
  [Buffer.alloc(300, 0xff), 'e1e514aec49da4f0', '7f8c9e3098db3a07', 'db8d707631e41118'],
];

describe('64-bit hashes without BigInt', () => {
  it('xxHash64 matches the reference implementation, for seed 0 and seed 1', () => {
    const out = { hi: 0, lo: 0 };
    for (const [input, xx0, xx1] of VECTORS) {
      const b = Buffer.isBuffer(input) ? input : Buffer.from(input);
      expect(hex(xxHash64(b, 0, b.length, out)), String(input)).toBe(xx0);
      expect(hex(xxHash64(b, 0, b.length, out, 0, 1)), String(input)).toBe(xx1);
    }
  });

  it('murmurHash2 matches libstdc++ std::hash<std::string>', () => {
    const out = { hi: 0, lo: 0 };
    for (const [input, , , mm] of VECTORS) {
      const b = Buffer.isBuffer(input) ? input : Buffer.from(input);
      expect(hex(murmurHash2(b, 0, b.length, out)), String(input)).toBe(mm);
    }
  });

  it('hashes a slice in place, and strings through their UTF-8 bytes', () => {
    const out = { hi: 0, lo: 0 };
    const frame = Buffer.concat([Buffer.from([1, 2, 3]), Buffer.from('user-42'), Buffer.from([9, 9])]);
    expect(hex(xxHash64(frame, 3, 7, out))).toBe('397e9d3a76af7c81');
    expect(hex(xxHash64String('user-42', out))).toBe('397e9d3a76af7c81');
    const s = 'ключ-é-🔑'.repeat(40); // multi-byte, and longer than the initial scratch buffer
    const b = Buffer.from(s, 'utf8');
    expect(hex(xxHash64String(s, { hi: 0, lo: 0 }))).toBe(hex(xxHash64(b, 0, b.length, out)));
  });
});

describe('LbContext', () => {
  it('starts without a hash and takes one', () => {
    const ctx = new LbContext();
    expect(ctx.hasHash).toBe(false);
    ctx.setHash(0xdeadbeef, 0x01020304);
    expect([ctx.hasHash, ctx.hashHi, ctx.hashLo]).toEqual([true, 0xdeadbeef, 0x01020304]);
    ctx.attempt = 2;
    ctx.reset();
    expect([ctx.hasHash, ctx.attempt]).toEqual([false, 0]);
  });

  it('folds several hash policies as Envoy does: rotate left one bit, then xor', () => {
    const parts: Array<[number, number]> = [
      [0x80000001, 0xfffffffe],
      [0x12345678, 0x9abcdef0],
      [0x80000001, 0xfffffffe], // a repeat must not cancel the first
    ];
    const ctx = new LbContext();
    let want: bigint | null = null;
    const mask = (1n << 64n) - 1n;
    for (const [hi, lo] of parts) {
      ctx.addHash(hi, lo);
      const v = big(hi, lo);
      want = want === null ? v : (((want << 1n) | (want >> 63n)) & mask) ^ v;
      expect(big(ctx.hashHi, ctx.hashLo)).toBe(want);
    }
    expect(want).not.toBe(big(0x12345678, 0x9abcdef0));
  });

  it('addBytes and addString hash the key with XXH64', () => {
    const a = new LbContext().addString('user-42');
    const b = new LbContext().addBytes(Buffer.from('xxuser-42yy'), 2, 7);
    expect(hex({ hi: a.hashHi, lo: a.hashLo })).toBe('397e9d3a76af7c81');
    expect([b.hashHi, b.hashLo]).toEqual([a.hashHi, a.hashLo]);
  });
});
