// The addon's HTTP/1.1 head parser (native/http1) against the TypeScript one (decoder.ts): the
// same heads, statuses and offsets on real-looking requests and responses and on seeded
// mutations of them, including every split point (a head arriving in pieces).
import { describe, expect, it } from 'vitest';
import { loadNative } from '../../src/native.js';
import { DEFAULT_LIMITS, parseRequestHead, parseResponseHead, type ParseLimits, type ParseResult } from '../../src/protocols/http1/decoder.js';
import { nativeHeadParser } from '../../src/protocols/http1/native_head.js';
import { HTTP1_PARSER } from '../../src/protocols/http1/parser.js';
import { fieldsOf, HeadStatus, type MessageHead } from '../../src/protocols/http1/types.js';
import { rng } from '../helpers/rng.js';

const native = nativeHeadParser(loadNative())!;

const REQUESTS = [
  'GET /api/v1/users/12345?fields=name,email HTTP/1.1\r\nHost: service.example.com\r\nUser-Agent: wrk/4.2.0\r\nAccept: */*\r\nConnection: keep-alive\r\nX-Request-Id: 6f1c\r\n\r\n',
  'POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\nExpect: 100-continue\r\n\r\n',
  'PUT /x HTTP/1.1\r\nhost: b:8080\r\ncontent-length: 5, 5\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\n\r\nhello',
  '\r\nDELETE /y HTTP/1.0\nContent-Length: 12345678901\nConnection: keep-alive\n\n',
  'OPTIONS * HTTP/1.1\r\nHost: c\r\nTE: trailers\r\nKeep-Alive: 5\r\nProxy-Connection: x\r\nX-Empty:\r\nX-Tab:\tv\t \r\n\r\n',
  'BREW /pot HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n',
  // '#' past the first 16 target bytes (the addon's vector scan) and before them; Host bytes.
  'GET /0123456789abcdef/0123456789#frag HTTP/1.1\r\nHost: e\r\n\r\n',
  'GET /#f HTTP/1.1\r\nHost: e\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: bad host\r\n\r\n',
  // Names past the 16 bytes the addon skips at once (letters, digits, '-'), other token
  // characters within and after those 16, and a byte no name may hold past them.
  "GET / HTTP/1.1\r\nHost: f\r\nX-Very-Long-Header-Name-Over-Thirty-Two-Chars: v\r\nX-Odd!#$%&'*+.^_`|~: w\r\nX-0123456789-ABCDEFGHIJ_klmnop: x\r\n\r\n",
  'GET / HTTP/1.1\r\nHost: f\r\nX-Name-Of-Twenty@Chars: v\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: f\r\nContent-Length-Is-Not-It: 5\r\nTransfer-Encoding-Either: chunked\r\n\r\n',
  // The names and tokens the parser compares word-wise (any case), and near misses of them: a
  // byte that folds to the literal's only from another case, '_' for '-', '^' and '~'.
  'POST /w HTTP/1.1\r\nHOST: g\r\nCONTENT-LENGTH: 3\r\nConnection: KEEP-ALIVE, Close, UPGRADE\r\nExpect: 100-CONTINUE\r\nKeep_Alive: 1\r\nContent_Length: 9\r\nProxy-Connectio^: x\r\nTe: Trailers\r\n\r\nabc',
  'POST /w HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: Gzip, CHUNKED\r\nExpect: 100_continue\r\nConnection: keep~alive, clos\r\nUpgrade: h2c\r\n\r\n',
];
const RESPONSES = [
  'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 64\r\nServer: nginx\r\n\r\n',
  'HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n',
  'HTTP/1.0 204\nTransfer-Encoding: gzip\n\n',
  'HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\nConnection: close\r\nHost: odd\r\n\r\n',
  'HTTP/1.1 200 OK\r\nCONNECTION: CLOSE\r\nTRANSFER-ENCODING: Chunked\r\nX-REQUEST-ID: r\r\nHTTP2-SETTINGS: s\r\n\r\n',
  'HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sat, 05 Dec 2026 20:41:24 GMT\r\nContent-Type: application/octet-stream\r\nContent-Length: 64\r\nConnection: keep-alive\r\nAccess-Control-Allow-Origin: *\r\nX-Content-Type-Options: nosniff\r\n\r\n',
];


// Bytes that matter to the grammar: separators, whitespace, controls, digits, obs-text.
const INTERESTING = [0x00, 0x09, 0x0a, 0x0d, 0x20, 0x23, 0x2c, 0x2f, 0x30, 0x31, 0x39, 0x3a, 0x40, 0x48, 0x54, 0x50, 0x5b, 0x7f, 0x80, 0xa0, 0xff];

function mutate(src: Buffer, r: () => number): Buffer {
  let b = Buffer.from(src);
  const edits = 1 + Math.floor(r() * 3);
  for (let e = 0; e < edits; e++) {
    const at = Math.floor(r() * b.length);
    const op = r();
    if (op < 0.35) b[at] = Math.floor(r() * 256);
    else if (op < 0.75) b[at] = INTERESTING[Math.floor(r() * INTERESTING.length)]!;
    else if (op < 0.88) b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1)]);
    else b = Buffer.concat([b.subarray(0, at), Buffer.from([INTERESTING[Math.floor(r() * INTERESTING.length)]!]), b.subarray(at)]);
  }
  return b;
}

/** A comparable form: the status, or the head without its buffer and with its fields as a plain array. */
function view(r: ParseResult): unknown {
  if (typeof r === 'number') return r;
  const { buf: _, fieldSlots: _s, fieldsAt: _a, fieldsEnd: _e, ...rest } = r;
  return { ...rest, fields: fieldsOf(r) };
}

function both(request: boolean, buf: Buffer, off: number, end: number, limits: ParseLimits): [unknown, unknown] {
  const ts = request ? parseRequestHead(buf, off, end, limits) : parseResponseHead(buf, off, end, limits);
  const nat = request ? native.parseRequestHead(buf, off, end, limits) : native.parseResponseHead(buf, off, end, limits);
  return [view(nat), view(ts)];
}

describe('native HTTP/1.1 head parser', () => {
  it('is the parser the data path uses when the addon is built', () => {
    expect(HTTP1_PARSER).toBe(process.env.STRAIT_HTTP1_PARSER === 'ts' ? 'ts' : 'native');
  });

  it('matches the TypeScript parser on every sample, whole and at every split point', () => {
    let heads = 0;
    for (const [request, list] of [[true, REQUESTS], [false, RESPONSES]] as const) {
      for (const s of list) {
        const buf = Buffer.from(s, 'latin1');
        for (let end = 0; end <= buf.length; end++) {
          const [n, t] = both(request, buf, 0, end, DEFAULT_LIMITS);
          expect(n, `${JSON.stringify(s)} cut at ${end}`).toEqual(t);
          if (typeof n !== 'number') heads++;
        }
        // At an offset inside a larger buffer (pipelining), and under tight limits.
        const padded = Buffer.concat([Buffer.from('xxxx'), buf]);
        for (const limits of [DEFAULT_LIMITS, { maxHeadBytes: 40, maxHeaders: 100 }, { maxHeadBytes: 60 * 1024, maxHeaders: 2 }]) {
          const [n, t] = both(request, padded, 4, padded.length, limits);
          expect(n, `${JSON.stringify(s)} with ${JSON.stringify(limits)}`).toEqual(t);
        }
      }
    }
    expect(heads).toBeGreaterThan(REQUESTS.length);
  });

  it('names each method as the TypeScript parser does, the numbered ones and any other, fresh and into an earlier head', () => {
    const methods = ['GET', 'PUT', 'POST', 'HEAD', 'PATCH', 'DELETE', 'OPTIONS', 'CONNECT', 'TRACE', 'PROPFIND', 'GETS', 'get', 'PUTX', 'POSTS', 'TRACF', 'CONNECTS', 'M'];
    let into: MessageHead | null = null;
    for (const m of methods) {
      const buf = Buffer.from(`${m} /p HTTP/1.1\r\nHost: h\r\n\r\n`, 'latin1');
      const ts = parseRequestHead(buf, 0, buf.length, DEFAULT_LIMITS) as MessageHead;
      const fresh = native.parseRequestHead(buf, 0, buf.length, DEFAULT_LIMITS) as MessageHead;
      const again = native.parseRequestHeadOwned(buf, 0, buf.length, DEFAULT_LIMITS, into) as MessageHead;
      into = again;
      expect([ts.method, fresh.method, again.method]).toEqual([m, m, m]);
      // The method's number sits above the flags the head's framing gives.
      expect([fresh.chunked, fresh.connectionClose, fresh.upgrade, fresh.expectContinue]).toEqual([false, false, false, false]);
    }
  });

  it('a head parsed into an earlier one holds its own fields only, whether it has more, fewer or none', () => {
    const head = (n: number) => `HTTP/1.1 200 OK\r\n${Array.from({ length: n }, (_, i) => `x-f${i}: v${i}\r\n`).join('')}\r\n`;
    let into: MessageHead | null = null;
    for (const n of [5, 2, 7, 0, 3, 3]) {
      const buf = Buffer.from(head(n), 'latin1');
      const got = native.parseResponseHead(buf, 0, buf.length, DEFAULT_LIMITS, into);
      expect(typeof got).toBe('object');
      const h = got as MessageHead;
      if (into !== null) expect(h).toBe(into);
      expect(view(h)).toEqual(view(parseResponseHead(buf, 0, buf.length, DEFAULT_LIMITS)));
      expect(h.fieldsEnd - h.fieldsAt).toBe(5 * n);
      into = h;
    }
  });

  it('matches the TypeScript parser on 20000 mutated heads, whole and cut, and nothing throws', () => {
    const r = rng(0x4877);
    const outcomes = new Map<unknown, number>();
    const diffs: string[] = [];
    const samples = [...REQUESTS.map((s) => [true, s] as const), ...RESPONSES.map((s) => [false, s] as const)];
    for (let i = 0; i < 20000; i++) {
      const [request, s] = samples[i % samples.length]!;
      const buf = mutate(Buffer.from(s, 'latin1'), r);
      // Whole, and cut at a random point as a read would deliver it.
      for (const end of [buf.length, Math.floor(r() * buf.length)]) {
        const [n, t] = both(request, buf, 0, end, DEFAULT_LIMITS);
        if (JSON.stringify(n) !== JSON.stringify(t)) {
          if (diffs.length < 5) diffs.push(`${request ? 'request' : 'response'} ${buf.toString('hex')} end ${end}: native ${JSON.stringify(n)} ts ${JSON.stringify(t)}`);
        }
        const kind = typeof t === 'number' ? t : 'head';
        outcomes.set(kind, (outcomes.get(kind) ?? 0) + 1);
      }
    }
    expect(diffs).toEqual([]);
    // The mutations must reach every outcome, or the comparison proves little.
    expect(outcomes.get('head')).toBeGreaterThan(3000);
    expect(outcomes.get(HeadStatus.MALFORMED)).toBeGreaterThan(3000);
    expect(outcomes.get(HeadStatus.NEED_MORE)).toBeGreaterThan(3000);
  });

  // H2Session.respondH1Head forwards the parser's value spans to an HTTP/2 client unchecked:
  // it relies on this.
  it('lets no NUL, lone CR, DEL or other control byte but HTAB into a header value (both parsers)', () => {
    for (const bad of ['\x00', '\r', '\x7f', 'a\x00b', 'a\rb', '\x01']) {
      for (const [request, head] of [
        [false, `HTTP/1.1 200 OK\r\nX-A: v${bad}v\r\nContent-Length: 0\r\n\r\n`],
        [true, `GET / HTTP/1.1\r\nHost: h\r\nX-A: ${bad}\r\n\r\n`],
      ] as const) {
        const buf = Buffer.from(head, 'latin1');
        const [n, t] = both(request, buf, 0, buf.length, DEFAULT_LIMITS);
        expect(n, JSON.stringify(head)).toBe(HeadStatus.MALFORMED);
        expect(t, JSON.stringify(head)).toBe(HeadStatus.MALFORMED);
      }
    }
    // HTAB and obs-text are allowed, as RFC 9110 allows them.
    const ok = Buffer.from('HTTP/1.1 200 OK\r\nX-A: a\tb\xe9\r\n\r\n', 'latin1');
    expect(typeof both(false, ok, 0, ok.length, DEFAULT_LIMITS)[0]).toBe('object');
  });

  it('rejects bad arguments with an error instead of reading out of bounds', () => {
    const parse = loadNative().parseHttp1Head!;
    const buf = Buffer.from(REQUESTS[0]!);
    expect(() => parse(true, buf, 0, buf.length + 1, 1024, 100, new Int32Array(516))).toThrow(RangeError);
    expect(() => parse(true, buf, 0, buf.length, 1024, 100, new Int32Array(100))).toThrow(RangeError);
    expect(() => parse(true, 'x' as unknown as Buffer, 0, 1, 1024, 100, new Int32Array(516))).toThrow(TypeError);
  });
});
