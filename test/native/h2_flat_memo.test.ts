// An HTTP/2 session keeps the last list it scanned at a few places whose lists repeat (trailers,
// the pairs the proxy adds): the same bytes again take the kept fields, unscanned. Driven by the
// real node:http2 client over one connection: each response's trailers must be the ones it was
// given, names lower-cased and never-indexed ones marked, whatever list came before.
import http2 from 'node:http2';
import { afterEach, describe, expect, it } from 'vitest';
import { b, nativeH2Server } from './helpers.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Trailer lists by name: [list, pairs, neverIndexed]. */
const LISTS: Record<string, [string, number, string | undefined]> = {
  ok: ['grpc-status\x000\x00grpc-message\x00ok', 2, undefined],
  // The same length as `ok`, another value.
  no: ['grpc-status\x001\x00grpc-message\x00ok', 2, undefined],
  // Upper-case names: sent lower-cased, from the kept list too.
  up: ['Grpc-Status\x000\x00X-Up-Name\x00v', 2, undefined],
  // `ok` with a never-indexed name: the mark is the call's, not the kept list's.
  secret: ['grpc-status\x000\x00grpc-message\x00ok', 2, 'grpc-message'],
};

describe('request heads that repeat the last one', () => {
  it('hands on each request head as received when some repeat the last one and some differ in a byte', async () => {
    // A request head with the bytes of the last one comes as KEPT_LIST and the connection takes
    // the string it kept (PushReceived in session.cc). The tags differ in a byte but not in
    // length, so only a compare of the bytes tells the lists apart.
    const tag = (i: number): string => (i < 3 || i >= 20 ? 'same-00' : `diff-${String(i).padStart(2, '0')}`);
    const srv = nativeH2Server({
      onStreamFlat: (s, flat) => {
        const m = /\0x-tag\0([^\0]*)/.exec(flat);
        s.respond({ ':status': '200', 'x-got': m ? m[1]! : 'none' }, { endStream: true });
      },
    });
    cleanups.push(() => srv.close());
    const c = http2.connect(`http://127.0.0.1:${srv.port}`);
    c.on('error', () => {});
    cleanups.push(() => new Promise<void>((r) => (c.destroyed || c.closed ? r() : c.close(() => r()))));
    const ask = (i: number): Promise<unknown> =>
      new Promise((resolve, reject) => {
        const rq = c.request({ ':path': '/same', 'x-tag': tag(i) });
        rq.on('response', (h) => resolve(h['x-got']));
        rq.on('error', reject);
        rq.resume();
      });
    const want = Array.from({ length: 30 }, (_, i) => tag(i));
    // One at a time: each head is compared with the one before it.
    const one = [];
    for (let i = 0; i < 30; i++) one.push(await ask(i));
    expect(one).toEqual(want);
    // 30 at once: many heads in one batch of events.
    expect(await Promise.all(want.map((_, i) => ask(i)))).toEqual(want);
  });
});

describe('HTTP/2 lists kept per call site', () => {
  it('trailers repeated, changed, lower-cased and never indexed each reach the client as given', async () => {
    const srv = nativeH2Server({
      onStreamFlat: (s, flat) => {
        const [list, pairs, never] = LISTS[/:path\0\/(\w+)/.exec(flat)![1]!]!;
        s.respond({ ':status': '200' }, { waitForTrailers: true });
        s.on('wantTrailers', () => s.sendTrailersFlat(list, pairs, never));
        s.end(Buffer.from('x'));
      },
    });
    cleanups.push(() => srv.close());
    const c = http2.connect(`http://127.0.0.1:${srv.port}`);
    c.on('error', () => {});
    cleanups.push(() => new Promise<void>((r) => (c.destroyed || c.closed ? r() : c.close(() => r()))));
    const ask = (path: string): Promise<{ trailers: Record<string, unknown>; sensitive: unknown[] }> =>
      new Promise((resolve, reject) => {
        const rq = c.request({ ':path': path });
        rq.on('trailers', (t) => {
          const sensitive = (t as unknown as Record<symbol, unknown[]>)[http2.sensitiveHeaders] ?? [];
          resolve({ trailers: Object.fromEntries(Object.entries(t)), sensitive });
        });
        rq.on('error', reject);
        rq.resume();
      });
    const steps = ['ok', 'ok', 'up', 'up', 'up', 'no', 'ok', 'secret', 'ok'];
    const before = b.stats().h2ListsReused;
    const got = [];
    for (const k of steps) got.push(await ask(`/${k}`));
    // The second ok, the second and third up, secret (the bytes of the ok before it), the last ok.
    expect(b.stats().h2ListsReused - before).toBe(5);
    const ok = { 'grpc-status': '0', 'grpc-message': 'ok' };
    const up = { 'grpc-status': '0', 'x-up-name': 'v' };
    expect(got.map((g) => g.trailers)).toEqual([ok, ok, up, up, up, { 'grpc-status': '1', 'grpc-message': 'ok' }, ok, ok, ok]);
    expect(got.map((g) => g.sensitive)).toEqual([[], [], [], [], [], [], [], ['grpc-message'], []]);
  });
});
