// Two data-path helpers of the addon's HTTP/1.1 code (native/http1/http1_js.cc):
// - the owned parse (parseHttp1Head with copyTo), which lets the batch reader's arena be parsed in
//   place: the head it returns is the plain parse's, moved into a slab, and never reads the source
//   again;
// - writeHttp1Head, which writes a re-encoded head in one call: byte for byte what the TypeScript
//   encoder (encodeHeadJs, the reference) writes, over seeded mutations of real heads, also at
//   an offset of the shared stage (encodeHeadStagedAt), and sendHttp1 of a range.
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { loadNative } from '../../src/native.js';
import { DEFAULT_LIMITS, parseRequestHead, parseResponseHead, type ParseResult } from '../../src/protocols/http1/decoder.js';
import { encodeHead, encodeHeadJs, encodeHeadStagedAt, resetStage, sendHead, stagedBuffer, stagedLength } from '../../src/protocols/http1/encoder.js';
import { directFd, sendStagedRange } from '../../src/protocols/http1/send.js';
import { nativeHeadParser } from '../../src/protocols/http1/native_head.js';
import { F, type MessageHead } from '../../src/protocols/http1/types.js';
import { rng } from '../helpers/rng.js';

const native = nativeHeadParser(loadNative())!;

const REQUEST = 'GET /api/v1/users/12345?fields=name HTTP/1.1\r\nHost: service.example.com\r\nUser-Agent: wrk\r\nAccept: */*\r\nConnection: keep-alive, x-hop\r\nX-Hop: 1\r\nX-Two: two  \r\nX-Cafe: caf\xe9\r\n\r\n';
const RESPONSE = 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\nServer: nginx\r\nKeep-Alive: timeout=5\r\nX-A:\r\n\r\nhello';


/** The head's header lines as text, read through its own offsets (what forwarding copies). */
function lines(h: MessageHead): string[] {
  const out: string[] = [];
  const f = h.fieldSlots;
  for (let i = h.fieldsAt; i < h.fieldsEnd; i += F.SIZE) out.push(h.buf.toString('latin1', f[i + F.NAME_START]!, f[i + F.VALUE_END]!));
  return out;
}

function head(r: ParseResult): MessageHead {
  if (typeof r === 'number') throw new Error(`expected a head, got ${r}`);
  return r;
}

describe('owned head parse (parseHttp1Head with copyTo)', () => {
  it('returns the plain parse moved out of the source: same head, offsets into its own bytes, source free to reuse', () => {
    for (const [request, text] of [
      [true, REQUEST],
      [false, RESPONSE],
    ] as const) {
      // The head sits mid-buffer, as a read lands in the arena.
      const src = Buffer.concat([Buffer.from('junk-before'), Buffer.from(text, 'latin1')]);
      const plain = head(request ? native.parseRequestHead(src, 11, src.length, DEFAULT_LIMITS) : native.parseResponseHead(src, 11, src.length, DEFAULT_LIMITS));
      const owned = head(request ? native.parseRequestHeadOwned(src, 11, src.length, DEFAULT_LIMITS) : native.parseResponseHeadOwned(src, 11, src.length, DEFAULT_LIMITS));
      expect(owned.buf).not.toBe(src);
      expect(owned.headBytes).toBe(plain.headBytes);
      expect(owned.buf.toString('latin1', owned.start, owned.start + owned.headBytes)).toBe(text.slice(0, plain.headBytes));
      const linesBefore = lines(owned);
      expect(linesBefore).toEqual(lines(plain));
      const { buf: _a, start: _b, fieldSlots: _c, fieldsAt: _c1, fieldsEnd: _c2, ...restOwned } = owned;
      const { buf: _d, start: _e, fieldSlots: _f, fieldsAt: _f1, fieldsEnd: _f2, ...restPlain } = plain;
      expect(restOwned).toEqual(restPlain);
      // The arena is overwritten next turn: the owned head must not notice.
      src.fill(0x21);
      expect(lines(owned)).toEqual(linesBefore);
      // Re-encoding reads the head's bytes again: still the original lines.
      expect(encodeHead('X', owned, null, '').toString('latin1')).toBe(`X\r\n${linesBefore.map((l) => `${l}\r\n`).join('')}\r\n`);
    }
  });

  it('keeps every head intact across slab changes, and gives a head too big for the slab its own bytes', () => {
    const kept: [MessageHead, string[]][] = [];
    const src = Buffer.from(REQUEST, 'latin1');
    // ~170 bytes a head: thousands of heads run through several 32 KiB slabs.
    for (let i = 0; i < 3000; i++) {
      const h = head(native.parseRequestHeadOwned(src, 0, src.length, DEFAULT_LIMITS));
      if (i % 97 === 0) kept.push([h, lines(h)]);
    }
    let big = 'GET / HTTP/1.1\r\nHost: a\r\n';
    for (let i = 0; i < 40; i++) big += `x-big-${i}: ${'v'.repeat(1000)}\r\n`;
    big += '\r\n';
    const bigSrc = Buffer.from(big);
    const limits = { maxHeadBytes: 1 << 20, maxHeaders: 100 };
    const bh = head(native.parseRequestHeadOwned(bigSrc, 0, bigSrc.length, limits));
    expect(bh.buf.length).toBe(bigSrc.length);
    expect(lines(bh)).toEqual(lines(head(parseRequestHead(bigSrc, 0, bigSrc.length, limits))));
    src.fill(0x20);
    bigSrc.fill(0x20);
    for (const [h, l] of kept) expect(lines(h)).toEqual(l);
    expect(new Set(kept.map(([h]) => h.buf)).size).toBeGreaterThan(3);
  });

  it('refills a request head it returned before (`into`): the same object, as a fresh parse of the new head', () => {
    const first = Buffer.from(REQUEST, 'latin1');
    const second = Buffer.from('POST /b HTTP/1.0\r\nHost: other\r\nContent-Length: 3\r\n\r\n', 'latin1');
    const h = head(native.parseRequestHeadOwned(first, 0, first.length, DEFAULT_LIMITS));
    const again = head(native.parseRequestHeadOwned(second, 0, second.length, DEFAULT_LIMITS, h));
    expect(again).toBe(h);
    const fresh = head(native.parseRequestHeadOwned(second, 0, second.length, DEFAULT_LIMITS));
    expect(lines(again)).toEqual(lines(fresh));
    const { buf: _a, start: _b, fieldSlots: _s, fieldsAt: aa, fieldsEnd: ae, ...restAgain } = again;
    const { buf: _c, start: _d, fieldSlots: _t, fieldsAt: fa, fieldsEnd: fe, ...restFresh } = fresh;
    expect(restAgain).toEqual(restFresh);
    // Fewer fields than the head before: none of its offsets left behind.
    expect(ae - aa).toBe(fe - fa);
    // A failed parse leaves the head as it was.
    expect(native.parseRequestHeadOwned(first, 0, 30, DEFAULT_LIMITS, h)).toBe(0);
    expect(lines(h)).toEqual(lines(fresh));
  });

  it('reports incomplete and bad heads as the plain parse does, copying nothing', () => {
    const src = Buffer.from(REQUEST, 'latin1');
    expect(native.parseRequestHeadOwned(src, 0, 30, DEFAULT_LIMITS)).toBe(0);
    const bad = Buffer.from('GET / HTTP/1.1\r\nHost : a\r\n\r\n');
    expect(native.parseRequestHeadOwned(bad, 0, bad.length, DEFAULT_LIMITS)).toBe(parseRequestHead(bad, 0, bad.length));
  });
});

describe('writeHttp1Head (encodeHead) against encodeHeadJs', () => {
  it('writes the same bytes on 5000 mutated heads, drop masks, additions and inline bodies', () => {
    const r = rng(0x5e7);
    const srcs = [Buffer.from(REQUEST, 'latin1'), Buffer.from(RESPONSE, 'latin1')];
    let heads = 0;
    const diffs: string[] = [];
    for (let i = 0; i < 5000; i++) {
      const request = i % 2 === 0;
      let b = Buffer.from(srcs[i % 2]!);
      // Mutations inside header values and names keep most heads parseable while moving offsets.
      for (let e = 0; e < 1 + Math.floor(r() * 3); e++) {
        const at = Math.floor(r() * b.length);
        const op = r();
        if (op < 0.4) b = Buffer.concat([b.subarray(0, at), Buffer.from('x-ins: ' + 'y'.repeat(Math.floor(r() * 20)) + '\r\n'), b.subarray(at)]);
        else if (op < 0.7) b[at] = 0x20 + Math.floor(r() * 0xdf);
        else b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1)]);
      }
      const h = request ? parseRequestHead(b, 0, b.length) : parseResponseHead(b, 0, b.length);
      if (typeof h === 'number') continue;
      heads++;
      const mask = Math.floor(r() * 1024);
      const drop = r() < 0.2 ? null : (_h: MessageHead, k: number) => ((mask >> k % 10) & 1) === 1;
      const extra = r() < 0.3 ? '' : `x-forwarded-for: 10.0.0.${i % 256}\r\nx-\xe9: \xff\r\n`;
      const withTail = !request && r() < 0.5;
      const ts = h.headBytes;
      const te = withTail ? Math.min(b.length, ts + Math.floor(r() * 6)) : 0;
      const first = request ? `${h.method} /p${i} HTTP/1.1` : `HTTP/1.1 ${h.status} OK`;
      const nat = encodeHead(first, h, drop, extra, withTail ? b : null, withTail ? ts : 0, te);
      const js = encodeHeadJs(first, h, drop, extra, withTail ? b : null, withTail ? ts : 0, te);
      if (!nat.equals(js) && diffs.length < 3) diffs.push(`${b.toString('latin1')} → native ${JSON.stringify(nat.toString('latin1'))} js ${JSON.stringify(js.toString('latin1'))}`);
    }
    expect(diffs).toEqual([]);
    expect(heads).toBeGreaterThan(1500);
    // Chars past latin1 (config strings may hold any): both keep the low byte, as Buffer.write does.
    const wide = 'x-u: \u0101\u20ac\ud83d\ude00\r\n';
    expect(encodeHead('GET /\u0101 HTTP/1.1', null, null, wide).equals(encodeHeadJs('GET /\u0101 HTTP/1.1', null, null, wide))).toBe(true);
    // encodeHead took the addon's path (it falls back to encodeHeadJs without it).
    expect(typeof (loadNative() as { writeHttp1Head?: unknown }).writeHttp1Head).toBe('function');
    // Without a head (local replies): the first line, the additions, the blank line.
    expect(encodeHead('HTTP/1.1 204 No Content', null, null, 'a: 1\r\n').toString('latin1')).toBe(encodeHeadJs('HTTP/1.1 204 No Content', null, null, 'a: 1\r\n').toString('latin1'));
  });

  it('rejects arguments that would read or write out of bounds', () => {
    const w = (loadNative() as unknown as { writeHttp1Head: (...a: unknown[]) => number }).writeHttp1Head;
    const src = Buffer.from('abcdef');
    const runs = new Int32Array([0, 3]);
    expect(w(Buffer.alloc(64), 'GET / HTTP/1.1', src, runs, 1, 'x: 1\r\n', null, 0, 0)).toBe(16 + 5 + 6 + 2);
    expect(() => w(Buffer.alloc(64), 'GET', src, new Int32Array([0, 7]), 1, '', null, 0, 0)).toThrow(RangeError);
    expect(() => w(Buffer.alloc(64), 'GET', src, runs, 2, '', null, 0, 0)).toThrow(RangeError);
    expect(() => w(Buffer.alloc(8), 'GET / HTTP/1.1', src, runs, 1, '', null, 0, 0)).toThrow(RangeError);
    expect(() => w(Buffer.alloc(64), 'GET', src, runs, 1, '', src, 4, 9)).toThrow(RangeError);
    expect(() => w(Buffer.alloc(64), 7, src, runs, 1, '', null, 0, 0)).toThrow(TypeError);
    // Exactly the head's size is enough (the strings' NULs land on the CRLFs after them).
    expect(w(Buffer.alloc(29), 'GET / HTTP/1.1', src, runs, 1, 'x: 1\r\n', null, 0, 0)).toBe(29);
    expect(() => w('x', 'GET', src, runs, 1, '', null, 0, 0)).toThrow(TypeError);
  });
});

describe('sendHttp1Head (sendHead): a head sent by one send(2) without a Buffer', () => {
  it('delivers the bytes encodeHeadJs builds, and behind a queued write keeps the order through the stream', async () => {
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const got: Buffer[] = [];
    let received = 0;
    srv.on('connection', (c) => c.on('data', (d: Buffer) => (got.push(d), (received += d.length))));
    const sock = net.connect((srv.address() as net.AddressInfo).port, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    try {
      const fd = directFd(sock);
      expect(fd).toBeGreaterThanOrEqual(0);
      const src = Buffer.from(RESPONSE, 'latin1');
      const h = head(parseResponseHead(src, 0, src.length));
      const drop = (hd: MessageHead, i: number) => hd.fieldSlots[hd.fieldsAt + i * F.SIZE] === 5; // Keep-Alive
      const expected: Buffer[] = [];
      // Direct: nothing queued on the stream.
      let n = sendHead(sock, fd, 'HTTP/1.1 200 OK', h, drop, 'server: strait\r\n', src, h.headBytes, src.length);
      expected.push(encodeHeadJs('HTTP/1.1 200 OK', h, drop, 'server: strait\r\n', src, h.headBytes, src.length));
      expect(n).toBe(expected[0]!.length);
      // The addon's path is the one taken (without it sendHead falls back to encodeHead + sendTo).
      expect(typeof (loadNative() as { sendHttp1Head?: unknown }).sendHttp1Head).toBe('function');
      // Corked: the stream holds bytes, so the head must queue behind them.
      sock.cork();
      sock.write('BEFORE');
      expected.push(Buffer.from('BEFORE'));
      n = sendHead(sock, fd, 'HTTP/1.1 204 No Content', h, null, '', null, 0, 0);
      expected.push(encodeHeadJs('HTTP/1.1 204 No Content', h, null, ''));
      expect(Math.abs(n)).toBe(expected[2]!.length);
      sock.uncork();
      const total = expected.reduce((a, b) => a + b.length, 0);
      await new Promise<void>((r) => {
        const t = setInterval(() => received >= total && (clearInterval(t), r()), 5);
      });
      expect(Buffer.concat(got).toString('latin1')).toBe(Buffer.concat(expected).toString('latin1'));
    } finally {
      sock.destroy();
      await new Promise((r) => srv.close(r));
    }
  });
});

describe('staged heads without a Buffer (encodeHeadStagedAt, sendStagedRange)', () => {
  it('writes encodeHeadJs\'s bytes at the returned offset of the stage, one head after another', () => {
    const src = Buffer.from(RESPONSE, 'latin1');
    const h = head(parseResponseHead(src, 0, src.length));
    const drop = (hd: MessageHead, i: number) => hd.fieldSlots[hd.fieldsAt + i * F.SIZE] === 5;
    resetStage();
    const a = encodeHeadStagedAt('HTTP/1.1 200 OK', h, drop, 'server: strait\r\n', src, h.headBytes, src.length);
    const aStage = stagedBuffer();
    const aLen = stagedLength();
    const b = encodeHeadStagedAt('HTTP/1.1 204 No Content', h, null, '', null, 0, 0);
    expect(a).toBeGreaterThanOrEqual(0);
    expect(b).toBe(a + aLen);
    expect(stagedBuffer()).toBe(aStage);
    expect(aStage.subarray(a, a + aLen).equals(encodeHeadJs('HTTP/1.1 200 OK', h, drop, 'server: strait\r\n', src, h.headBytes, src.length))).toBe(true);
    expect(aStage.subarray(b, b + stagedLength()).equals(encodeHeadJs('HTTP/1.1 204 No Content', h, null, ''))).toBe(true);
    // Larger than a quarter of the stage: the caller takes encodeHeadStaged instead.
    expect(encodeHeadStagedAt('HTTP/1.1 200 OK', null, null, `x: ${'a'.repeat(20_000)}\r\n`, null, 0, 0)).toBe(-1);
    resetStage();
  });

  it('sends exactly the range, and refuses one outside the buffer', async () => {
    const send = (loadNative() as unknown as { sendHttp1: (fd: number, b: Uint8Array, off?: number, len?: number) => number }).sendHttp1;
    const srv = net.createServer({ pauseOnConnect: true });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const client = net.connect((srv.address() as net.AddressInfo).port, '127.0.0.1');
    const sock = await new Promise<net.Socket>((r) => srv.once('connection', r));
    const got: Buffer[] = [];
    client.on('data', (d: Buffer) => got.push(d));
    try {
      const fd = directFd(sock);
      const buf = Buffer.from('0123456789abcdef');
      expect(send(fd, buf, 4, 6)).toBe(6);
      expect(send(fd, buf, 16, 0)).toBe(0);
      expect(() => send(fd, buf, 12, 5)).toThrow(RangeError);
      expect(() => send(fd, buf, -1, 2)).toThrow(RangeError);
      const ok = sendStagedRange(sock, fd, buf, 10, 6);
      expect(ok).toBe(true);
      await new Promise<void>((r) => {
        const t = setInterval(() => Buffer.concat(got).length >= 12 && (clearInterval(t), r()), 5);
      });
      expect(Buffer.concat(got).toString()).toBe('456789abcdef');
    } finally {
      client.destroy();
      sock.destroy();
      await new Promise((r) => srv.close(r));
    }
  });
});
