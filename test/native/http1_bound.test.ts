// The addon's HTTP/1.1 functions with their scratch arrays bound once instead of passed on every
// call (native/http1/http1_js.cc):
// - bindHttp1HeadParser: results must be parseHttp1Head's, slot for slot, with and without the
//   copy; bad arguments throw naming what is wrong; the parser built on it (native_head.ts) keeps
//   working when the result array is replaced and when heads repeat or change their target and
//   Host (it reuses the previous head's strings when the bytes match); every head keeps its own
//   field records where the parser wrote them, through thousands of parses and array changes;
// - bindHttp1HeadWriter: the same bytes as writeHttp1Head / sendHttp1Head, and encodeHead still
//   matches the TypeScript encoder once its runs array has grown (and been bound again);
// - the parser's 16-bytes-at-a-time skip over plain value and target bytes (head.cc SkipPlain):
//   every byte value at every position of a long value and target parses as the TypeScript
//   parser says.
import { tcpPair } from '../helpers/net.js';
import { describe, expect, it } from 'vitest';
import { encodeHead, encodeHeadJs } from '../../src/protocols/http1/encoder.js';
import { directFd } from '../../src/protocols/http1/send.js';
import { loadNative, setTable, TableSlot } from '../../src/native.js';
import { DEFAULT_LIMITS, parseRequestHead as tsRequest, parseResponseHead as tsResponse } from '../../src/protocols/http1/decoder.js';
import { nativeHeadParser } from '../../src/protocols/http1/native_head.js';
import { fieldsOf, type MessageHead } from '../../src/protocols/http1/types.js';

const b = loadNative();
const REQUEST = 'junk GET /api/v1/users?x=1 HTTP/1.1\r\nHost: svc.local:8080\r\nX-A: 1\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nabc';
const RESPONSE = 'junk HTTP/1.1 200 OK\r\nServer: up\r\nTransfer-Encoding: chunked\r\nX-B:\r\n\r\n0\r\n\r\n';
const INPUTS: [boolean, string][] = [
  [true, REQUEST],
  [false, RESPONSE],
  [true, REQUEST.slice(0, 40)], // incomplete
  [true, 'junk GET / HTTP/1.1\r\nHost : a\r\n\r\n'], // malformed
  [true, `junk GET / HTTP/1.1\r\n${'X-N: 1\r\n'.repeat(20)}\r\n`], // too many headers for maxHeaders 10
];

function head(r: unknown): MessageHead {
  if (typeof r === 'number') throw new Error(`expected a head, got ${r}`);
  return r as MessageHead;
}

describe('bindHttp1HeadParser', () => {
  it('fills the bound array as parseHttp1Head fills its own, and copies into the bound slab', () => {
    expect(typeof b.bindHttp1HeadParser).toBe('function');
    const outA = new Int32Array(16 + 5 * 10);
    const outB = new Int32Array(16 + 5 * 10);
    const [parse, setSlab] = b.bindHttp1HeadParser!(outB);
    const slabA = Buffer.alloc(4096);
    const slabB = Buffer.alloc(4096);
    setSlab(slabB);
    // Slots 13 and 14 (HOST_GEN, TARGET_GEN) only the bound parser fills: compared apart.
    const rest = (o: Int32Array) => Array.from(o).filter((_, i) => i !== 13 && i !== 14);
    const gens: number[][] = [];
    for (const [request, text] of INPUTS) {
      const src = Buffer.from(text, 'latin1');
      b.parseHttp1Head!(request, src, 5, src.length, 8192, 10, outA);
      parse(request, src, 5, src.length, 8192, 10, -1);
      expect(rest(outB)).toEqual(rest(outA));
      expect([outA[13], outA[14]]).toEqual([0, 0]);
      gens.push([outB[13]!, outB[14]!]);
      b.parseHttp1Head!(request, src, 5, src.length, 8192, 10, outA, slabA, 100);
      parse(request, src, 5, src.length, 8192, 10, 100);
      expect(rest(outB)).toEqual(rest(outA));
      expect(slabB.equals(slabA)).toBe(true);
      // The same bytes again (copied this time): the same numbers.
      expect([outB[13], outB[14]]).toEqual(gens[gens.length - 1]);
    }
    // Numbered for the complete request only (its Host and target), 0 for the rest.
    expect(gens[0]!.every((g) => g > 0)).toBe(true);
    expect(gens.slice(1)).toEqual([[0, 0], [0, 0], [0, 0], [0, 0]]);
    // Something was parsed and copied (the assertions above did not compare empty results).
    expect(slabB.toString('latin1', 100, 106)).not.toBe('\0'.repeat(6));
  });

  it('writes the field records where slot 15 says (16 when 0), in the array setSlab gave last, and checks the room there', () => {
    const src = Buffer.from(REQUEST, 'latin1');
    const plain = new Int32Array(16 + 5 * 10);
    b.parseHttp1Head!(true, src, 5, src.length, 8192, 10, plain);
    const n = 5 * plain[11]!;
    expect(n).toBe(20);
    const records = Array.from(plain.subarray(16, 16 + n));
    // Unbound: at slot 40 of the same results.
    const at40 = new Int32Array(40 + 5 * 10);
    at40[15] = 40;
    b.parseHttp1Head!(true, src, 5, src.length, 8192, 10, at40);
    expect(Array.from(at40.subarray(40, 40 + n))).toEqual(records);
    expect(Array.from(at40.subarray(16, 40)).every((v) => v === 0)).toBe(true);
    expect(() => b.parseHttp1Head!(true, src, 5, src.length, 8192, 11, at40)).toThrow(/out is shorter than its records slot/);
    // Bound, then moved to a second array by setSlab: parse writes there, the first stays as it was.
    const first = new Int32Array(16 + 5 * 10);
    const [parse, setSlab] = b.bindHttp1HeadParser!(first);
    parse(true, src, 5, src.length, 8192, 10, -1);
    expect(Array.from(first.subarray(16, 16 + n))).toEqual(records);
    const second = new Int32Array(100 + 5 * 10);
    second[15] = 100;
    setSlab(Buffer.alloc(64), second);
    const before = Array.from(first);
    parse(true, src, 5, src.length, 8192, 10, -1);
    expect(Array.from(first)).toEqual(before);
    expect(Array.from(second.subarray(100, 100 + n))).toEqual(records);
    expect(() => parse(true, src, 5, src.length, 8192, 11, -1)).toThrow(/out is shorter than its records slot/);
  });

  it('parseArena fills the array as parse does for the registered reader arena, and refuses an arena of another type', () => {
    const outA = new Int32Array(16 + 5 * 10);
    const outB = new Int32Array(16 + 5 * 10);
    const [parse, setSlab, parseArena] = b.bindHttp1HeadParser!(outA);
    const [, setSlabB] = b.bindHttp1HeadParser!(outB);
    expect(typeof parseArena).toBe('function');
    const slabA = Buffer.alloc(4096);
    setSlab(slabA);
    setSlabB(Buffer.alloc(4096));
    for (const [request, text] of INPUTS) {
      // The head at an offset inside a larger arena, as the batch reader leaves it.
      const arena = Buffer.alloc(8192, 0x78);
      const at = 1000 + text.length;
      arena.write(text, at, 'latin1');
      setTable(TableSlot.ARENA, arena);
      // Both from zeroed arrays: a response leaves some request slots as they were.
      outA.fill(0);
      slabA.fill(0);
      parse(request, arena, at + 5, at + text.length, 8192, 10, 100);
      const want = Array.from(outA);
      const copied = Buffer.from(slabA.subarray(100, 100 + text.length));
      outA.fill(0);
      slabA.fill(0);
      parseArena!(request, at + 5, at + text.length, 8192, 10, 100);
      expect(Array.from(outA)).toEqual(want);
      expect(slabA.subarray(100, 100 + text.length).equals(copied)).toBe(true);
      expect(() => parseArena!(request, at, arena.length + 1, 8192, 10, -1)).toThrow(/off\/end out of range/);
    }
    expect(outA[0]).not.toBe(0);
    setTable(TableSlot.ARENA, new Int32Array(4));
    expect(() => parseArena!(true, 0, 0, 8192, 10, -1)).toThrow(/no Uint8Array is registered as the reader arena/);
    setTable(TableSlot.ARENA, Buffer.alloc(16));
  });

  it('parseArenaArgs (bound with an args array) fills the array as parseArena does, its numbers read from the args', () => {
    const outA = new Int32Array(16 + 5 * 10);
    const args = new Int32Array(6);
    const [, setSlab, parseArena, parseArenaArgs] = b.bindHttp1HeadParser!(outA, args);
    expect(typeof parseArenaArgs).toBe('function');
    expect(b.bindHttp1HeadParser!(new Int32Array(16)).length).toBe(3);
    expect(() => b.bindHttp1HeadParser!(new Int32Array(16), new Int32Array(5))).toThrow(/args must be an Int32Array of 6 slots or more/);
    const slabA = Buffer.alloc(4096);
    setSlab(slabA);
    for (const [request, text] of INPUTS) {
      const arena = Buffer.alloc(8192, 0x78);
      const at = 1000 + text.length;
      arena.write(text, at, 'latin1');
      setTable(TableSlot.ARENA, arena);
      for (const [maxHeaders, copyAt] of [[10, 100], [3, -1]] as const) {
        outA.fill(0);
        slabA.fill(0);
        parseArena!(request, at + 5, at + text.length, 8192, maxHeaders, copyAt);
        const want = Array.from(outA);
        const copied = Buffer.from(slabA.subarray(0, 200 + text.length));
        outA.fill(0);
        slabA.fill(0);
        args.set([request ? 1 : 0, at + 5, at + text.length, 8192, maxHeaders, copyAt]);
        parseArenaArgs!();
        expect(Array.from(outA)).toEqual(want);
        expect(slabA.subarray(0, 200 + text.length).equals(copied)).toBe(true);
      }
      args.set([1, at, arena.length + 1, 8192, 10, -1]);
      expect(() => parseArenaArgs!()).toThrow(/off\/end out of range/);
      args.set([1, at, at + 1, 0, 10, -1]);
      expect(() => parseArenaArgs!()).toThrow(/limits out of range/);
      args.set([1, at, at + 1, 8192, 11, -1]);
      expect(() => parseArenaArgs!()).toThrow(/out is shorter than/);
      args.set([1, at, at + 1, 8192, 10, 5000]);
      expect(() => parseArenaArgs!()).toThrow(/copyAt out of range/);
    }
    setTable(TableSlot.ARENA, new Int32Array(4));
    expect(() => parseArenaArgs!()).toThrow(/no Uint8Array is registered as the reader arena/);
    setTable(TableSlot.ARENA, Buffer.alloc(16));
  });

  it('throws for bad arguments, naming them', () => {
    expect(() => b.bindHttp1HeadParser!(new Uint8Array(64) as unknown as Int32Array)).toThrow(/out must be an Int32Array/);
    expect(() => b.bindHttp1HeadParser!(new Int32Array(4))).toThrow(/out is shorter than 16 slots/);
    const out = new Int32Array(16 + 5 * 10);
    const [parse, setSlab] = b.bindHttp1HeadParser!(out);
    const src = Buffer.from(REQUEST, 'latin1');
    // No slab set yet: a copy has nowhere to go.
    expect(() => parse(true, src, 5, src.length, 8192, 10, 0)).toThrow(/copyAt out of range/);
    setSlab(Buffer.alloc(64));
    expect(() => parse(true, src, 5, src.length, 8192, 10, 65)).toThrow(/copyAt out of range/);
    expect(() => parse(true, src, 5, src.length, 8192, 11, -1)).toThrow(/out is shorter/);
    expect(() => parse(true, src, 5, src.length + 1, 8192, 10, -1)).toThrow(/off\/end out of range/);
    expect(() => setSlab('x' as unknown as Uint8Array)).toThrow(/slab must be a Buffer/);
    expect(() => setSlab(Buffer.alloc(64), new Uint8Array(80) as unknown as Int32Array)).toThrow(/out must be an Int32Array/);
    expect(() => setSlab(Buffer.alloc(64), new Int32Array(15))).toThrow(/out is shorter than 16 slots/);
    // A head that does not fit the slab is not copied, and says so.
    parse(true, src, 5, src.length, 8192, 10, 0);
    expect(out[0]).toBeGreaterThan(0); // parsed
    expect(out[12]).toBe(0); // not copied
  });
});

describe('native_head.ts over the bound parser', () => {
  const p = nativeHeadParser(b)!;

  it('numbers the Host and target bytes of a bound parse: the same number while they repeat, a new one when they change, 0 past 256 bytes or without a Host', () => {
    const out = new Int32Array(16 + 5 * 10);
    const [parse] = b.bindHttp1HeadParser!(out);
    const gensOf = (target: string, host: string | null): [number, number] => {
      // HTTP/1.1 requires a Host: the head without one is HTTP/1.0.
      const src = Buffer.from(`GET ${target} HTTP/1.${host === null ? 0 : 1}\r\n${host === null ? '' : `Host: ${host}\r\n`}\r\n`, 'latin1');
      parse(true, src, 0, src.length, 8192, 10, -1);
      expect(out[0]).toBe(src.length);
      return [out[13]!, out[14]!];
    };
    const [h1, t1] = gensOf('/a', 'x.local');
    expect(gensOf('/a', 'x.local')).toEqual([h1, t1]);
    // Same lengths, other bytes: new numbers.
    const [h2, t2] = gensOf('/b', 'y.local');
    expect(h2).not.toBe(h1);
    expect(t2).not.toBe(t1);
    expect(gensOf('/b', null)).toEqual([0, t2]);
    expect(gensOf('/b', 'y.local')).toEqual([h2, t2]);
    const long = `/${'p'.repeat(300)}`;
    expect(gensOf(long, 'y.local')).toEqual([h2, 0]);
    // The long one was not kept: '/b' is still the kept target, under its number.
    expect(gensOf('/b', 'y.local')).toEqual([h2, t2]);
    expect(gensOf('/a', 'y.local')[1]).not.toBe(t2);
    // An unbound parse of the same array numbers nothing.
    const src = Buffer.from('GET /a HTTP/1.1\r\nHost: y.local\r\n\r\n');
    b.parseHttp1Head!(true, src, 0, src.length, 8192, 10, out);
    expect([out[13], out[14]]).toEqual([0, 0]);
  });

  it('gives each head its own target and Host when they change, and the same strings when they repeat', () => {
    const targets = ['/a', '/b', '/b', '/bb', '/a?q=1', '/a', `/${'p'.repeat(300)}`, '/a', '/c'];
    const hosts = ['x.local', 'y.local', 'y.local', 'x.local', 'x.local:80', 'x.local', 'x.local', 'z.local', 'z.local'];
    const heads: MessageHead[] = [];
    for (let i = 0; i < targets.length; i++) {
      const src = Buffer.from(`GET ${targets[i]} HTTP/1.1\r\nHost: ${hosts[i]}\r\n\r\n`);
      heads.push(head(i % 2 ? p.parseRequestHeadOwned(src, 0, src.length, DEFAULT_LIMITS) : p.parseRequestHead(src, 0, src.length, DEFAULT_LIMITS)));
    }
    expect(heads.map((h) => h.target)).toEqual(targets);
    expect(heads.map((h) => h.host)).toEqual(hosts);
  });

  it('keeps parsing when a larger max_headers needs a larger result array (the parser is bound again)', () => {
    let text = 'GET /many HTTP/1.1\r\nHost: h\r\n';
    for (let i = 0; i < 150; i++) text += `x-h${i}: ${i}\r\n`;
    text += '\r\n';
    const src = Buffer.from(text);
    const limits = { maxHeadBytes: 1 << 16, maxHeaders: 2000 };
    const want = head(tsRequest(src, 0, src.length, limits));
    const got = head(p.parseRequestHeadOwned(src, 0, src.length, limits));
    expect(got.fieldSlots.length).toBeGreaterThanOrEqual(16 + 5 * 2000);
    expect(fieldsOf(got).length).toBe(5 * 151);
    expect(got.target).toBe('/many');
    // And the smaller limit still rejects what it must, on the new array.
    expect(p.parseRequestHead(src, 0, src.length, DEFAULT_LIMITS)).toBe(-2);
    const again = head(p.parseRequestHeadOwned(src, 0, src.length, limits));
    // Owned offsets point into the slab, the TypeScript ones into src: compare the lines.
    const lines = (h: MessageHead) => fieldsOf(h).flatMap((v, i) => (i % 5 === 1 ? [h.buf.toString('latin1', v, fieldsOf(h)[i + 3]!)] : []));
    expect(lines(again)).toEqual(lines(want));
    // The first head's records stayed where they were, whatever array the second went to.
    expect(lines(got)).toEqual(lines(want));
    expect(lines(want)).toHaveLength(151);
  });

  it('leaves every head its own field records through thousands of parses, array changes and refills', () => {
    const q = nativeHeadParser(b)!;
    const kept: [MessageHead, number[], Buffer][] = [];
    let into: MessageHead | null = null;
    const arrays = new Set<Int32Array>();
    for (let i = 0; i < 3000; i++) {
      const n = (i * 7) % 13;
      const text = `HTTP/1.1 200 OK\r\n${Array.from({ length: n }, (_, k) => `x-${i}-${k}: ${k * i}\r\n`).join('')}\r\n`;
      const src = Buffer.from(text, 'latin1');
      const want = fieldsOf(head(tsResponse(src, 0, src.length, DEFAULT_LIMITS)));
      // Every third head is refilled into the one before it, which is then no longer kept.
      const refill: boolean = i % 3 === 2 && into !== null;
      const h = head(q.parseResponseHead(src, 0, src.length, DEFAULT_LIMITS, refill ? into : null));
      if (refill) {
        expect(h).toBe(into);
        kept.pop();
      }
      expect(fieldsOf(h)).toEqual(want);
      arrays.add(h.fieldSlots);
      kept.push([h, want, src]);
      into = h;
    }
    // The records of 3000 heads do not fit one array: it was replaced, and the old heads kept theirs.
    expect(arrays.size).toBeGreaterThan(2);
    for (const [h, want] of kept) expect(fieldsOf(h)).toEqual(want);
  });

  it('never takes a string of the parser bound before: its numbers start again after the array grows', () => {
    const q = nativeHeadParser(b)!;
    const one = (target: string, host: string, maxHeaders: number) => {
      const src = Buffer.from(`GET ${target} HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
      const h = head(q.parseRequestHead(src, 0, src.length, { maxHeadBytes: 8192, maxHeaders }));
      return [h.target, h.host];
    };
    expect(one('/first', 'first.local', 10)).toEqual(['/first', 'first.local']);
    expect(one('/first', 'first.local', 10)).toEqual(['/first', 'first.local']);
    // A larger max_headers grows the result array: bound again, numbering from the start.
    expect(one('/other', 'other.local', 300)).toEqual(['/other', 'other.local']);
    expect(one('/other', 'other.local', 300)).toEqual(['/other', 'other.local']);
    expect(one('/first', 'first.local', 300)).toEqual(['/first', 'first.local']);
  });
});

type BoundHead<T> = (to: T, firstLine: string, src: Buffer | null, nRuns: number, extra: string, tail: Buffer | null, tailStart: number, tailEnd: number) => number;
type Unbound<T> = (to: T, firstLine: string, src: Buffer | null, runs: Int32Array, nRuns: number, extra: string, tail: Buffer | null, tailStart: number, tailEnd: number) => number;
const w = b as unknown as {
  bindHttp1HeadWriter: (runs: Int32Array) => [BoundHead<Buffer>, BoundHead<number>];
  writeHttp1Head: Unbound<Buffer>;
};

describe('bindHttp1HeadWriter', () => {
  const src = Buffer.from('xxHost: a\r\nX-One: 1\r\nX-Two: 2\r\n', 'latin1');
  const runs = new Int32Array(8);
  runs.set([2, 9, 11, 19, 21, 29]);
  const [write, send] = w.bindHttp1HeadWriter(runs);

  it('writes what writeHttp1Head writes, and sends the same bytes on a socket', async () => {
    const tail = Buffer.from('--body--');
    for (const [n, t, ts, te] of [
      [3, null, 0, 0],
      [1, tail, 2, 6],
      [0, tail, 0, 8],
    ] as const) {
      const a = Buffer.alloc(256);
      const bb = Buffer.alloc(256);
      const na = w.writeHttp1Head(a, 'GET / HTTP/1.1', src, runs, n, 'x-e: 1\r\n', t, ts, te);
      const nb = write(bb, 'GET / HTTP/1.1', src, n, 'x-e: 1\r\n', t, ts, te);
      expect(nb).toBe(na);
      expect(na).toBeGreaterThan(20);
      expect(bb.equals(a)).toBe(true);
    }
    // send: a real connected pair; the receiver sees writeHttp1Head's bytes.
    const p = await tcpPair();
    const want = Buffer.alloc(256);
    const len = w.writeHttp1Head(want, 'HTTP/1.1 200 OK', src, runs, 3, '', null, 0, 0);
    const fd = directFd(p.client);
    expect(fd).toBeGreaterThanOrEqual(0);
    expect(send(fd, 'HTTP/1.1 200 OK', src, 3, '', null, 0, 0)).toBe(len);
    expect((await p.waitFor(len)).equals(want.subarray(0, len))).toBe(true);
    p.close();
  });

  it('throws for bad arguments, naming them', () => {
    expect(() => w.bindHttp1HeadWriter(new Uint8Array(8) as unknown as Int32Array)).toThrow(/runs must be an Int32Array/);
    // More runs than the bound array holds.
    expect(() => write(Buffer.alloc(512), 'X', src, 5, '', null, 0, 0)).toThrow(/nRuns out of range/);
    expect(() => write(Buffer.alloc(4), 'GET / HTTP/1.1', src, 3, '', null, 0, 0)).toThrow(/out is too small/);
    expect(() => (write as unknown as (...a: unknown[]) => number)(Buffer.alloc(64), 'X', src)).toThrow(/arguments must be/);
  });

  it('keeps encodeHead equal to the TypeScript encoder after its runs array grows', async () => {
    // 300 headers, every other one dropped: 150 separate runs, past the initial 64.
    let text = 'GET / HTTP/1.1\r\nHost: h\r\n';
    for (let i = 0; i < 300; i++) text += `x-h${i}: ${i}\r\n`;
    text += '\r\n';
    const h = head(tsRequest(Buffer.from(text), 0, text.length, { maxHeadBytes: 1 << 16, maxHeaders: 400 }));
    const drop = (_h: MessageHead, i: number) => i % 2 === 1;
    const js = encodeHeadJs('GET /x HTTP/1.1', h, drop, 'x-a: b\r\n');
    expect(encodeHead('GET /x HTTP/1.1', h, drop, 'x-a: b\r\n').equals(js)).toBe(true);
    // And a small head afterwards, on the regrown array.
    const small = head(tsRequest(Buffer.from(REQUEST.slice(5), 'latin1'), 0, REQUEST.length - 5, DEFAULT_LIMITS));
    expect(encodeHead('GET / HTTP/1.1', small, null, '').equals(encodeHeadJs('GET / HTTP/1.1', small, null, ''))).toBe(true);
  });
});

describe('16-byte skip over plain bytes in the native parser', () => {
  const p = nativeHeadParser(b)!;
  const same = (got: unknown, want: unknown): void => {
    if (typeof want === 'number' || typeof got === 'number') {
      expect(got).toBe(want);
      return;
    }
    const g = got as MessageHead;
    const w = want as MessageHead;
    expect([g.headBytes, g.target, g.host, g.status, fieldsOf(g)]).toEqual([w.headBytes, w.target, w.host, w.status, fieldsOf(w)]);
  };

  it('agrees with the TypeScript parser for every byte value at every position of a long target and value', () => {
    const target = `/${'abcdefghij'.repeat(5)}`; // 51 bytes: three 16-byte blocks and a tail
    const value = 'v'.repeat(50);
    const reqText = `GET ${target} HTTP/1.1\r\nHost: h\r\nX-Long: ${value}\r\nX-After: 1\r\n\r\n`;
    const resText = `HTTP/1.1 200 OK\r\nX-Long: ${value}\r\nContent-Length: 0\r\n\r\n`;
    const tStart = 4;
    const vStartReq = reqText.indexOf('X-Long: ') + 8;
    const vStartRes = resText.indexOf('X-Long: ') + 8;
    const outcomes = new Set<string>();
    for (let c = 0; c < 256; c++) {
      for (let k = 0; k < 50; k++) {
        for (const [request, text, at] of [
          [true, reqText, tStart + 1 + k],
          [true, reqText, vStartReq + k],
          [false, resText, vStartRes + k],
        ] as const) {
          const buf = Buffer.from(text, 'latin1');
          buf[at] = c;
          const want = request ? tsRequest(buf, 0, buf.length, DEFAULT_LIMITS) : tsResponse(buf, 0, buf.length, DEFAULT_LIMITS);
          const got = request ? p.parseRequestHead(buf, 0, buf.length, DEFAULT_LIMITS) : p.parseResponseHead(buf, 0, buf.length, DEFAULT_LIMITS);
          same(got, want);
          outcomes.add(typeof want === 'number' ? String(want) : 'head');
        }
      }
    }
    // Both accepted and rejected bytes were reached (controls, DEL, HTAB, SP, obs-text).
    expect([...outcomes].sort()).toEqual(['-1', 'head']);
  });
});
