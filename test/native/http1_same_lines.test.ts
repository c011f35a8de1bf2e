// The head writers' kept strings (KNOW_SAME_FIRST / KNOW_SAME_EXTRA in src/protocols/http1/encoder.ts,
// BoundWriter::Lines in native/http1/http1_js.cc): writeAt and writeSendAt each keep the first line
// and the extra lines they read last, and JavaScript flags a string equal to the one its function
// wrote last so that the addon copies its own bytes instead of reading the string through N-API.
// What must hold: the bytes are always the arguments' (encodeHeadJs's), whatever order strings come
// in; the addon uses its copy when told (not the argument); and a call that threw keeps nothing,
// so the two sides never disagree about what was written last.
import { describe, expect, it } from 'vitest';
import { loadNative } from '../../src/native.js';
import { encodeHeadJs, encodeHeadSendAt, encodeHeadStagedAt, keptBuffer, keptLength, lastKnownBits, resetStage, stagedBuffer, stagedLength } from '../../src/protocols/http1/encoder.js';
import { parseRequestHeadOwned, parseResponseHead } from '../../src/protocols/http1/parser.js';
import type { MessageHead } from '../../src/protocols/http1/types.js';
import { rng } from '../helpers/rng.js';

const SAME_FIRST = 512;
const SAME_EXTRA = 1024;
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** `s` as a new string object of the same characters (not the literal's), flattened. */
function fresh(s: string): string {
  const t = ` ${s}`.slice(1);
  void t.charCodeAt(0);
  return t;
}

function head(request: boolean, text: string): MessageHead {
  const b = Buffer.from(text, 'latin1');
  const h = request ? parseRequestHeadOwned(b, 0, b.length) : parseResponseHead(b, 0, b.length);
  if (typeof h === 'number') throw new Error(`unparsed: ${h}`);
  return h;
}

describe('head writers keeping the strings they wrote last', () => {
  it('write the arguments\' bytes for 3000 heads whatever order their strings come in, and take the kept copy for repeats', () => {
    expect((loadNative() as unknown as { http1SameLines?: boolean }).http1SameLines).toBe(true);
    const r = rng(0x5a3e);
    const firsts = ['HTTP/1.1 200 OK', 'HTTP/1.1 404 Not Found', 'HTTP/1.1 201 OKAY', 'GET /a HTTP/1.1', 'GET /b HTTP/1.1', 'GET /abc/def?x=1 HTTP/1.1', 'X'];
    const extras = ['', 'server: envoy\r\n', 'server: nginx\r\n', 'x-forwarded-proto: http\r\n', 'x-\xe9: \xff\r\nx-two: 2\r\n'];
    const reqText = 'GET /x HTTP/1.1\r\nHost: a.example\r\nUser-Agent: t\r\nX-Keep: 1\r\n\r\n';
    const respText = 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Up: u\r\n\r\n';
    let same = 0;
    let read = 0;
    const diffs: string[] = [];
    resetStage();
    for (let i = 0; i < 3000; i++) {
      // Same object, an equal new string, or another one (same length or not).
      const pick = (list: string[]): string => {
        const s = list[Math.floor(r() * list.length)]!;
        return r() < 0.3 ? fresh(s) : s;
      };
      const first = pick(firsts);
      const extra = pick(extras);
      const sendSide = r() < 0.5;
      // The parser's last head (the addon works out the runs) or an older one (runs from JavaScript).
      const h = head(sendSide, sendSide ? reqText : respText);
      if (r() < 0.3) head(!sendSide, sendSide ? respText : reqText);
      let got: Buffer;
      if (sendSide) {
        const at = encodeHeadSendAt(-1, first, h, null, extra, 0);
        expect(at).toBeGreaterThanOrEqual(0);
        got = Buffer.from(keptBuffer().subarray(at, at + keptLength()));
      } else {
        const at = encodeHeadStagedAt(first, h, null, extra, null, 0, 0);
        expect(at).toBeGreaterThanOrEqual(0);
        got = Buffer.from(stagedBuffer().subarray(at, at + stagedLength()));
      }
      const bits = lastKnownBits();
      if (bits & SAME_FIRST) same++;
      else read++;
      if (bits & SAME_EXTRA) same++;
      else read++;
      const want = encodeHeadJs(first, h, null, extra);
      if (!got.equals(want) && diffs.length < 5) diffs.push(`${i}: ${JSON.stringify(got.toString('latin1'))} != ${JSON.stringify(want.toString('latin1'))}`);
      if (i % 200 === 0) resetStage();
    }
    expect(diffs).toEqual([]);
    // Both ways were taken many times.
    expect(same).toBeGreaterThan(600);
    expect(read).toBeGreaterThan(600);
    resetStage();
  });
});

type WriteAt = (out: Buffer, firstLine: string, src: Buffer | null, extra: string, tail: Buffer | null) => number;
type WriteSendAt = (out: Buffer, firstLine: string, src: Buffer | null, extra: string) => number;
const addon = loadNative() as unknown as { bindHttp1HeadWriter: (runs: Int32Array, args?: Int32Array) => [unknown, unknown, unknown, WriteAt?, WriteSendAt?] };

describe('writeAt and writeSendAt with KNOW_SAME_FIRST / KNOW_SAME_EXTRA', () => {
  // KNOWN 8, KNOW_SRC 1, KNOW_LENGTHS 4; runs from the runs array (slot 0 their count).
  const BITS = 8 | 1 | 4;
  const src = Buffer.from('xxHost: a\r\n', 'latin1');
  const runs = new Int32Array([2, 9]);
  const args = new Int32Array(12);
  const [, , , writeAt, writeSendAt] = addon.bindHttp1HeadWriter(runs, args);
  const set = (first: string, extra: string, bits: number, at = 0): void => {
    args.fill(0);
    args.set([1, 0, 0, at, -1, -1, 0, BITS | bits, first.length, extra.length]);
  };
  const text = (out: Buffer, n: number): string => out.toString('latin1', 0, n);

  it('copy the kept bytes, not the argument, and refuse a length that is not the kept string\'s', () => {
    const out = Buffer.alloc(128);
    set('HTTP/1.1 200 OK', 'a: 1\r\n', 0);
    let n = writeAt!(out, 'HTTP/1.1 200 OK', src, 'a: 1\r\n', null);
    expect(text(out, n)).toBe('HTTP/1.1 200 OK\r\nHost: a\r\na: 1\r\n\r\n');
    // Same lengths, other bytes: told they are the same, the addon writes its own copy.
    set('HTTP/1.1 500 no', 'b: 2\r\n', SAME_FIRST | SAME_EXTRA);
    n = writeAt!(out, 'HTTP/1.1 500 no', src, 'b: 2\r\n', null);
    expect(text(out, n)).toBe('HTTP/1.1 200 OK\r\nHost: a\r\na: 1\r\n\r\n');
    // One kept, one read (and kept from now on).
    set('HTTP/1.1 500 no', 'c: 33\r\n', SAME_FIRST);
    n = writeAt!(out, 'HTTP/1.1 500 no', src, 'c: 33\r\n', null);
    expect(text(out, n)).toBe('HTTP/1.1 200 OK\r\nHost: a\r\nc: 33\r\n\r\n');
    set('', 'zzzzz\r\n', SAME_EXTRA);
    n = writeAt!(out, '', src, 'zzzzz\r\n', null);
    expect(text(out, n)).toBe('\r\nHost: a\r\nc: 33\r\n\r\n');
    set('HTTP/1.1 200', 'x', SAME_FIRST);
    expect(() => writeAt!(out, 'HTTP/1.1 200', src, 'x', null)).toThrow(/firstLine is not the one written last/);
    set('', 'x', SAME_EXTRA);
    expect(() => writeAt!(out, '', src, 'x', null)).toThrow(/extra is not the one written last/);
    // Same lines need the lengths to check them against.
    args[7] = 8 | 1 | SAME_FIRST;
    expect(() => writeAt!(out, '', src, 'x', null)).toThrow(/same lines need their lengths/);
  });

  it('keep nothing from a call that threw: the lines written last stay the kept ones', () => {
    const out = Buffer.alloc(128);
    set('GET /one HTTP/1.1', 'k: v\r\n', 0);
    writeAt!(out, 'GET /one HTTP/1.1', src, 'k: v\r\n', null);
    // A new first line read, then the extra's given length is wrong: the call throws after the
    // first line was written into out.
    args.set([1, 0, 0, 0, -1, -1, 0, BITS, 'GET /two HTTP/1.1'.length, 10]);
    expect(() => writeAt!(out, 'GET /two HTTP/1.1', src, 'k: v\r\n', null)).toThrow(/strings of their given lengths/);
    set('GET /two HTTP/1.1', 'k: v\r\n', SAME_FIRST | SAME_EXTRA);
    const n = writeAt!(out, 'GET /two HTTP/1.1', src, 'k: v\r\n', null);
    expect(text(out, n)).toBe('GET /one HTTP/1.1\r\nHost: a\r\nk: v\r\n\r\n');
    // An out too small throws before anything is written: nothing kept either.
    set('GET /three HTTP/1.1', 'q: 1\r\n', 0);
    expect(() => writeAt!(Buffer.alloc(8), 'GET /three HTTP/1.1', src, 'q: 1\r\n', null)).toThrow(/out is too small/);
    set('GET /one HTTP/1.1', 'k: v\r\n', SAME_FIRST | SAME_EXTRA);
    expect(text(out, writeAt!(out, 'xxxxxxxxxxxxxxxxx', src, 'yyyyyy', null))).toBe('GET /one HTTP/1.1\r\nHost: a\r\nk: v\r\n\r\n');
  });

  it('keep writeSendAt\'s lines apart from writeAt\'s, the request id placeholder as given and a fresh id each head', () => {
    const out = Buffer.alloc(256);
    set('HTTP/1.1 200 OK', '', 0);
    writeAt!(out, 'HTTP/1.1 200 OK', src, '', null);
    const extra = 'x-request-id: 00000000-0000-4000-8000-000000000000\r\n';
    const fromStart = 'GET / HTTP/1.1\r\nHost: a\r\nx-request-id: '.length;
    // writeSendAt has kept nothing yet: its empty first line is not writeAt's.
    set('HTTP/1.1 200 OK', extra, SAME_FIRST);
    expect(() => writeSendAt!(out, 'HTTP/1.1 200 OK', src, extra)).toThrow(/firstLine is not the one written last/);
    const ids: string[] = [];
    for (const bits of [0, SAME_FIRST | SAME_EXTRA, SAME_FIRST | SAME_EXTRA]) {
      set('GET / HTTP/1.1', extra, bits);
      args[5] = fromStart;
      args[6] = -1;
      const n = writeSendAt!(out, 'GET / HTTP/1.1', src, extra);
      const id = out.toString('latin1', fromStart, fromStart + 36);
      expect(id).toMatch(UUID_V4);
      ids.push(id);
      expect(text(out, n)).toBe(`GET / HTTP/1.1\r\nHost: a\r\nx-request-id: ${id}\r\n\r\n`);
    }
    expect(new Set(ids).size).toBe(3);
    // writeAt's kept lines are still its own.
    set('HTTP/1.1 200 OK', '', SAME_FIRST | SAME_EXTRA);
    expect(text(out, writeAt!(out, 'HTTP/1.1 200 OK', src, '', null))).toBe('HTTP/1.1 200 OK\r\nHost: a\r\n\r\n');
    args.fill(0);
  });
});
