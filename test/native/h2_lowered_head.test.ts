// respondH1Head() hands nghttp2 an HTTP/1 response head's fields lower-cased in a copy it made for
// that head, and sends a repeat of the head (the parser's HeadMemo gives it the same number) from
// the same copy. Driven by the real node:http2 client over one connection: each answer must carry
// the head it was given, whichever came before it.
import http2 from 'node:http2';
import { afterEach, describe, expect, it } from 'vitest';
import { FlatWriter } from '../../src/protocols/http2/flat_headers.js';
import { writeH1ResponseExtras } from '../../src/filters/network/http_connection_manager/h2_session.js';
import { headFlagsInTables, parseResponseHead } from '../../src/protocols/http1/parser.js';
import type { MessageHead } from '../../src/protocols/http1/types.js';
import { setTable, TableSlot } from '../../src/native.js';
import { b, nativeH2Server } from './helpers.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const HEADS: Record<string, string> = {
  // Two heads of one length that differ in a value only.
  a: 'HTTP/1.1 200 OK\r\nServer: up-srv\r\nX-Mixed-Case: v1\r\nCONTENT-TYPE: text/plain\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n',
  b: 'HTTP/1.1 200 OK\r\nServer: up-srv\r\nX-Mixed-Case: v2\r\nCONTENT-TYPE: text/plain\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n',
  // Another field set: names of other lengths, one that goes never indexed.
  c: 'HTTP/1.1 200 OK\r\nX-Request-ID: up-rid\r\nETag: "e1"\r\nContent-Length: 0\r\n\r\n',
};

describe('respondH1Head() and repeated HTTP/1 heads', () => {
  it('answers each request with the head it was given, names lower-cased, as heads repeat, change and change server mode', async () => {
    const srv = nativeH2Server({
      onStreamFlat: (s, flat) => {
        const [, key, mode] = /:path\0\/(\w)\/(\w+)/.exec(flat)!;
        // Each response in an arena of its own: a repeat is the same bytes, not the same memory.
        const arena = Buffer.from(HEADS[key!]!, 'latin1');
        setTable(TableSlot.ARENA, arena);
        const head = parseResponseHead(arena, 0, arena.length) as MessageHead;
        const present = headFlagsInTables(head);
        const w = new FlatWriter(64, TableSlot.FLAT);
        s.respondH1Head(w, writeH1ResponseExtras(w, 200, present, mode!, 'strait-test', null), 0, -1, true);
      },
    });
    cleanups.push(() => srv.close());
    const c = http2.connect(`http://127.0.0.1:${srv.port}`);
    c.on('error', () => {});
    cleanups.push(() => new Promise<void>((r) => (c.destroyed || c.closed ? r() : c.close(() => r()))));
    const ask = (path: string): Promise<http2.IncomingHttpHeaders> =>
      new Promise((resolve, reject) => {
        const rq = c.request({ ':path': path });
        rq.on('response', (h) => resolve(h));
        rq.on('error', reject);
        rq.resume();
      });
    const steps: [string, string][] = [
      ['a', 'OVERWRITE'],
      ['a', 'OVERWRITE'], // a repeat: from the copy
      ['a', 'PASS_THROUGH'], // the same head, the upstream's server kept this time
      ['a', 'PASS_THROUGH'], // a repeat again
      ['a', 'OVERWRITE'],
      ['b', 'PASS_THROUGH'], // other bytes of the same length
      ['a', 'PASS_THROUGH'],
      ['c', 'APPEND_IF_ABSENT'],
      ['c', 'APPEND_IF_ABSENT'],
      ['a', 'APPEND_IF_ABSENT'],
    ];
    const before = b.stats().h2H1HeadsReused;
    const got: http2.IncomingHttpHeaders[] = [];
    for (const [key, mode] of steps) got.push(await ask(`/${key}/${mode}`));
    // Repeats of the head parsed just before with the server mode of the time before.
    expect(b.stats().h2H1HeadsReused - before).toBe(3);
    const view = (h: http2.IncomingHttpHeaders) => {
      const { ':status': status, date, ...rest } = h;
      expect(typeof date).toBe('string');
      return { status, ...Object.fromEntries(Object.entries(rest)) };
    };
    const a = (server: string, v = 'v1') => ({ status: 200, server, 'x-mixed-case': v, 'content-type': 'text/plain', 'content-length': '0' });
    expect(got.map(view)).toEqual([
      a('strait-test'),
      a('strait-test'),
      a('up-srv'),
      a('up-srv'),
      a('strait-test'),
      a('up-srv', 'v2'),
      a('up-srv'),
      { status: 200, server: 'strait-test', 'x-request-id': 'up-rid', etag: '"e1"', 'content-length': '0' },
      { status: 200, server: 'strait-test', 'x-request-id': 'up-rid', etag: '"e1"', 'content-length': '0' },
      a('up-srv'),
    ]);
  });
});
