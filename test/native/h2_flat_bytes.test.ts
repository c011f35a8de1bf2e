// The addon's H2Session takes header lists as bytes too (respond/trailers with a byte length):
// JavaScript fills one reused buffer (src/protocols/http2/flat_headers.ts) instead of building a
// string. Driven by the real node:http2 client; bad arguments throw a TypeError naming the call.
import http2 from 'node:http2';
import { afterEach, describe, expect, it } from 'vitest';
import { FlatWriter } from '../../src/protocols/http2/flat_headers.js';
import { HeadSpans, writeH1ResponseExtras, writeH1ResponseSpans } from '../../src/filters/network/http_connection_manager/h2_session.js';
import { headFlagsInTables, parseResponseHead } from '../../src/protocols/http1/parser.js';
import { ResponseHas } from '../../src/protocols/http1/native_head.js';
import type { MessageHead } from '../../src/protocols/http1/types.js';
import { CALL_ARGS, registeredTable, setTable, tableArg, TableSlot } from '../../src/native.js';
import type { NativeH2Stream } from '../../src/protocols/http2/native_session.js';
import { b, nativeH2Server, sleep } from './helpers.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  for (let i = 0; i < 300 && b.stats().poolChunksInUse !== 0; i++) await sleep(10);
  expect(b.stats().poolChunksInUse).toBe(0);
});

function serve(handler: (s: NativeH2Stream, flat: string) => void): number {
  const srv = nativeH2Server({ onStreamFlat: (s, flat) => handler(s, flat) });
  cleanups.push(() => srv.close());
  return srv.port;
}

function ask(port: number, headers: http2.OutgoingHttpHeaders): Promise<{ headers: http2.IncomingHttpHeaders; trailers: http2.IncomingHttpHeaders | null; body: string; rst: number }> {
  const c = http2.connect(`http://127.0.0.1:${port}`);
  c.on('error', () => {});
  cleanups.push(() => new Promise<void>((r) => (c.destroyed || c.closed ? r() : c.close(() => r()))));
  return new Promise((resolve) => {
    const rq = c.request(headers);
    let head: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders | null = null;
    let body = '';
    rq.on('response', (h) => (head = h));
    rq.on('trailers', (t) => (trailers = t));
    rq.setEncoding('latin1');
    rq.on('data', (d: string) => (body += d));
    rq.on('error', () => {});
    rq.on('close', () => resolve({ headers: head, trailers, body, rst: rq.rstCode ?? 0 }));
  });
}

describe('H2Session header lists as bytes', () => {
  it('respond() and trailers from a FlatWriter reach the client as sent; the request arrives flat', async () => {
    let got = '';
    const port = serve((s, flat) => {
      got = flat;
      const w = new FlatWriter(8); // grows while written
      w.pair(':status', '201');
      w.pair('x-one', '1');
      w.pair('set-cookie', 'a=1');
      w.pair('set-cookie', 'b=2');
      w.pair('x-long', 'v'.repeat(300));
      s.respondFlat(w, { waitForTrailers: true });
      s.on('wantTrailers', () => s.sendTrailersFlat('grpc-status\0' + '0\0x-t\0t\0', 2));
      s.end(Buffer.from('body'));
    });
    const r = await ask(port, { ':path': '/flat', 'x-in': 'i' });
    expect(r.headers[':status']).toBe(201);
    expect(r.headers['x-one']).toBe('1');
    expect(r.headers['set-cookie']).toEqual(['a=1', 'b=2']);
    expect(r.headers['x-long']).toBe('v'.repeat(300));
    expect(r.trailers).toMatchObject({ 'grpc-status': '0', 'x-t': 't' });
    expect(r.body).toBe('body');
    // The request's list as the addon delivers it: pseudo-headers first, no trailing NUL.
    const parts = got.split('\0');
    expect(parts.length % 2).toBe(0);
    const names = parts.filter((_, i) => i % 2 === 0);
    expect(names.slice(0, 4).sort()).toEqual([':authority', ':method', ':path', ':scheme']);
    expect(parts[parts.indexOf(':path') + 1]).toBe('/flat');
    expect(got.endsWith('x-in\0i')).toBe(true);
  });

  it('a wrong byte length or pair count throws a TypeError naming respond, and the stream can still be answered', async () => {
    const errors: string[] = [];
    const port = serve((s) => {
      const w = new FlatWriter();
      w.pair(':status', '200');
      w.pair('x-a', 'a');
      const h = s.session.h;
      for (const bad of [
        () => h.respond(s.id, w.buf, w.pairs, true, w.buf.length + 1), // past the buffer
        () => h.respond(s.id, w.buf, w.pairs, true, -1),
        () => h.respond(s.id, w.buf, w.pairs, true), // no length
        () => h.respond(s.id, w.buf, w.pairs + 1, true, w.len), // a pair count that does not match
        () => h.respond(s.id, new Uint16Array(4) as unknown as Uint8Array, 1, true, 2),
        () => h.respond(String(s.id) as never, w.buf, w.pairs, true, w.len), // a stream id that is no number
      ]) {
        try {
          bad();
          errors.push('no error');
        } catch (e) {
          errors.push(`${(e as Error).name}: ${(e as Error).message}`);
        }
      }
      s.respondFlat(w, { endStream: true });
    });
    const r = await ask(port, { ':path': '/' });
    expect(errors).toHaveLength(6);
    for (const e of errors) expect(e).toMatch(/^TypeError: H2Session\.respond: /);
    expect(errors[5]).toMatch(/streamId must be a number/);
    expect(r.headers[':status']).toBe(200);
    expect(r.headers['x-a']).toBe('a');
  });
  // The addon scans a list sixteen bytes at a time: values of every length up to 20, the byte that
  // matters at each of their positions, and a pad pair in front that moves them through every
  // offset in a block, so a wrong mask or block boundary shows. Names are lower-cased by nghttp2
  // as it copies them.
  it('names of any length go out lower-cased, and CR or LF anywhere in a value is refused', async () => {
    const refused: number[] = [];
    let accepted = 0;
    const names: [string, string][] = [];
    const port = serve((s) => {
      const h = s.session.h;
      for (let pad = 0; pad < 16; pad++) {
        for (let len = 1; len <= 20; len++) {
          for (let at = 0; at < len; at++) {
            for (const bad of ['\r', '\n']) {
              const v = 'v'.repeat(at) + bad + 'v'.repeat(len - at - 1);
              const w = new FlatWriter();
              w.pair(':status', '200');
              w.pair('x-p', 'p'.repeat(pad));
              w.pair('x-v', v);
              try {
                h.respond(s.id, w.buf, w.pairs, true, w.len);
                accepted++;
              } catch {
                refused.push(len);
              }
            }
          }
        }
      }
      const w = new FlatWriter();
      w.pair(':status', '200');
      for (let len = 1; len <= 20; len++) {
        // 'A' and 'Z' at positions that move across the word boundary, among other token
        // characters, which stay as they are.
        const name = Array.from({ length: len }, (_, k) => (k === len - 1 ? 'A' : k === len >> 1 ? 'Z' : '^_`|~-0'[k % 7])).join('') + len;
        names.push([name, 'Z'.repeat(len)]);
        w.pair(name, 'Z'.repeat(len));
      }
      s.respondFlat(w, { endStream: true });
    });
    const r = await ask(port, { ':path': '/case' });
    expect(accepted).toBe(0);
    expect(refused.length).toBe(16 * 2 * ((20 * 21) / 2));
    expect(r.headers[':status']).toBe(200);
    // Values go as they are.
    for (const [n, v] of names) expect(r.headers[n.toLowerCase()]).toBe(v);
  });
  // Where the NULs fall decides the fields: a list is refused when a name is empty or has no value,
  // and a last value may end without its NUL or be empty. Each shape is tried at every offset in
  // a sixteen-byte block (the pad value in front moves it).
  it('a list with an empty name or a name without a value is refused at any offset; an empty last value is kept', async () => {
    const outcomes: string[] = [];
    const port = serve((s) => {
      const h = s.session.h;
      const shapes: [string, string, number][] = [
        ['empty name', '\0v', 3],
        ['empty name after a pair', 'x-a\0a\0\0v', 4],
        ['name without value', 'x-a', 3],
        ['name without value after a pair', 'x-a\0a\0x-b', 4],
        ['trailing NUL after a NUL', 'x-a\0a\0\0', 3],
      ];
      for (let pad = 0; pad < 16; pad++) {
        const head = `:status\0${'200'}\0x-p\0${'p'.repeat(pad)}\0`;
        for (const [what, tail, pairs] of shapes) {
          const buf = Buffer.from(head + tail, 'latin1');
          try {
            h.respond(s.id, buf, pairs, true, buf.length);
            outcomes.push(`${what} @${pad}: accepted`);
          } catch (e) {
            if (!/invalid header name or value/.test((e as Error).message)) outcomes.push(`${what} @${pad}: ${(e as Error).message}`);
          }
        }
      }
      // Accepted: an empty last value without its NUL, the field after it kept.
      const ok = Buffer.from(`:status\0${'200'}\0x-p\0${'p'.repeat(s.id % 16)}\0x-e\0\0x-last\0${'z'.repeat(17)}`, 'latin1');
      h.respond(s.id, ok, 4, true, ok.length);
    });
    const r = await ask(port, { ':path': '/' });
    expect(outcomes).toEqual([]);
    expect(r.headers[':status']).toBe(200);
    expect(r.headers['x-e']).toBe('');
    expect(r.headers['x-last']).toBe('z'.repeat(17));
  });
  // nghttp2 is told not to copy a response's fields (NGHTTP2_NV_FLAG_NO_COPY_*): each stream
  // keeps its own list until its HEADERS frame goes out. 64 requests in one burst are answered in
  // the same batch of events, all before one flush, through respondFlat, the string respond and
  // respondRuns, with lists of every size (the shortest fit in a std::string's inline buffer).
  it('each of 64 responses submitted before one flush carries its own fields', async () => {
    const errors: string[] = [];
    const port = serve((s, flat) => {
      try {
        answer(s, flat);
      } catch (e) {
        errors.push(String(e));
        s.close();
      }
    });
    const answer = (s: NativeH2Stream, flat: string): void => {
      const k = Number(flat.slice(flat.indexOf(':path\0/') + 7).split('\0')[0]!);
      const v = 'v'.repeat((k * 5) % 37) + k;
      if (k % 3 === 0) {
        const w = new FlatWriter();
        w.pair(':status', '200');
        w.pair('X-Echo', v);
        s.respondFlat(w, { endStream: true });
      } else if (k % 3 === 1) {
        s.respondFlatString(k % 2 ? `:status\0${200 + (k % 4)}` : `:status\0${'200'}\0x-echo\0${v}`, k % 2 ? 1 : 2, { endStream: true });
      } else {
        const src = `:status\0${'200'}\0x-drop\0d`;
        s.session.h.respondRuns(s.id, src, new Int32Array([0, 12]), 1, `x-echo\0${v}\0`, 2, true);
      }
    };
    const c = http2.connect(`http://127.0.0.1:${port}`);
    c.on('error', () => {});
    cleanups.push(() => new Promise<void>((r) => c.close(() => r())));
    await new Promise<void>((r) => c.on('remoteSettings', () => r()));
    const got = await Promise.all(
      Array.from(
        { length: 64 },
        (_, k) =>
          new Promise<http2.IncomingHttpHeaders>((resolve) => {
            const rq = c.request({ ':path': `/${k}` }, { endStream: true });
            rq.on('response', (h) => resolve(h));
            rq.on('error', () => resolve({}));
            rq.resume();
          }),
      ),
    );
    expect(errors).toEqual([]);
    got.forEach((h, k) => {
      const v = 'v'.repeat((k * 5) % 37) + k;
      if (k % 3 === 1 && k % 2) {
        expect(h[':status']).toBe(200 + (k % 4));
        expect(h['x-echo']).toBeUndefined();
      } else {
        expect(h[':status']).toBe(200);
        expect(h['x-echo']).toBe(v);
      }
      expect(h['x-drop']).toBeUndefined();
    });
  });
  it('respondSpans() sends fields straight from an HTTP/1 head, names lower-cased; bad spans or values throw', async () => {
    const errors: string[] = [];
    const port = serve((s) => {
      // The head and, right after it, the whole body, as one read brings them.
      const head = Buffer.from('HTTP/1.1 200 OK\r\nX-Mixed-Case: Keep Me\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-Bad: a\x00b\r\nX-CR: a\rb\r\n\r\nwhole body', 'latin1');
      const at = (needle: string, from = 0) => head.indexOf(needle, from, 'latin1');
      const span = (name: string, from = 0): number[] => {
        const ns = at(name, from);
        const vs = ns + name.length + 2;
        return [ns, ns + name.length, vs, at('\r\n', vs)];
      };
      const w = new FlatWriter();
      w.pair(':status', '203');
      w.pair('x-added', 'yes');
      const h = s.session.h;
      for (const [bad, label] of [
        [span('X-Bad'), 'a NUL in a value'],
        [span('X-CR'), 'a CR in a value'],
        [[0, 4, 6, head.length + 1], 'past the head'],
        [[5, 4, 6, 7], 'a name ending before it starts'],
      ] as [number[], string][]) {
        try {
          h.respondSpans(s.id, w.buf, w.len, w.pairs, head, Int32Array.from(bad), 1, true);
          errors.push(`${label}: accepted`);
        } catch (err) {
          errors.push(`${label}: ${(err as Error).name}`);
        }
      }
      const good = Int32Array.from([...span('X-Mixed-Case'), ...span('Set-Cookie'), ...span('Set-Cookie', at('b=2') - 12)]);
      // A body outside the head, or with END_STREAM on the head, is refused.
      for (const [at, len, end] of [
        [head.length - 4, 5, false],
        [head.length + 1, 0, false],
        [-1, 2, false],
        [head.length - 10, 10, true],
      ] as [number, number, boolean][]) {
        try {
          h.respondSpans(s.id, w.buf, w.len, w.pairs, head, good, 3, end, at, len);
          errors.push(`body ${at}+${len}: accepted`);
        } catch (err) {
          errors.push(`body: ${(err as Error).name}`);
        }
      }
      expect(h.respondSpans(s.id, w.buf, w.len, w.pairs, head, good, 3, false, head.length - 10, 10)).toBe(true);
    });
    const r = await ask(port, { ':path': '/spans' });
    expect(errors).toEqual([
      'a NUL in a value: TypeError',
      'a CR in a value: TypeError',
      'past the head: RangeError',
      'a name ending before it starts: RangeError',
      'body: RangeError',
      'body: RangeError',
      'body: RangeError',
      'body: TypeError',
    ]);
    expect(r.headers[':status']).toBe(203);
    expect(r.headers['x-added']).toBe('yes');
    expect(r.headers['x-mixed-case']).toBe('Keep Me');
    expect(r.headers['set-cookie']).toEqual(['a=1', 'b=2']);
    expect(r.body).toBe('whole body');
  });
  it('respondSpans() reads the tables registered with setTable where it is given null; a grown writer or span list is registered again', async () => {
    const errors: string[] = [];
    const port = serve((s) => {
      const h = s.session.h;
      const head = Buffer.from('HTTP/1.1 200 OK\r\nX-A: a\r\n\r\ntables', 'latin1');
      setTable(TableSlot.ARENA, head);
      // A table of the wrong type for its argument is refused as a wrong array would be.
      setTable(TableSlot.FLAT, new Int32Array(16));
      try {
        h.respondSpans(s.id, null, 0, 1, null, null, 0, true);
      } catch (err) {
        errors.push((err as Error).message);
      }
      // Both start too small for what they are given: the grown arrays must be the ones read.
      const w = new FlatWriter(8, TableSlot.FLAT);
      w.pair(':status', '202');
      w.pair('x-added', 'from the flat table');
      const spans = new HeadSpans(TableSlot.SPANS);
      for (let k = 0; k < 40; k++) spans.push(17, 20, 22, 23);
      expect(tableArg(TableSlot.FLAT, w.buf)).toBeNull();
      expect(tableArg(TableSlot.SPANS, spans.buf)).toBeNull();
      expect(tableArg(TableSlot.ARENA, head)).toBeNull();
      // The body comes from the registered arena too.
      expect(h.respondSpans(s.id, null, w.len, w.pairs, null, null, spans.n, false, head.length - 6, 6)).toBe(true);
    });
    for (const [slot, table, want] of [
      [9, new Int32Array(1), /setTable: slot must be an integer in \[0, 8\]/],
      [1.5, new Int32Array(1), /setTable: slot must be an integer/],
      [0, [1, 2], /setTable: table must be a typed array/],
    ] as [number, unknown, RegExp][]) {
      expect(() => b.setTable!(slot, table as Int32Array)).toThrow(want);
    }
    const r = await ask(port, { ':path': '/tables' });
    expect(errors).toEqual(['H2Session.respondSpans: flat and head must be Uint8Arrays and spans an Int32Array (or null for the registered tables)']);
    expect(r.headers[':status']).toBe(202);
    expect(r.headers['x-added']).toBe('from the flat table');
    expect(r.headers['x-a']).toBe(Array(40).fill('a').join(', '));
    expect(r.body).toBe('tables');
  });
  it('respondSpansTables() sends what respondSpans() sends from the same registered tables; a missing or mistyped table is refused', async () => {
    const errors: string[] = [];
    const port = serve((s, flat) => {
      const h = s.session.h;
      const head = Buffer.from('HTTP/1.1 200 OK\r\nX-A: a\r\nX-B: bb\r\n\r\nbody!', 'latin1');
      setTable(TableSlot.ARENA, head);
      const w = new FlatWriter(64, TableSlot.FLAT);
      w.pair(':status', '201');
      w.pair('x-added', 'yes');
      const spans = new HeadSpans(TableSlot.SPANS);
      spans.push(17, 20, 22, 23);
      spans.push(25, 28, 30, 32);
      if (flat.includes('/generic')) {
        expect(h.respondSpans(s.id, null, w.len, w.pairs, null, null, spans.n, false, head.length - 5, 5)).toBe(true);
        return;
      }
      if (flat.includes('/nobody')) {
        expect(h.respondSpansTables(s.id, w.len, w.pairs, spans.n, true)).toBe(true);
        return;
      }
      expect(h.respondSpansTables(s.id, w.len, w.pairs, spans.n, false, head.length - 5, 5)).toBe(true);
      // Answered already: false, as respondSpans() says.
      expect(h.respondSpansTables(s.id, w.len, w.pairs, spans.n, true)).toBe(false);
      setTable(TableSlot.SPANS, new Uint8Array(16));
      try {
        h.respondSpansTables(s.id, w.len, w.pairs, spans.n, true);
      } catch (err) {
        errors.push((err as Error).message);
      }
    });
    const generic = await ask(port, { ':path': '/generic' });
    const tables = await ask(port, { ':path': '/tables' });
    const nobody = await ask(port, { ':path': '/nobody' });
    for (const r of [generic, tables]) {
      expect(r.headers[':status']).toBe(201);
      expect(r.headers['x-added']).toBe('yes');
      expect(r.headers['x-a']).toBe('a');
      expect(r.headers['x-b']).toBe('bb');
      expect(r.body).toBe('body!');
    }
    expect(nobody.headers['x-b']).toBe('bb');
    expect(nobody.body).toBe('');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/respondSpansTables: needs .* registered with their types/);
  });
  it('an empty whole body still ends the stream, on respondSpans() and respond()', async () => {
    const port = serve((s, flat) => {
      const w = new FlatWriter();
      w.pair(':status', '200');
      const head = Buffer.from('HTTP/1.1 200 OK\r\nX-A: a\r\n\r\n', 'latin1');
      if (flat.includes('/spans')) s.respondSpans(w, head, { buf: Int32Array.from([17, 20, 22, 23]), n: 1 }, head.length, 0, false);
      else s.respondFlatWhole(w, Buffer.alloc(0));
    });
    const [a, b] = await Promise.all([ask(port, { ':path': '/spans' }), ask(port, { ':path': '/flat' })]);
    expect(a).toMatchObject({ body: '', rst: 0 });
    expect(a.headers['x-a']).toBe('a');
    expect(b).toMatchObject({ body: '', rst: 0 });
    expect(b.headers[':status']).toBe(200);
  });

  // The heads of the writeH1ResponseSpans parity test (test/unit/http2/h2_flat_headers.test.ts):
  // hop-by-hop fields, repeats, upstream server, date and x-request-id, odd values.
  const H1_HEADS: string[][] = [
    [],
    ['content-type: text/plain', 'Date: Thu, 01 Jan 2026 00:00:00 GMT'],
    ['Set-Cookie: a=1; Path=/', 'set-cookie: b=2', 'SET-COOKIE: c=3; HttpOnly'],
    ['X-Dup: 1', 'x-other: o', 'x-dup: 2', 'X-DUP: 3'],
    ['Connection: keep-alive, x-hop', 'Keep-Alive: timeout=5', 'Proxy-Connection: close', 'Upgrade: h2c', 'TE: trailers', 'Host: leaked', 'HTTP2-Settings: AAAA', 'Transfer-Encoding: chunked'],
    ['Server: upstream-srv'],
    ['server: a', 'Server: b', 'X-Request-Id: from-upstream', 'DATE: Thu, 01 Jan 2026 00:00:01 GMT'],
    ['X-Request-Id: from-upstream'],
    ['X-Long: ' + 'v'.repeat(300), 'X-Empty:', 'x-tab: a\tb', 'X-Latin1: caf\xe9'],
  ];
  const MODES = ['OVERWRITE', 'APPEND_IF_ABSENT', 'PASS_THROUGH'];
  it('respondH1Head() sends what writeH1ResponseSpans() and respondSpans() send, for every server mode, with and without a request id', async () => {
    const cases: { text: string; fields: string[]; mode: string; rid: string | null; body: string }[] = [];
    for (const fields of H1_HEADS)
      for (const mode of MODES)
        for (const rid of [null, 'rid-1']) {
          const body = cases.length % 2 === 0 ? '' : `body ${cases.length}`;
          const framing = fields.some((f) => f.startsWith('Transfer-Encoding')) ? '' : `Content-Length: ${body.length}\r\n`;
          cases.push({ text: `HTTP/1.1 200 OK\r\n${fields.map((f) => `${f}\r\n`).join('')}${framing}\r\n${body}`, fields, mode, rid, body });
        }
    const w = new FlatWriter(64, TableSlot.FLAT);
    const spans = new HeadSpans(TableSlot.SPANS);
    const notInTables: number[] = [];
    const port = serve((s, flat) => {
      const [, which, k] = /:path\0\/(native|js)\/(\d+)/.exec(flat)!;
      const c = cases[Number(k)]!;
      const arena = Buffer.from(c.text, 'latin1');
      setTable(TableSlot.ARENA, arena);
      const head = parseResponseHead(arena, 0, arena.length) as MessageHead;
      const present = headFlagsInTables(head);
      if (present < 0) notInTables.push(Number(k));
      const at = head.start + head.headBytes;
      const len = c.body === '' ? -1 : arena.length - at;
      w.reset();
      if (which === 'native') s.respondH1Head(w, writeH1ResponseExtras(w, 200, present, c.mode, 'strait-test', c.rid), at, len, len < 0);
      else {
        writeH1ResponseSpans(w, spans, 200, head, c.mode, 'strait-test', c.rid);
        s.respondSpans(w, arena, spans, at, len, len < 0);
      }
    });
    for (let k = 0; k < cases.length; k++) {
      const [n, j] = await Promise.all([ask(port, { ':path': `/native/${k}` }), ask(port, { ':path': `/js/${k}` })]);
      const own = !/\r\ndate:/i.test(cases[k]!.text);
      // Each path reads the clock for the date it adds; an upstream's date goes through as it is.
      for (const r of [n, j]) {
        expect(typeof r.headers.date).toBe('string');
        if (own) r.headers.date = 'D';
      }
      expect({ k, ...n.headers }).toEqual({ k, ...j.headers });
      expect(n.body).toBe(cases[k]!.body);
      expect(j.body).toBe(cases[k]!.body);
    }
    expect(notInTables).toEqual([]);
    // Spot checks of what both sent, so that a shared mistake shows too.
    const pick = async (fields: number, mode: string, rid: string | null) => {
      const k = cases.findIndex((c) => c.fields === H1_HEADS[fields] && c.mode === mode && c.rid === rid);
      return (await ask(port, { ':path': `/native/${k}` })).headers;
    };
    const hop = await pick(4, 'PASS_THROUGH', null);
    for (const n of ['connection', 'keep-alive', 'proxy-connection', 'upgrade', 'te', 'host', 'http2-settings', 'transfer-encoding', 'server', 'x-request-id']) expect(hop[n]).toBeUndefined();
    expect((await pick(5, 'OVERWRITE', 'rid-1')).server).toBe('strait-test');
    expect((await pick(5, 'APPEND_IF_ABSENT', 'rid-1')).server).toBe('upstream-srv');
    expect((await pick(5, 'PASS_THROUGH', 'rid-1'))['x-request-id']).toBe('rid-1');
    const kept = await pick(6, 'APPEND_IF_ABSENT', 'rid-1');
    expect(kept.server).toBe('a, b');
    expect(kept['x-request-id']).toBe('from-upstream');
    expect(kept.date).toBe('Thu, 01 Jan 2026 00:00:01 GMT');
    expect((await pick(2, 'OVERWRITE', null))['set-cookie']).toEqual(['a=1; Path=/', 'b=2', 'c=3; HttpOnly']);
  });
  it('the parser flags date, server, x-request-id and http2-settings in any case; headFlagsInTables() is -1 once another head was parsed, for a head outside the arena and for a 204', () => {
    const arena = Buffer.from('HTTP/1.1 200 OK\r\nX-A: a\r\nDATE: d\r\nsErVeR: s\r\nX-Request-ID: r\r\nContent-Length: 0\r\n\r\nHTTP/1.1 204 No Content\r\nServer: s\r\n\r\nHTTP/1.1 200 OK\r\nhttp2-settings: x\r\nX-Dates: d\r\nservers: s\r\n\r\n', 'latin1');
    setTable(TableSlot.ARENA, arena);
    const first = parseResponseHead(arena, 0, arena.length) as MessageHead;
    const f = headFlagsInTables(first);
    expect(f & (ResponseHas.DATE | ResponseHas.SERVER | ResponseHas.REQUEST_ID | ResponseHas.HTTP2_SETTINGS)).toBe(ResponseHas.DATE | ResponseHas.SERVER | ResponseHas.REQUEST_ID);
    const second = parseResponseHead(arena, first.headBytes, arena.length) as MessageHead;
    expect(second.status).toBe(204);
    expect(headFlagsInTables(first)).toBe(-1);
    expect(headFlagsInTables(second)).toBe(-1);
    const third = parseResponseHead(arena, first.headBytes + second.headBytes, arena.length) as MessageHead;
    expect(headFlagsInTables(third) & (ResponseHas.DATE | ResponseHas.SERVER | ResponseHas.REQUEST_ID | ResponseHas.HTTP2_SETTINGS)).toBe(ResponseHas.HTTP2_SETTINGS);
    const copy = Buffer.from(arena);
    const elsewhere = parseResponseHead(copy, 0, copy.length) as MessageHead;
    expect(elsewhere.status).toBe(200);
    expect(headFlagsInTables(elsewhere)).toBe(-1);
    expect(headFlagsInTables(parseResponseHead(arena, 0, arena.length) as MessageHead)).toBe(f);
  });
  it('respondH1Head() refuses a pair count the flat list does not hold, fields past its tables and a missing table, in both forms (numbers as arguments and in CALL_ARGS)', async () => {
    const errors: Record<string, string[]> = { argv: [], args: [] };
    const answers: Record<string, boolean[]> = { argv: [], args: [] };
    const calls = b.H2Session.calls as unknown as { respondH1Head: (...a: unknown[]) => boolean; respondH1HeadArgs: () => boolean };
    const headOut = registeredTable(TableSlot.HEAD_OUT) as Int32Array;
    const port = serve((s, flat) => {
      const form = flat.includes('/checks/args') ? 'args' : 'argv';
      const h = s.session.h;
      const sid = h.sid();
      // The argument form through the shared calls, the CALL_ARGS one through the session (which prefers it).
      const respond = (len: number, pairs: number, end: boolean): boolean => (form === 'argv' ? calls.respondH1Head(sid, s.id, len, pairs, false, end) : h.respondH1Head(s.id, len, pairs, false, end));
      const arena = Buffer.from('HTTP/1.1 200 OK\r\nX-A: a\r\nContent-Length: 0\r\n\r\n', 'latin1');
      setTable(TableSlot.ARENA, arena);
      expect(headFlagsInTables(parseResponseHead(arena, 0, arena.length) as MessageHead)).toBeGreaterThanOrEqual(0);
      const w = new FlatWriter(64, TableSlot.FLAT);
      w.pair(':status', '200');
      const tryIt = (f: () => unknown): void => {
        try {
          f();
        } catch (err) {
          errors[form]!.push((err as Error).message);
        }
      };
      tryIt(() => respond(w.len, 2, true));
      // The arena swapped for a shorter one: the parsed field now lies outside it.
      setTable(TableSlot.ARENA, Buffer.alloc(8));
      tryIt(() => respond(w.len, 1, true));
      setTable(TableSlot.ARENA, arena);
      // A head-out table too short for the count it holds, then one too short for any head.
      const short = new Int32Array(17);
      short[11] = 5;
      setTable(TableSlot.HEAD_OUT, short);
      tryIt(() => respond(w.len, 1, true));
      setTable(TableSlot.HEAD_OUT, new Int32Array(8));
      tryIt(() => respond(w.len, 1, true));
      setTable(TableSlot.HEAD_OUT, new Int32Array(16));
      if (form === 'args') {
        // What only the memory form can be given: numbers that are no integers in range, a whole
        // body with endStream, a session number nobody has.
        for (const over of [{ 2: 1.5 }, { 2: 1e6 }, { 1: 0 }, { 6: 2, 7: arena.length }, { 6: 0, 7: 0, 5: 1 }, { 0: 987654321 }] as Record<number, number>[]) {
          CALL_ARGS.set([sid, s.id, w.len, 1, 0, 0, -1, 0]);
          for (const [k, v] of Object.entries(over)) CALL_ARGS[Number(k)] = v;
          tryIt(() => calls.respondH1HeadArgs());
        }
      }
      // No fields at all: the flat list alone.
      w.pair('x-only', 'flat');
      answers[form]!.push(respond(w.len, 2, true), respond(w.len, 2, true));
      // The parser's own table back, for the next form's request.
      setTable(TableSlot.HEAD_OUT, headOut);
    });
    for (const form of ['argv', 'args']) {
      const r = await ask(port, { ':path': `/checks/${form}` });
      const fn = form === 'argv' ? 'H2Session.respondH1Head' : 'H2Session.respondH1HeadArgs';
      expect(errors[form]!.slice(0, 4)).toEqual([
        `${fn}: invalid header name or value`,
        `${fn}: a field is outside the arena`,
        `${fn}: the head's field count is past the head-out table`,
        expect.stringMatching(new RegExp(`^${fn}: needs .*registered with their types`)),
      ]);
      expect(answers[form]).toEqual([true, false]);
      expect(r.headers[':status']).toBe(200);
      expect(r.headers['x-only']).toBe('flat');
      expect(r.headers['x-a']).toBeUndefined();
    }
    const range = "H2Session.respondH1HeadArgs: the call-args table's streamId, flatLen, flatPairs, bodyAt or bodyLen is not an integer in range";
    expect(errors.args!.slice(4)).toEqual([range, range, range, range, 'H2Session.respondH1HeadArgs: a whole body goes with endStream false', 'H2Session.respondH1HeadArgs: no server session has the number given']);
    expect(errors.argv).toHaveLength(4);
  });
});
