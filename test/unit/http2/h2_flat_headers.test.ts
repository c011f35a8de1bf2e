import { describe, expect, it } from 'vitest';
import { parseRequestHead, parseResponseHead } from '../../../src/protocols/http1/parser.js';
import type { MessageHead } from '../../../src/protocols/http1/types.js';
import { FlatBlocks, FlatWriter, nameIs } from '../../../src/protocols/http2/flat_headers.js';
import { flatGet, flatOf, flatStatus, headerObject } from '../../../src/protocols/http2/native_session.js';
import { editResponseObject, h2ResponseFlatOf, h2ResponseFlatPairs, trailersFlatOf, upstreamFlatOf, upstreamObject, HeadSpans, writeH1ResponseExtras, writeH1ResponseSpans, type UpstreamEdits } from '../../../src/filters/network/http_connection_manager/h2_session.js';
import { F } from '../../../src/protocols/http1/types.js';
import { RUNS_TABLE } from '../../../src/native.js';
import { h1HeadOf, headerObjectOf } from '../../../src/filters/network/http_connection_manager/upstream_try.js';
import { XfccAction } from '../../../src/filters/network/http_connection_manager/xfcc.js';
/** The builders' inputs in one record: method, :path and :authority are their arguments. */
type Edits = UpstreamEdits & { method: string; path: string; authority: string };
const flatWith = (flat: string, e: Edits, h1: boolean) => upstreamFlatOf(flat, e.method, e.path, e.authority, e, h1);
const objectWith = (h: Parameters<typeof upstreamObject>[0], e: Edits, drop: null) => upstreamObject(h, e.method, e.path, e.authority, e, drop);

// The flat paths must send what the object paths send. Field order across different names may
// differ (the object groups repeats at the first one's place); per name, values and their order
// must match, pseudo-headers must come first, and the pair counts must agree.

type Pairs = Array<[string, string]>;

function pairsOf(flat: string): Pairs {
  const p = flat.split('\0');
  if (p[p.length - 1] === '') p.pop();
  const out: Pairs = [];
  for (let i = 0; i < p.length; i += 2) out.push([p[i]!.toLowerCase(), p[i + 1]!]);
  return out;
}

/** name → values in order, `date` values blanked (each path reads the clock). */
function canon(p: Pairs): Record<string, string[]> {
  const o: Record<string, string[]> = {};
  for (const [k, v] of p) (o[k] ??= []).push(k === 'date' ? 'D' : v);
  return o;
}

function pseudoFirst(p: Pairs): boolean {
  let seenRegular = false;
  for (const [k] of p) {
    if (k.startsWith(':')) {
      if (seenRegular) return false;
    } else seenRegular = true;
  }
  return true;
}

function head(text: string): MessageHead {
  const buf = Buffer.from(text, 'latin1');
  const r = parseResponseHead(buf, 0, buf.length);
  if (typeof r === 'number') throw new Error(`parse failed: ${r} for ${JSON.stringify(text)}`);
  return r;
}

const FIELD_SETS: string[][] = [
  [],
  ['Content-Length: 5'],
  ['content-type: text/plain', 'Content-Length: 0', 'Date: Thu, 01 Jan 2026 00:00:00 GMT'],
  ['Set-Cookie: a=1; Path=/', 'set-cookie: b=2', 'SET-COOKIE: c=3; HttpOnly', 'Content-Length: 0'],
  ['X-Dup: 1', 'x-other: o', 'x-dup: 2', 'X-DUP: 3', 'Transfer-Encoding: chunked'],
  ['Connection: keep-alive, x-hop', 'Keep-Alive: timeout=5', 'Proxy-Connection: close', 'Upgrade: h2c', 'TE: trailers', 'Host: leaked', 'HTTP2-Settings: AAAA', 'Content-Length: 0'],
  ['Server: upstream-srv', 'Content-Length: 0'],
  ['server: a', 'Server: b', 'Content-Length: 0'],
  ['X-Request-Id: from-upstream', 'Content-Length: 0'],
  ['Cookie: c1=1', 'cookie: c2=2', 'Content-Length: 0'],
  ['grpc-status: 14', 'grpc-message: unavailable', 'Content-Length: 0'],
  ['X-Long: ' + 'v'.repeat(300), 'X-Empty:', 'x-tab: a\tb', 'Content-Length: 0'],
  ['X-Latin1: caf\xe9', 'Content-Length: 0'],
];

describe('H1 response head → h2 response list (writeH1ResponseSpans)', () => {
  it('writes the server and date pairs a changed name or second asks for, not the kept ones', () => {
    const h = head('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
    const listOf = (name: string): Pairs => {
      const w = new FlatWriter(16);
      writeH1ResponseSpans(w, new HeadSpans(), 200, h, 'OVERWRITE', name, null);
      expect(w.pairs).toBe(3);
      return pairsOf(w.buf.toString('latin1', 0, w.len));
    };
    for (const name of ['a', 'strait-b', 'a', 'envoy']) {
      const p = listOf(name);
      expect(p[0]).toEqual([':status', '200']);
      expect(p.find(([k]) => k === 'server')).toEqual(['server', name]);
      // An HTTP date of now (give or take the second that may turn between the two reads).
      const d = p.find(([k]) => k === 'date')![1];
      expect(d).toMatch(/^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/);
      expect(Math.abs(Date.parse(d) - Date.now())).toBeLessThan(2000);
    }
    const blocks = new FlatBlocks();
    expect(blocks.date('Sat, 05 Dec 2026 18:45:00 GMT').toString('latin1')).toBe('date\0Sat, 05 Dec 2026 18:45:00 GMT\0');
    expect(blocks.date('Sat, 05 Dec 2026 18:45:01 GMT').toString('latin1')).toBe('date\0Sat, 05 Dec 2026 18:45:01 GMT\0');
    expect(blocks.status(404).toString('latin1')).toBe(':status\x00404\x00');
    expect(blocks.status(404)).toBe(blocks.status(404));
    expect(blocks.status(799).toString('latin1')).toBe(':status\x00799\x00');
  });


  const modes = ['OVERWRITE', 'APPEND_IF_ABSENT', 'PASS_THROUGH'];
  const rids = [null, 'rid-123'];
  const statuses = [200, 204, 404, 503];
  for (const fields of FIELD_SETS) {
    for (const mode of modes) {
      for (const rid of rids) {
        it(`matches the object path: ${JSON.stringify(fields).slice(0, 80)} ${mode} rid=${rid}`, () => {
          for (const status of statuses) {
            // A 204 that frames a body is an upstream protocol error (http1_bodyless_framing test).
            if (status === 204 && fields.some((f) => /^(content-length: *[1-9]|transfer-encoding)/i.test(f))) continue;
            const h = head(`HTTP/1.1 ${status} X\r\n${fields.map((f) => `${f}\r\n`).join('')}\r\n`);
            // Object path: what H1Try + H2Exchange.onResponse + NativeH2Stream.respond send.
            const obj = headerObjectOf(h);
            obj[':status'] = String(status);
            editResponseObject(obj, mode, 'strait-test', rid);
            const [flatA, pairsA] = flatOf(obj, true);
            // Span path: the added pairs in the writer, the kept fields as positions in the
            // head, which the addon hands to nghttp2 (it lower-cases names) after the writer's.
            const w = new FlatWriter(64);
            const spans = new HeadSpans();
            writeH1ResponseSpans(w, spans, status, h, mode, 'strait-test', rid);
            let flatB = w.buf.toString('latin1', 0, w.len);
            for (let k = 0; k < spans.n; k++) {
              const [ns, ne, vs, ve] = spans.buf.subarray(4 * k, 4 * k + 4);
              flatB += `${h.buf.toString('latin1', ns, ne).toLowerCase()}\0${h.buf.toString('latin1', vs, ve)}\0`;
            }
            const a = pairsOf(flatA);
            const b = pairsOf(flatB);
            expect(pairsA).toBe(a.length);
            expect(w.pairs + spans.n).toBe(b.length);
            expect(canon(b)).toEqual(canon(a));
            expect(pseudoFirst(b)).toBe(true);
            expect(b[0]).toEqual([':status', String(status)]);
          }
        });
      }
    }
  }

  it('grows its buffer for a long list and keeps every byte', () => {
    const w = new FlatWriter(16);
    const v = 'x'.repeat(5000);
    w.pair('a', v);
    w.pair('b', 'c');
    expect(w.buf.toString('latin1', 0, w.len)).toBe(`a\0${v}\0b\0c\0`);
    expect(w.pairs).toBe(2);
  });

  it('nameIs compares ignoring the case of letters only', () => {
    const b = Buffer.from('X-Request-ID server');
    expect(nameIs(b, 0, 12, 'x-request-id')).toBe(true);
    expect(nameIs(b, 13, 19, 'server')).toBe(true);
    expect(nameIs(b, 13, 19, 'serve')).toBe(false);
    expect(nameIs(Buffer.from('x\rrequest-id'), 0, 12, 'x-request-id')).toBe(false);
  });
});

// ---- request: the downstream's flat list → upstream request ----

/** A downstream list as the addon delivers it: no NUL after the last value. */
function downstream(pairs: Array<[string, string]>): string {
  return pairs.map(([k, v]) => `${k}\0${v}`).join('\0');
}

/** name → the value HTTP reads (repeats joined with ", ", cookie with "; "), x-request-id blanked when generated. */
function joined(p: Pairs, generated: boolean): Record<string, string> {
  const o: Record<string, string> = {};
  for (const [k, v0] of p) {
    const v = generated && k === 'x-request-id' ? 'R' : v0;
    o[k] = o[k] === undefined ? v : `${o[k]}${k === 'cookie' ? '; ' : ', '}${v}`;
  }
  return o;
}

function h1Pairs(head: Buffer): { line: string; pairs: Pairs } {
  const r = parseRequestHead(head, 0, head.length);
  if (typeof r === 'number') throw new Error(`bad head ${r}: ${head.toString('latin1')}`);
  const pairs: Pairs = [];
  const f = r.fieldSlots;
  for (let i = r.fieldsAt; i < r.fieldsEnd; i += F.SIZE) {
    pairs.push([head.toString('latin1', f[i + F.NAME_START]!, f[i + F.NAME_END]!).toLowerCase(), head.toString('latin1', f[i + F.VALUE_START]!, f[i + F.VALUE_END]!)]);
  }
  expect(r.headBytes).toBe(head.length);
  return { line: `${r.method} ${r.target}`, pairs };
}

const PSEUDO: Array<[string, string]> = [
  [':method', 'GET'],
  [':scheme', 'http'],
  [':authority', 'svc.local:8080'],
  [':path', '/a/b?c=d'],
];

const REQUEST_SETS: Array<Array<[string, string]>> = [
  [],
  [['user-agent', 'h2load'], ['accept', '*/*']],
  [['content-type', 'application/grpc'], ['te', 'trailers'], ['grpc-timeout', '1S'], ['user-agent', 'grpc-node-js/1.14']],
  [['te', 'gzip'], ['x-a', '1']],
  [['connection', 'close'], ['keep-alive', '5'], ['proxy-connection', 'x'], ['upgrade', 'h2c'], ['transfer-encoding', 'chunked'], ['http2-settings', 'AA'], ['host', 'h.example'], ['x-keep', 'k']],
  [['x-forwarded-for', '1.1.1.1'], ['x-forwarded-for', '2.2.2.2'], ['x-b', 'b']],
  [['x-forwarded-proto', 'https'], ['x-request-id', 'client-id'], ['content-length', '5']],
  [['x-request-id', 'a'], ['x-request-id', 'b']],
  [['cookie', 'a=1'], ['x-mid', 'm'], ['cookie', 'b=2']],
  [['cookie', 'only=1']],
  [['x-dup', '1'], ['x-other', 'o'], ['x-dup', '2'], ['x-empty', '']],
  [['x-last-empty', '']],
  [['x-forwarded-client-cert', 'By=spiffe://up;URI=spiffe://c'], ['x-z', 'z']],
  [['x-forwarded-client-cert', 'Hash=1'], ['x-forwarded-client-cert', 'Hash=2']],
  [['x-long', 'v'.repeat(500)], ['set-cookie', 'odd=1'], ['set-cookie', 'odd=2']],
];

describe('downstream flat list → upstream request (upstreamFlatOf)', () => {
  const edits: Array<Omit<Edits, 'requestId'>> = [];
  for (const method of ['GET', 'POST']) {
    for (const ip of [undefined, '10.0.0.7']) {
      for (const emptyBody of [false, true]) {
        for (const generateRequestId of [true, false]) edits.push({ method, path: '/up/b?c=d', authority: 'svc.local', ip, emptyBody, generateRequestId, xfcc: XfccAction.DROP, xfccElement: '' });
      }
    }
  }
  // Every x-forwarded-client-cert outcome, on one base edit each (xfcc.ts).
  for (const [xfcc, xfccElement] of [[XfccAction.KEEP, ''], [XfccAction.APPEND, 'By=spiffe://a;Hash=ab;URI=spiffe://b'], [XfccAction.SET, 'Hash=cd']] as const) {
    edits.push({ ...edits[0]!, xfcc, xfccElement }, { ...edits[5]!, xfcc, xfccElement });
  }
  it('adds content-length: 0 to an empty request whose method may carry a body, not to GET, HEAD, DELETE, TRACE or CONNECT', () => {
    for (const method of ['GET', 'HEAD', 'DELETE', 'TRACE', 'CONNECT', 'POST', 'PUT', 'PATCH', 'OPTIONS', 'get', 'GETX']) {
      const flat = downstream([[':method', method], [':scheme', 'http'], [':authority', 'svc'], [':path', '/'], ['x-a', '1']]);
      const bodiless = ['GET', 'HEAD', 'DELETE', 'TRACE', 'CONNECT'].includes(method);
      for (const emptyBody of [true, false]) {
        const e: Edits = { method, path: '/', authority: 'svc', ip: undefined, emptyBody, generateRequestId: false, xfcc: XfccAction.DROP, xfccElement: '', requestId: null };
        const fr = upstreamFlatOf(flat, e.method, e.path, e.authority, e, false)!;
        expect(flatGet(fr.flat.slice(0, -1), 'content-length'), `${method} empty=${emptyBody}`).toBe(emptyBody && !bodiless ? '0' : undefined);
        const obj = objectWith(headerObject(flat), { ...e }, null);
        expect(obj['content-length'], `${method} empty=${emptyBody} (object)`).toBe(emptyBody && !bodiless ? '0' : undefined);
      }
    }
  });
  for (const set of REQUEST_SETS) {
    it(`matches the object path over HTTP/2 and HTTP/1: ${JSON.stringify(set).slice(0, 90)}`, () => {
      for (const e0 of edits) {
        const pseudo = PSEUDO.map(([k, v]) => [k, k === ':method' ? e0.method : v] as [string, string]);
        const flat = downstream([...pseudo, ...set]);
        const generated = e0.generateRequestId && flatGet(flat, 'x-request-id') === undefined;
        const ea: Edits = { ...e0, requestId: null };
        const obj = upstreamObject(headerObject(flat), ea.method, ea.path, ea.authority, ea, null);
        const [objFlat, objPairs] = flatOf(obj, false);

        // HTTP/2 upstream: the list the addon gets.
        const eb: Edits = { ...e0, requestId: null };
        const fr = upstreamFlatOf(flat, eb.method, eb.path, eb.authority, eb, false)!;
        expect(fr).not.toBeNull();
        const a = pairsOf(objFlat);
        const b = pairsOf(fr.flat);
        expect(objPairs).toBe(a.length);
        expect(fr.pairs).toBe(b.length);
        expect(fr.flat.endsWith('\0')).toBe(true);
        expect(pseudoFirst(b)).toBe(true);
        expect(b.slice(0, 4)).toEqual(a.filter(([k]) => k.startsWith(':')));
        expect(joined(b, generated)).toEqual(joined(a, generated));
        expect(eb.requestId === null).toBe(ea.requestId === null);
        if (!generated) expect(eb.requestId).toBe(ea.requestId);
        else expect(eb.requestId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
        // The object built from the flat request is the one the object path makes (node:http2 upstreams, mirrors).
        const fo = fr.object();
        const expectObj = { ...obj };
        if (generated) expectObj['x-request-id'] = fo['x-request-id'];
        expect(joined(pairsOf(flatOf(fo, false)[0]), generated)).toEqual(joined(pairsOf(flatOf(expectObj, false)[0]), generated));

        // HTTP/1 upstream: the head H1Try writes, with and without chunking.
        const ec: Edits = { ...e0, requestId: null };
        const fr1 = upstreamFlatOf(flat, ec.method, ec.path, ec.authority, ec, true);
        const cookies = set.filter(([k]) => k === 'cookie').length;
        if (cookies > 1) {
          // HTTP/1 wants one cookie field: the object path joins them.
          expect(fr1).toBeNull();
          continue;
        }
        for (const chunked of [false, true]) {
          const ha = h1Pairs(h1HeadOf(obj, e0.method, chunked && obj['content-length'] === undefined));
          const hb = h1Pairs(fr1!.h1Head(chunked && !fr1!.hasContentLength));
          // The addon's writer gives the TypeScript reference's bytes exactly.
          expect(fr1!.h1Head(chunked).equals(fr1!.h1HeadJs(chunked))).toBe(true);
          expect(hb.line).toBe(ha.line);
          expect(joined(hb.pairs, generated)).toEqual(joined(ha.pairs, generated));
        }
        expect(fr1!.hasContentLength).toBe(obj['content-length'] !== undefined);
      }
    });
  }

  it('fillId: each writer puts a fresh UUID v4 where the placeholder id is, and no string is made for it', () => {
    const UUID4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
    const flat = downstream([...PSEUDO, ['x-a', '1'], ['te', 'trailers']]);
    const e: Edits = { method: 'GET', path: '/', authority: 'svc', ip: '10.0.0.1', emptyBody: false, generateRequestId: true, fillId: true, xfcc: XfccAction.DROP, xfccElement: '', requestId: null };
    const fr = upstreamFlatOf(flat, e.method, e.path, e.authority, e, true)!;
    expect(fr.fillsId).toBe(true);
    expect(e.requestId).toBeNull();
    const ids: string[] = [];
    // The addon's writer (both modes of FlatRequest) and the TypeScript reference.
    for (const head of [fr.h1Head(false), fr.h1Head(true), fr.h1HeadJs(false), fr.h1HeadJs(true)]) {
      const text = head.toString('latin1');
      const m = /\r\nx-request-id: ([^\r]*)\r\n/.exec(text);
      expect(m?.[1]).toMatch(UUID4);
      expect(text).toContain('x-forwarded-for: 10.0.0.1\r\n');
      ids.push(m![1]!);
    }
    // The list built for the object path (node:http2 upstreams) gets one too.
    const f2 = flatWith(flat, { ...e, requestId: null }, false)!;
    const id2 = flatGet(f2.flat.slice(0, -1), 'x-request-id')!;
    expect(id2).toMatch(UUID4);
    ids.push(id2);
    expect(new Set(ids).size).toBe(5);
    // A client's own id is forwarded as it is, fillId or not.
    const own = flatWith(downstream([...PSEUDO, ['x-request-id', 'mine']]), { ...e, requestId: null }, true)!;
    expect(own.fillsId).toBe(false);
    expect(own.h1Head(false).toString('latin1')).toContain('x-request-id: mine\r\n');
  });

  it("writes an HTTP/1 head from a list with obs-text and `te` (an HTTP/2 try's list) as the reference does", () => {
    const e: Edits = { method: 'POST', path: '/p\u00e9?q=\u00ff', authority: 'h\u00e4st', ip: '10.1.1.1', emptyBody: false, generateRequestId: false, xfcc: XfccAction.DROP, xfccElement: '', requestId: null };
    const flat = downstream([...PSEUDO, ['te', 'trailers'], ['x-latin', 'caf\u00e9 \u00ff'], ['x-empty', ''], ['x-last', 'z']]);
    // Built for an HTTP/2 upstream, so `te: trailers` is among its runs: the HTTP/1 head leaves it out.
    const fr = upstreamFlatOf(flat, e.method, e.path, e.authority, e, false)!;
    expect(fr.flat).toContain('te\0trailers\0');
    for (const chunked of [false, true]) {
      const a = fr.h1Head(chunked);
      expect(a.equals(fr.h1HeadJs(chunked))).toBe(true);
      const text = a.toString('latin1');
      expect(text.startsWith('POST /p\u00e9?q=\u00ff HTTP/1.1\r\nhost: h\u00e4st\r\n')).toBe(true);
      expect(text).toContain('x-latin: caf\u00e9 \u00ff\r\nx-empty: \r\nx-last: z\r\n');
      expect(text).not.toContain('te: trailers');
      expect(text.endsWith(chunked ? 'transfer-encoding: chunked\r\n\r\n' : '\r\n\r\n')).toBe(true);
    }
  });

  it('flatGet reads a field as headerObject holds it', () => {
    const flat = downstream([...PSEUDO, ['cookie', 'a=1'], ['x', '1'], ['cookie', 'b=2'], ['x', '2'], ['set-cookie', 's'], ['e', '']]);
    const o = headerObject(flat);
    for (const n of [':method', ':path', ':authority', 'cookie', 'x', 'set-cookie', 'e', 'absent', ':status']) {
      expect(flatGet(flat, n, n.startsWith(':'))).toEqual(o[n]);
    }
  });

  it('flatStatus reads :status as Number(flatGet(...)) does, off the table or not', () => {
    const lists = [
      ...['100', '200', '204', '404', '503', '599', '000', '999'].map((v) => downstream([[':status', v], ['content-type', 'application/grpc']])),
      downstream([[':status', '200']]),
      // Not what nghttp2 lets through, but read the slow way all the same.
      downstream([[':status', '2x0'], ['a', 'b']]),
      downstream([[':status', '2000']]),
      downstream([[':status', '20']]),
      downstream([['date', 'x'], [':status', '302']]),
      downstream([['x', '1']]),
    ];
    for (const flat of lists) {
      const want = Number(flatGet(flat, ':status', true));
      const got = flatStatus(flat);
      if (Number.isNaN(want)) expect(got).toBeNaN();
      else expect(got, flat).toBe(want);
    }
  });
});

describe('HTTP/2 upstream flat response → downstream (h2ResponseFlatOf)', () => {
  const SETS: Array<Array<[string, string]>> = [
    [],
    [['content-type', 'application/grpc'], ['grpc-encoding', 'identity']],
    [['set-cookie', 'a=1'], ['set-cookie', 'b=2'], ['x-dup', '1'], ['x-o', 'o'], ['x-dup', '2']],
    [['connection', 'x'], ['keep-alive', 'k'], ['proxy-connection', 'p'], ['upgrade', 'u'], ['transfer-encoding', 't'], ['http2-settings', 'h'], ['host', 'leak'], ['te', 'trailers'], ['x-keep', 'k']],
    [['server', 'up'], ['date', 'Thu, 01 Jan 2026 00:00:00 GMT'], ['x-request-id', 'up-id']],
    [['server', 'a'], ['server', 'b']],
    [['x-last-empty', '']],
  [['x-forwarded-client-cert', 'By=spiffe://up;URI=spiffe://c'], ['x-z', 'z']],
  [['x-forwarded-client-cert', 'Hash=1'], ['x-forwarded-client-cert', 'Hash=2']],
    [['host', 'only-dropped']],
  ];
  for (const set of SETS) {
    for (const mode of ['OVERWRITE', 'APPEND_IF_ABSENT', 'PASS_THROUGH']) {
      for (const rid of [null, 'rid-9']) {
        it(`matches the object path: ${JSON.stringify(set).slice(0, 70)} ${mode} rid=${rid}`, () => {
          const flat = downstream([[':status', '200'], ...set]);
          const obj = headerObject(flat);
          editResponseObject(obj, mode, 'strait-test', rid);
          const [fa, pa] = flatOf(obj, true);
          const fb = h2ResponseFlatOf(flat, mode, 'strait-test', rid);
          const a = pairsOf(fa);
          const b = pairsOf(fb);
          expect(pa).toBe(a.length);
          // The pair count is what respond() is given: a wrong one makes the addon throw.
          expect(h2ResponseFlatPairs()).toBe(b.length);
          expect(fb.endsWith('\0')).toBe(true);
          expect(joined(b, false)).toEqual(joined(a, false).date === undefined ? joined(a, false) : { ...joined(a, false), date: joined(b, false).date! });
          expect(b[0]).toEqual([':status', '200']);
        });
      }
    }
  }
});

describe('HTTP/2 upstream flat response → downstream: the server and date tail', () => {
  it('follows a changed server name and adds the date alone when the server is kept', () => {
    const flat = downstream([[':status', '200'], ['content-type', 'application/grpc']]);
    for (const name of ['a', 'strait-b', 'a', 'envoy']) {
      for (const mode of ['OVERWRITE', 'APPEND_IF_ABSENT', 'PASS_THROUGH']) {
        const p = pairsOf(h2ResponseFlatOf(flat, mode, name, null));
        expect(h2ResponseFlatPairs()).toBe(p.length);
        expect(p.filter(([k]) => k === 'server')).toEqual(mode === 'PASS_THROUGH' ? [] : [['server', name]]);
        const d = p.filter(([k]) => k === 'date');
        expect(d.length).toBe(1);
        expect(Math.abs(Date.parse(d[0]![1]) - Date.now())).toBeLessThan(2000);
      }
    }
  });
});

describe('HTTP/2 upstream flat response → downstream: a repeated list', () => {
  // The scan of the last list is kept (an upstream repeats its head); its runs live in the table
  // the request side also writes its runs to, so a repeat must put them back.
  it('gives the same list after the shared runs table was overwritten in between', () => {
    const flat = downstream([[':status', '200'], ['connection', 'x'], ['content-type', 'application/grpc'], ['server', 'up'], ['x-a', '1']]);
    const first = h2ResponseFlatOf(flat, 'OVERWRITE', 'strait-test', null);
    const pairs = h2ResponseFlatPairs();
    RUNS_TABLE.fill(7, 0, 16);
    expect(h2ResponseFlatOf(flat, 'OVERWRITE', 'strait-test', null)).toBe(first);
    expect(h2ResponseFlatPairs()).toBe(pairs);
    expect(pairsOf(first).map(([k]) => k)).toEqual([':status', 'content-type', 'x-a', 'server', 'date']);
    // The same list under another server setting keeps the upstream's server field.
    expect(pairsOf(h2ResponseFlatOf(flat, 'PASS_THROUGH', 'strait-test', null)).filter(([k]) => k === 'server')).toEqual([['server', 'up']]);
  });
});

describe('HTTP/2 upstream flat response → downstream: an upstream that dates its answer', () => {
  it('keeps its date and follows a changed server name', () => {
    const up = 'Thu, 01 Jan 2026 00:00:00 GMT';
    const flat = downstream([[':status', '200'], ['date', up], ['content-type', 'application/grpc']]);
    for (const name of ['a', 'strait-b', 'a', 'envoy']) {
      for (const mode of ['OVERWRITE', 'APPEND_IF_ABSENT', 'PASS_THROUGH']) {
        const p = pairsOf(h2ResponseFlatOf(flat, mode, name, null));
        expect(h2ResponseFlatPairs()).toBe(p.length);
        expect(p.filter(([k]) => k === 'server')).toEqual(mode === 'PASS_THROUGH' ? [] : [['server', name]]);
        expect(p.filter(([k]) => k === 'date')).toEqual([['date', up]]);
      }
    }
  });
});

describe('HTTP/2 upstream flat trailers → downstream (trailersFlatOf)', () => {
  const SETS: Array<Array<[string, string]>> = [
    [],
    [['grpc-status', '0']],
    [['grpc-status', '14'], ['grpc-message', 'unavailable%20now'], ['grpc-status-details-bin', 'AAAA']],
    [['connection', 'x'], ['x-t', '1'], ['host', 'h'], ['x-t', '2'], ['transfer-encoding', 'chunked'], ['keep-alive', 'k'], ['upgrade', 'u'], ['proxy-connection', 'p'], ['http2-settings', 's'], ['hosts', 'kept']],
    [['x-last-empty', '']],
  [['x-forwarded-client-cert', 'By=spiffe://up;URI=spiffe://c'], ['x-z', 'z']],
  [['x-forwarded-client-cert', 'Hash=1'], ['x-forwarded-client-cert', 'Hash=2']],
    [['host', 'dropped']],
  ];
  for (const set of SETS) {
    it(`matches sendTrailers' object filter: ${JSON.stringify(set).slice(0, 80)}`, () => {
      const flat = downstream(set);
      const src = headerObject(flat);
      // sendTrailers()' object path.
      const t: Record<string, string | string[] | undefined> = {};
      for (const k in src) if (k[0] !== ':' && src[k] !== undefined && !['connection', 'keep-alive', 'proxy-connection', 'upgrade', 'transfer-encoding', 'http2-settings', 'host'].includes(k)) t[k] = src[k];
      const [fa, pa] = flatOf(t, false);
      const fb = trailersFlatOf(flat);
      const a = pairsOf(fa);
      const b = pairsOf(fb);
      expect(pa).toBe(a.length);
      expect(h2ResponseFlatPairs()).toBe(b.length);
      expect(joined(b, false)).toEqual(joined(a, false));
      if (b.length) expect(fb.endsWith('\0')).toBe(true);
    });
  }
});

describe('writeH1ResponseExtras keeps the :status and server pairs it wrote last', () => {
  const listOf = (w: FlatWriter) => w.buf.toString('latin1', 0, w.len);
  it('writes what a fresh writer gets, whether the prefix was kept, dropped by another list, or differs', () => {
    const w = new FlatWriter(16);
    const fresh = (status: number, present: number, mode: string, rid: string | null) => {
      const f = new FlatWriter(16);
      const drop = writeH1ResponseExtras(f, status, present, mode, 'strait-k', rid);
      return { list: listOf(f).replace(/date\0[^\0]*\0/, 'date\0D\0'), pairs: f.pairs, drop };
    };
    const run = (status: number, present: number, mode: string, rid: string | null) => {
      const drop = writeH1ResponseExtras(w, status, present, mode, 'strait-k', rid);
      return { list: listOf(w).replace(/date\0[^\0]*\0/, 'date\0D\0'), pairs: w.pairs, drop };
    };
    const DATE = 64;
    const SERVER = 128;
    const REQUEST_ID = 256;
    const steps: Array<[number, number, string, string | null, boolean]> = [
      [200, 0, 'OVERWRITE', null, false],
      [200, DATE, 'OVERWRITE', 'r1', false],
      [200, DATE | REQUEST_ID, 'OVERWRITE', 'r2', false],
      [200, 0, 'OVERWRITE', null, true],
      [404, DATE, 'OVERWRITE', null, false],
      [404, SERVER, 'APPEND_IF_ABSENT', null, false],
      [404, 0, 'APPEND_IF_ABSENT', null, false],
      [404, 0, 'PASS_THROUGH', 'r3', false],
      [404, 0, 'PASS_THROUGH', null, true],
      [200, SERVER | DATE, 'OVERWRITE', null, false],
    ];
    for (const [status, present, mode, rid, otherListFirst] of steps) {
      // Another list in the shared writer in between: the kept prefix is gone.
      if (otherListFirst) {
        w.reset();
        w.pair(':status', '599');
        w.pair('x-other', 'list');
      }
      expect(run(status, present, mode, rid), `${status} ${present} ${mode} ${rid} ${otherListFirst}`).toEqual(fresh(status, present, mode, rid));
    }
    // resetTo() restores a prefix only for the owner that kept it, and only until a reset().
    const o = {};
    w.reset();
    w.pair('a', 'b');
    w.keep(o);
    w.pair('c', 'd');
    expect(w.resetTo(o)).toBe(true);
    expect([w.len, w.pairs]).toEqual([4, 1]);
    expect(w.resetTo({})).toBe(false);
    expect([w.len, w.pairs]).toEqual([0, 0]);
    expect(w.resetTo(o)).toBe(false);
  });
});

