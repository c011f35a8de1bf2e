// A session's per-request calls go through H2Session.calls, functions shared by every session
// that take the session's number first (NumberedH2Session): they must behave as the prototype's
// methods do, on the server and the client side, and a number must name its own session only.
import http2 from 'node:http2';
import { afterEach, describe, expect, it } from 'vitest';
import { NativeH2ClientConnection, NumberedH2Session } from '../../src/protocols/http2/native_session.js';
import { b, nativeH2Server } from './helpers.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const STREAMS = 71;

describe('H2Session.calls', () => {
  it('server: streams get bodies, trailers and resets through the numbered calls', async () => {
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
    for (let n = 0; n < STREAMS; n++) {
      const r = await ask(n);
      if (n % 10 === 9) expect(r.rst).toBe(0x8);
      else expect(r).toEqual({ n: String(n), body: `body ${n}`, t: `t${n}`, rst: 0 });
    }
    expect((srv.conns[0] as unknown as { h: object }).h).toBeInstanceOf(NumberedH2Session);
  });

  it('client: requests go out and come back whole; bad arguments throw as through the prototype; a number names its own session only', async () => {
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
    for (let n = 0; n < STREAMS; n++) expect(await one(n)).toEqual({ body: `req ${n}`, path: `/c${n}` });
    const h = conn.h as NumberedH2Session;
    expect(h).toBeInstanceOf(NumberedH2Session);
    // Bad arguments throw the same errors numbered as through the prototype (the numbered calls
    // read their arguments without node-addon-api's CallbackInfo), and the session lives on.
    type Loose = (...a: unknown[]) => unknown;
    const c13 = conn.request({ ':method': 'POST', ':path': '/c13', ':scheme': 'http', ':authority': 'x' }, false, {
      h2Headers() {},
      h2Data() {},
      h2Trailers() {},
      h2End() {},
      h2Close() {},
    } as never);
    const proto = h.raw as unknown as Record<string, Loose>;
    const bound = h as unknown as Record<string, Loose>;
    for (const call of [(f: Record<string, Loose>) => f.data!.call(f, c13, 'text', false), (f: Record<string, Loose>) => f.rst!.call(f, 'one', 0)]) {
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
      expect(viaProto).toBeInstanceOf(TypeError);
      // data goes as dataArgs (its numbers through CALL_ARGS) where the addon has it: the same error, named so.
      expect(String(viaBound)).toMatch(/^TypeError: H2Session\.(data(Args)?: chunk must be a Buffer or null|rst: streamId must be a number)$/);
      expect(String(viaBound).replace('dataArgs', 'data')).toBe(String(viaProto));
    }
    // An integer argument out of its range or with a fraction: a RangeError naming it, both ways
    // (the check is inline, its error path out of line).
    for (const bad of [1.5, 0, 2 ** 31]) {
      const msg = `RangeError: H2Session.rst: streamId must be an integer in [1, 2147483647], got ${bad.toFixed(6)}`;
      expect(() => proto.rst!.call(proto, bad, 0)).toThrow(RangeError);
      expect(() => bound.rst!.call(bound, bad, 0)).toThrow(msg.slice('RangeError: '.length));
    }
    // More arguments than are read: ignored, as before.
    const calls = b.H2Session.calls as Record<string, Loose>;
    expect(calls.data!(h.sid(), c13, Buffer.from('x'), true, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)).toBe(true);
    expect(await one(1001)).toEqual({ body: 'req 1001', path: '/c1001' });
    // Numbers no session has: another generation of this slot, a slot past the table, not a number.
    const sid = h.sid();
    for (const wrong of [sid + 2 ** 20, sid - 2 ** 20, sid + 4096, -1, 2 ** 52 + 3])
      expect(() => calls.consume!(wrong, 1, 0)).toThrow(new RegExp(`^H2Session.calls: no session has the number`));
    expect(() => calls.consume!('1', 1, 0)).toThrow(/the session number must be a number/);
    // Each session has its own number, and a call by one number reaches that session only.
    const other = new NativeH2ClientConnection(
      await new Promise<number>((resolve, reject) => b.connect('127.0.0.1', port, 5000, (status: number, f: number) => (status === 0 ? resolve(f) : reject(new Error(`connect ${status}`))))),
      {},
      { onSettings() {}, onGoaway() {}, onEnd() {} },
    );
    cleanups.push(() => other.destroy());
    expect(other.h.sid()).not.toBe(sid);
    expect(other.h.sid() % 2 ** 20).not.toBe(sid % 2 ** 20);
    const before = other.h.stats().streamsTotal;
    const id = (other as unknown as { h: NumberedH2Session }).h.request(':method\0GET\0:path\0/o\0:scheme\0http\0:authority\0x', 4, true);
    expect(id).toBeGreaterThan(0);
    expect(other.h.stats().streamsTotal).toBe(before + 1);
    expect(await one(1002)).toEqual({ body: 'req 1002', path: '/c1002' });
  });
});
