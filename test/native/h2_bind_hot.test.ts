// A session's per-request calls are bound to it after BIND_HOT_AFTER streams (H2Session.bindHot):
// the bound functions must behave as the prototype's methods did, on the server and the client
// side, and a function taken off the session must keep it alive rather than outlive it.
import http2 from 'node:http2';
import { afterEach, describe, expect, it } from 'vitest';
import { BIND_HOT_AFTER, NativeH2ClientConnection } from '../../src/protocols/http2/native_session.js';
import { b, nativeH2Server } from './helpers.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const BOUND = ['respond', 'respondRuns', 'respondSpans', 'request', 'requestRuns', 'data', 'trailers', 'rst', 'consume'];

function own(h: object): string[] {
  return BOUND.filter((k) => Object.hasOwn(h, k));
}

describe('H2Session.bindHot', () => {
  it(`server: streams after the ${BIND_HOT_AFTER}th go through bound calls, with bodies, trailers and resets as before`, async () => {
    const srv = nativeH2Server({
      onStream(s, h) {
        const n = Number(String(h[':path']).slice(1));
        if (n % 10 === 9) {
          s.close(0x8); // CANCEL
          return;
        }
        s.respond({ ':status': 200, 'x-n': String(n) }, { waitForTrailers: true });
        s.on('wantTrailers', () => s.sendTrailers({ 'x-t': `t${n}` }));
        s.end(Buffer.from(`body ${n}`));
      },
    });
    cleanups.push(() => srv.close());
    const c = http2.connect(`http://127.0.0.1:${srv.port}`);
    c.on('error', () => {});
    cleanups.push(() => new Promise<void>((r) => (c.closed ? r() : c.close(() => r()))));
    const ask = (n: number) =>
      new Promise<{ n: string; body: string; t: string; rst: number }>((resolve) => {
        const rq = c.request({ ':path': `/${n}` });
        let head = '';
        let t = '';
        let body = '';
        rq.on('response', (h) => (head = String(h['x-n'])));
        rq.on('trailers', (h) => (t = String(h['x-t'])));
        rq.setEncoding('latin1');
        rq.on('data', (d: string) => (body += d));
        rq.on('error', () => {});
        rq.on('close', () => resolve({ n: head, body, t, rst: rq.rstCode ?? 0 }));
      });
    const total = BIND_HOT_AFTER * 2 + 7;
    const before: string[][] = [];
    for (let n = 0; n < total; n++) {
      const r = await ask(n);
      before.push(own((srv.conns[0] as unknown as { h: object }).h));
      if (n % 10 === 9) expect(r.rst).toBe(0x8);
      else expect(r).toEqual({ n: String(n), body: `body ${n}`, t: `t${n}`, rst: 0 });
    }
    // Unbound until the threshold, bound from then on.
    expect(before[BIND_HOT_AFTER - 2]).toEqual([]);
    expect(before[BIND_HOT_AFTER - 1]).toEqual(BOUND);
    expect(before[total - 1]).toEqual(BOUND);
  });

  it('client: requests past the threshold go out and come back whole; bindHot twice is harmless; a bound function taken off keeps working', async () => {
    const server = http2.createServer();
    server.on('stream', (s, h) => {
      const chunks: Buffer[] = [];
      s.on('data', (d: Buffer) => chunks.push(d));
      s.on('end', () => {
        s.respond({ ':status': 200 }, { waitForTrailers: true });
        s.on('wantTrailers', () => s.sendTrailers({ 'x-path': String(h[':path']) }));
        s.end(Buffer.concat(chunks));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const port = (server.address() as { port: number }).port;
    const fd = await new Promise<number>((resolve, reject) => {
      b.connect('127.0.0.1', port, 5000, (status: number, f: number) => (status === 0 ? resolve(f) : reject(new Error(`connect ${status}`))));
    });
    const conn: NativeH2ClientConnection = new NativeH2ClientConnection(fd, {}, { onSettings() {}, onGoaway() {}, onEnd() {} });
    cleanups.push(() => conn.destroy());
    const one = (n: number) =>
      new Promise<{ body: string; path: string }>((resolve) => {
        let body = '';
        let path = '';
        const id = conn.request({ ':method': 'POST', ':path': `/c${n}`, ':scheme': 'http', ':authority': 'x' }, false, {
          h2Headers() {},
          h2Data(d: Buffer) {
            body += d.toString('latin1');
          },
          h2Trailers(t: Record<string, string>) {
            path = t['x-path']!;
          },
          h2End() {},
          h2Close() {
            resolve({ body, path });
          },
        } as never);
        expect(id).toBeGreaterThan(0);
        const h = (conn as unknown as { h: { data: (id: number, c: Buffer | null, end: boolean) => boolean } }).h;
        h.data(id, Buffer.from(`req ${n}`), true);
      });
    for (let n = 0; n < BIND_HOT_AFTER + 5; n++) expect(await one(n)).toEqual({ body: `req ${n}`, path: `/c${n}` });
    const h = (conn as unknown as { h: { bindHot(): void; data: (id: number, c: Buffer | null, end: boolean) => boolean } }).h;
    expect(own(h)).toEqual(BOUND);
    const data = h.data;
    h.bindHot();
    expect(h.data).toBe(data);
    expect((data as unknown as { owner: unknown }).owner).toBe(h);
    expect(await one(1000)).toEqual({ body: 'req 1000', path: '/c1000' });
    // Bad arguments throw the same errors bound as through the prototype (the bound functions
    // read their arguments without node-addon-api's CallbackInfo), and the session lives on.
    type Loose = (...a: unknown[]) => unknown;
    const c13 = conn.request({ ':method': 'POST', ':path': '/c13', ':scheme': 'http', ':authority': 'x' }, false, {
      h2Headers() {},
      h2Data() {},
      h2Trailers() {},
      h2End() {},
      h2Close() {},
    } as never);
    const proto = Object.getPrototypeOf(h) as Record<string, Loose>;
    const bound = h as unknown as Record<string, Loose>;
    for (const call of [(f: Record<string, Loose>) => f.data!.call(h, c13, 'text', false), (f: Record<string, Loose>) => f.rst!.call(h, 'one', 0)]) {
      let viaProto: unknown;
      let viaBound: unknown;
      try {
        call(proto);
      } catch (e) {
        viaProto = e;
      }
      try {
        call(bound);
      } catch (e) {
        viaBound = e;
      }
      expect(viaBound).toBeInstanceOf(TypeError);
      expect(String(viaBound)).toMatch(/^TypeError: H2Session\.(data: chunk must be a Buffer or null|rst: streamId must be a number)$/);
      expect(String(viaBound)).toBe(String(viaProto));
    }
    // More arguments than are read: ignored, as before.
    expect(bound.data!(c13, Buffer.from('x'), true, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)).toBe(true);
    expect(await one(1001)).toEqual({ body: 'req 1001', path: '/c1001' });
  });
});
