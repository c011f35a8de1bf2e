// A finished HTTP/2 session leaves its streams, id table and buffers to the next session of the
// thread (native/http2/session.cc, Spares), server and client sessions alike. Nothing of one
// connection may reach another through them: each request below must see exactly its own
// fields and body, whatever the connections before it sent, held or left open.
import http2 from 'node:http2';
import { afterEach, describe, expect, it } from 'vitest';
import { NativeH2ClientConnection, type NativeH2Connection } from '../../src/protocols/http2/native_session.js';
import { b, KiB, nativeH2Server, until } from './helpers.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** The request's x- fields as "name=value" lines, sorted: what the server answers. */
const xFields = (h: Record<string, unknown>): string =>
  Object.keys(h)
    .filter((k) => k.startsWith('x-'))
    .sort()
    .map((k) => `${k}=${String(h[k]).length > 64 ? `<${String(h[k]).length} bytes of ${String(h[k])[0]}>` : h[k]}`)
    .join('\n');

function ask(s: http2.ClientHttp2Session, headers: Record<string, string>): Promise<{ body: Buffer; trailer: string | undefined }> {
  return new Promise((resolve, reject) => {
    const rq = s.request({ ':path': '/', ...headers }, { endStream: true });
    const chunks: Buffer[] = [];
    let trailer: string | undefined;
    rq.on('data', (d: Buffer) => chunks.push(d));
    rq.on('trailers', (t) => (trailer = String(t['x-echo'])));
    rq.on('end', () => resolve({ body: Buffer.concat(chunks), trailer }));
    rq.on('error', reject);
  });
}

describe('native HTTP/2 sessions reuse what finished ones leave', () => {
  it('sequential connections, large and small, server and client sessions: each request sees only its own', async () => {
    // The server answers the x- fields it got as trailers, and x-size bytes of x-fill as the body.
    const srv = nativeH2Server(
      {
        onStream: (s, h) => {
          const size = Number(h['x-size'] ?? 0);
          s.respond({ ':status': '200' }, { waitForTrailers: true });
          s.on('wantTrailers', () => s.sendTrailers({ 'x-echo': encodeURIComponent(xFields(h)) }));
          s.end(Buffer.alloc(size, String(h['x-fill'] ?? '.')));
        },
      },
      { maxHeaderListSize: 64 * KiB },
    );
    cleanups.push(() => srv.close());
    // A plain node:http2 server behind client sessions of the addon, interleaved with the above.
    const upstream = http2.createServer();
    upstream.on('stream', (s, h) => {
      s.respond({ ':status': 200 });
      s.end(xFields(h));
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => upstream.close(() => r())));
    const upPort = (upstream.address() as { port: number }).port;

    for (let i = 0; i < 24; i++) {
      const s = http2.connect(`http://127.0.0.1:${srv.port}`);
      s.on('error', () => {});
      const asks = [0, 1, 2].map((j) => {
        const h: Record<string, string> = { 'x-conn': String(i), 'x-n': String(j), 'x-fill': String.fromCharCode(97 + ((i + j) % 26)) };
        // Every fourth connection: a header list and a body past what a kept stream keeps (16 KiB).
        if (i % 4 === 0 && j === 0) h['x-big'] = 'B'.repeat(20 * KiB);
        h['x-size'] = String(i % 4 === 0 ? 40 * KiB + j : 10 + j);
        return ask(s, h).then((r) => ({ r, h }));
      });
      for (const { r, h } of await Promise.all(asks)) {
        const { 'x-size': size, 'x-fill': fill } = h;
        expect(r.body.length).toBe(Number(size));
        expect(r.body.equals(Buffer.alloc(Number(size), fill!))).toBe(true);
        expect(decodeURIComponent(r.trailer!)).toBe(xFields(h));
      }
      await new Promise<void>((r) => s.close(() => r()));
      s.destroy();
      if (i % 3 === 1) {
        // A connection destroyed mid-exchange: its request still open, its response mostly unsent
        // (the client's window is 1 KiB and it reads nothing), so the stream goes back with
        // bytes queued that no later stream may send (few enough that the kept stream keeps the
        // buffer that held them).
        const held = http2.connect(`http://127.0.0.1:${srv.port}`, { settings: { initialWindowSize: 1024 } });
        held.on('error', () => {});
        const rq = held.request({ ':path': '/', 'x-conn': String(i), 'x-size': '3000', 'x-fill': 'Z' }, { endStream: false });
        rq.on('error', () => {});
        rq.pause();
        const c = srv.conns.length;
        await until(() => srv.conns.length === c + 1 && srv.conns[c]!.openStreams === 1);
        expect(srv.conns[c]!.openStreams).toBe(1);
        srv.conns[c]!.destroy();
        held.destroy();
      }

      // A client session between two server sessions takes and leaves the same spares.
      const fd = await new Promise<number>((resolve, reject) => b.connect('127.0.0.1', upPort, 5000, (st: number, f: number) => (st === 0 ? resolve(f) : reject(new Error(`connect ${st}`)))));
      const conn = new NativeH2ClientConnection(fd, {}, { onSettings() {}, onGoaway() {}, onEnd() {} });
      const fields = { 'x-client': String(i), ...(i % 4 === 2 ? { 'x-big': 'C'.repeat(20 * KiB) } : {}) };
      const body = await new Promise<string>((resolve, reject) => {
        let got = '';
        const id = conn.request({ ':method': 'GET', ':path': '/', ':scheme': 'http', ':authority': 'up', ...fields }, true, {
          h2Headers() {},
          h2Data: (d: Buffer) => void (got += d.toString('latin1')),
          h2Trailers() {},
          h2End() {},
          h2Close: (code: number) => (code === 0 ? resolve(got) : reject(new Error(`stream closed with ${code}`))),
        } as never);
        expect(id).toBeGreaterThan(0);
      });
      expect(body).toBe(xFields(fields));
      conn.destroy();
    }
  }, 30_000);

  it("every session's batches share one events array: a session ended from another's handler leaves that handler's batch intact", async () => {
    let victim: NativeH2Connection | null = null;
    let victimClosed = 0;
    const srv = nativeH2Server({
      onStream: (s, h, _end, conn) => {
        if (String(h[':path']).startsWith('/victim')) {
          victim = conn;
          s.on('close', () => victimClosed++);
          return; // left open: its end comes with the session's
        }
        // The first of this batch's requests ends the other session: its last batch is made now,
        // inside this handler, while this session's batch is still being read from the shared
        // array (the addon gives it an array of its own), and the rest of this batch must
        // still reach its streams.
        if (victim !== null && conn !== victim) {
          const v = victim;
          victim = null;
          v.destroy();
        }
        s.respond({ ':status': '200', 'x-path': String(h[':path']) }, { endStream: true });
      },
    });
    cleanups.push(() => srv.close());
    const other = http2.connect(`http://127.0.0.1:${srv.port}`);
    other.on('error', () => {});
    cleanups.push(() => other.destroy());
    // Open streams, each of which must hear of the end.
    for (let i = 0; i < 8; i++) other.request({ ':path': `/victim${i}` }, { endStream: false }).on('error', () => {});
    await until(() => victimClosed === 0 && victim !== null && (victim as NativeH2Connection).openStreams === 8);
    expect((victim as NativeH2Connection | null)?.openStreams).toBe(8);
    expect(victim).not.toBeNull();
    const s = http2.connect(`http://127.0.0.1:${srv.port}`);
    s.on('error', () => {});
    cleanups.push(() => s.destroy());
    await new Promise<void>((r) => s.once('remoteSettings', () => r()));
    // Requests made in one tick go out in one write: one read, one batch of their events.
    const paths = Array.from({ length: 8 }, (_, i) => `/p${i}`);
    const got = await Promise.all(
      paths.map(
        (p) =>
          new Promise<string>((resolve, reject) => {
            const rq = s.request({ ':path': p }, { endStream: true });
            rq.on('response', (h) => resolve(String(h['x-path'])));
            rq.on('error', reject);
            rq.resume();
          }),
      ),
    );
    expect(got).toEqual(paths);
    await until(() => victimClosed === 8);
    expect(victimClosed).toBe(8);
  });
});
