// stream_idle_timeout and request_timeout on real HTTP/1.1 (raw sockets) and HTTP/2 (node:http2)
// clients, both engines: a stream on which nothing moves gets Envoy's 408 "stream timeout" (or a
// reset once its response began), a trickling response that keeps moving completes, and a
// request whose body stalls gets 408 "request timeout". Both fields were refused unless 0s.
import http2 from 'node:http2';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hcmListener, simpleRoutes } from '../helpers/http.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

/** /hang never answers; /stall sends a head and half its body; /trickle sends a byte every 100 ms. */
async function slowUpstream() {
  const server = net.createServer((s) => {
    let buf = '';
    s.on('error', () => {});
    s.on('data', (d) => {
      buf += d.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const path = buf.slice(buf.indexOf(' ') + 1, buf.indexOf(' ', buf.indexOf(' ') + 1));
      buf = buf.slice(end + 4);
      if (path === '/stall') s.write('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n12345');
      else if (path === '/trickle') {
        s.write('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n');
        let n = 0;
        const t = setInterval(() => {
          s.write(String(n++));
          if (n === 10) clearInterval(t);
        }, 100);
        s.on('close', () => clearInterval(t));
      } else if (path !== '/hang') s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => {
      server.close();
      return new Promise((r) => setTimeout(r, 10));
    },
  };
}

/** A raw HTTP/1.1 exchange: what came back when the server closed (or after 5 s), and when. */
function raw(port: number, text: string): Promise<{ text: string; ms: number }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    const done = () => resolve({ text: got, ms: Date.now() - t0 });
    const cap = setTimeout(() => s.destroy(), 5000);
    s.on('data', (d) => (got += d.toString('latin1')));
    s.on('close', () => {
      clearTimeout(cap);
      done();
    });
    s.on('error', () => {});
    s.write(text);
  });
}

function h2(port: number, path: string): Promise<{ status?: number; body: string; error?: string }> {
  return new Promise((resolve) => {
    const c = http2.connect(`http://127.0.0.1:${port}`);
    c.on('error', () => {});
    const rq = c.request({ ':path': path, ':authority': 'svc' });
    let status: number | undefined;
    let body = '';
    rq.on('response', (h) => (status = Number(h[':status'])));
    rq.on('data', (d: Buffer) => (body += d.toString()));
    rq.on('end', () => {
      c.close();
      resolve({ status, body });
    });
    rq.on('error', (err: Error & { code?: string }) => {
      c.close();
      resolve({ status, body, error: err.code ?? err.message });
    });
    rq.end();
  });
}

describe.each(ENGINES)('stream_idle_timeout and request_timeout on the %s engine', (engine) => {
  let up: Awaited<ReturnType<typeof slowUpstream>>;
  let strait: StraitProcess;
  let idle: number;
  let req: number;

  beforeAll(async () => {
    up = await slowUpstream();
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('idle', simpleRoutes('up', 'timeout: 0s'), '          stream_idle_timeout: 0.4s\n')}
${hcmListener('req', simpleRoutes('up', 'timeout: 0s'), '          request_timeout: 0.4s\n')}
  clusters:
${staticCluster('up', [up.port])}`,
      { engine },
    );
    idle = await strait.port('idle');
    req = await strait.port('req');
  });

  afterAll(async () => {
    await strait?.stop();
    await up?.close();
  });

  it('answers 408 "stream timeout" when nothing moves before the response', async () => {
    const before = (await strait.stat('http.idle.downstream_rq_idle_timeout')) ?? 0;
    const r = await raw(idle, 'GET /hang HTTP/1.1\r\nHost: svc\r\nConnection: close\r\n\r\n');
    expect(r.text).toMatch(/^HTTP\/1\.1 408 [\s\S]*\r\n\r\nstream timeout$/);
    expect(r.ms).toBeGreaterThanOrEqual(380);
    const v = await h2(idle, '/hang');
    expect([v.status, v.body]).toEqual([408, 'stream timeout']);
    expect(await strait.stat('http.idle.downstream_rq_idle_timeout')).toBe(before + 2);
  });

  it('resets a stream whose response stalls, and lets one that keeps trickling finish', async () => {
    const stalled = await raw(idle, 'GET /stall HTTP/1.1\r\nHost: svc\r\n\r\n');
    expect(stalled.text).toMatch(/^HTTP\/1\.1 200 [\s\S]*\r\n\r\n12345$/);
    const h2stalled = await h2(idle, '/stall');
    expect(h2stalled.status).toBe(200);
    expect(h2stalled.body).toBe('12345');
    // Reset, on both engines (node:http2's close() used to let an END_STREAM out first).
    expect(h2stalled.error).toBeDefined();
    // A byte every 100 ms for a second: always less than 0.4 s apart.
    const trickle = await h2(idle, '/trickle');
    expect([trickle.status, trickle.body, trickle.error]).toEqual([200, '0123456789', undefined]);
  });

  it('answers 408 "request timeout" to a request whose body stalls, and closes the connection', async () => {
    const before = (await strait.stat('http.req.downstream_rq_timeout')) ?? 0;
    const r = await raw(req, 'POST /hang HTTP/1.1\r\nHost: svc\r\nContent-Length: 10\r\n\r\n12345');
    expect(r.ms).toBeLessThan(3000);
    expect(r.text).toMatch(/^HTTP\/1\.1 408 [\s\S]*connection: close[\s\S]*\r\n\r\nrequest timeout$/i);
    expect(await strait.stat('http.req.downstream_rq_timeout')).toBe(before + 1);
    // A complete request is past request_timeout's reach, however long its response takes.
    const slow = await h2(req, '/trickle');
    expect([slow.status, slow.body]).toEqual([200, '0123456789']);
  });
});
