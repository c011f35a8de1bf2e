import { describe, expect, it } from 'vitest';
import { replyIsSuccess, scalarAt, skipValue } from '../../../src/protocols/thrift/struct.js';

/** Binary-protocol bytes for a field header, then the value's bytes. */
const field = (type: number, id: number, ...value: Buffer[]) => Buffer.concat([Buffer.from([type, id >> 8, id & 0xff]), ...value]);
const i32 = (n: number) => Buffer.from([n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
const str = (s: string) => Buffer.concat([i32(Buffer.byteLength(s)), Buffer.from(s)]);
const STOP = Buffer.from([0]);

describe('Thrift binary struct walking', () => {
  // struct { 1: map<string,i32>, 2: list<string>, 3: Info { 1: i64, 2: double, 3: bool, 4: byte, 5: string } }
  const info = Buffer.concat([
    field(10, 1, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe])),
    field(4, 2, (() => { const b = Buffer.alloc(8); b.writeDoubleBE(1.5); return b; })()),
    field(2, 3, Buffer.from([1])),
    field(3, 4, Buffer.from([0xff])),
    field(11, 5, str('v2')),
    STOP,
  ]);
  const args = Buffer.concat([
    field(13, 1, Buffer.from([11, 8]), i32(2), str('a'), i32(1), str('b'), i32(2)),
    field(15, 2, Buffer.from([11]), i32(2), str('x'), str('y')),
    field(12, 3, info),
    STOP,
  ]);

  it('skips whole values of every type and finds nested scalars, printed as Envoy prints them', () => {
    expect(skipValue(args, 0, args.length, 12)).toBe(args.length);
    expect(scalarAt(args, 0, args.length, [3, 5])).toBe('v2');
    expect(scalarAt(args, 0, args.length, [3, 1])).toBe('-2');
    expect(scalarAt(args, 0, args.length, [3, 2])).toBe('1.500000');
    expect(scalarAt(args, 0, args.length, [3, 3])).toBe('1');
    expect(scalarAt(args, 0, args.length, [3, 4])).toBe('255');
  });

  it('reports absent fields, containers and non-struct paths as missing', () => {
    expect(scalarAt(args, 0, args.length, [4])).toBeNull();
    expect(scalarAt(args, 0, args.length, [3, 9])).toBeNull();
    expect(scalarAt(args, 0, args.length, [2])).toBeNull(); // a list is no scalar
    expect(scalarAt(args, 0, args.length, [3])).toBeNull(); // nor a struct
    expect(scalarAt(args, 0, args.length, [2, 1])).toBeNull(); // a path through a list
  });

  it('refuses cut and forged frames instead of reading past them', () => {
    expect(skipValue(args, 0, args.length - 2, 12)).toBe(-1);
    expect(scalarAt(args, 0, 20, [3, 5])).toBeNull();
    // A list claiming 2^31-1 elements of bytes ends at the frame's end.
    const forged = Buffer.concat([field(15, 1, Buffer.from([3]), i32(0x7fffffff), Buffer.from([1, 2])), STOP]);
    expect(skipValue(forged, 0, forged.length, 12)).toBe(-1);
    // Structs nested past the depth limit.
    const deep = Buffer.concat([...Array.from({ length: 100 }, () => Buffer.from([12, 0, 1])), Buffer.alloc(101)]);
    expect(skipValue(deep, 0, deep.length, 12)).toBe(-1);
  });

  it('tells a result carrying the return value from a declared exception', () => {
    const ok = Buffer.concat([field(11, 0, str('r')), STOP]);
    const ex = Buffer.concat([field(12, 1, STOP), STOP]);
    expect(replyIsSuccess(ok, 0, ok.length)).toBe(true);
    expect(replyIsSuccess(ex, 0, ex.length)).toBe(false);
    expect(replyIsSuccess(STOP, 0, 1)).toBe(false); // a void result, as Envoy counts it
  });
});
