// stream_idle_timeout and request_timeout on real HTTP/1.1 (raw sockets) and HTTP/2 (node:http2)
// clients, both engines: a stream on which nothing moves gets Envoy's 408 "stream timeout" (or a
// reset once its response began), a trickling response that keeps moving completes, and a
// request whose body stalls gets 408 "request timeout". Both fields were refused unless 0s.
// max_stream_duration (the connection manager's and a route's): a stream that outlives it gets
// Envoy's 408 "downstream duration timeout" (gRPC: DEADLINE_EXCEEDED), or a reset once its
// response began, and a route with max_stream_duration ignores its `timeout`, as Envoy's does.
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
      const full = buf.slice(buf.indexOf(' ') + 1, buf.indexOf(' ', buf.indexOf(' ') + 1));
      // The last segment picks the behaviour, so routes can be told apart by a prefix.
      const path = full.slice(full.lastIndexOf('/'));
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

function h2(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status?: number; body: string; error?: string; headers?: http2.IncomingHttpHeaders }> {
  return new Promise((resolve) => {
    const c = http2.connect(`http://127.0.0.1:${port}`);
    c.on('error', () => {});
    const rq = c.request({ ':path': path, ':authority': 'svc', ...headers });
    let status: number | undefined;
    let head: http2.IncomingHttpHeaders | undefined;
    let body = '';
    rq.on('response', (h) => {
      head = h;
      status = Number(h[':status']);
    });
    rq.on('data', (d: Buffer) => (body += d.toString()));
    rq.on('end', () => {
      c.close();
      resolve({ status, body, headers: head });
    });
    rq.on('error', (err: Error & { code?: string }) => {
      c.close();
      resolve({ status, body, error: err.code ?? err.message, headers: head });
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

const DURATION_ROUTES = `name: local
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/off/" }
    route: { cluster: up, max_stream_duration: { max_stream_duration: 0s } }
  - match: { prefix: "/route/" }
    route: { cluster: up, timeout: 0.1s, max_stream_duration: { max_stream_duration: 1.8s } }
  - match: { prefix: "/" }
    route: { cluster: up, timeout: 0s }`;
const FAULT_FILTER = `          - name: envoy.filters.http.fault
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault }
`;

describe.each(ENGINES)('max_stream_duration on the %s engine', (engine) => {
  let up: Awaited<ReturnType<typeof slowUpstream>>;
  let strait: StraitProcess;
  const ports: Record<string, number> = {};

  beforeAll(async () => {
    up = await slowUpstream();
    const hcm = '          common_http_protocol_options: { max_stream_duration: 0.4s }\n';
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('dur', DURATION_ROUTES, hcm)}
${hcmListener('durf', DURATION_ROUTES, hcm, FAULT_FILTER)}
  clusters:
${staticCluster('up', [up.port])}`,
      { engine },
    );
    // Without HTTP filters and with one: the HTTP/1.1 session routes on two different paths.
    for (const l of ['dur', 'durf']) ports[l] = await strait.port(l);
  });

  afterAll(async () => {
    await strait?.stop();
    await up?.close();
  });

  it.each(['dur', 'durf'])('answers 408 "downstream duration timeout" when the connection manager\'s limit passes before the response (%s)', async (l) => {
    const before = (await strait.stat(`http.${l}.downstream_rq_max_duration_reached`)) ?? 0;
    const r = await raw(ports[l]!, 'GET /hang HTTP/1.1\r\nHost: svc\r\nConnection: close\r\n\r\n');
    expect(r.text).toMatch(/^HTTP\/1\.1 408 [\s\S]*\r\n\r\ndownstream duration timeout$/);
    expect(r.ms).toBeGreaterThanOrEqual(380);
    const v = await h2(ports[l]!, '/hang');
    expect([v.status, v.body]).toEqual([408, 'downstream duration timeout']);
    // A gRPC call gets it as DEADLINE_EXCEEDED in a trailers-only 200.
    const g = await h2(ports[l]!, '/hang', { 'content-type': 'application/grpc' });
    expect([g.status, g.headers?.['grpc-status'], g.headers?.['grpc-message']]).toEqual([200, '4', 'downstream%20duration%20timeout']);
    expect(await strait.stat(`http.${l}.downstream_rq_max_duration_reached`)).toBe(before + 3);
  });

  it('resets a stream whose response is still coming when the limit passes, however it keeps moving', async () => {
    // /trickle sends a byte every 100 ms for a second: stream_idle_timeout would let it finish.
    const r = await raw(ports.dur!, 'GET /trickle HTTP/1.1\r\nHost: svc\r\n\r\n');
    expect(r.text).toMatch(/^HTTP\/1\.1 200 /);
    expect(r.text.endsWith('0123456789')).toBe(false);
    expect(r.ms).toBeLessThan(900);
    const v = await h2(ports.dur!, '/trickle');
    expect(v.status).toBe(200);
    expect(v.body).not.toBe('0123456789');
    expect(v.error).toBeDefined();
  });

  it('a route\'s max_stream_duration replaces the connection manager\'s, 0s turns it off, and the route timeout is not used', async () => {
    // 1 s of trickle: past the connection manager's 0.4 s and the route's 0.1 s timeout, within its 1.8 s.
    const r = await h2(ports.dur!, '/route/trickle');
    expect([r.status, r.body, r.error]).toEqual([200, '0123456789', undefined]);
    const h1 = await raw(ports.durf!, 'GET /route/trickle HTTP/1.1\r\nHost: svc\r\nConnection: close\r\n\r\n');
    expect(h1.text).toMatch(/^HTTP\/1\.1 200 [\s\S]*\r\n\r\n0123456789$/);
    const off = await h2(ports.dur!, '/off/trickle');
    expect([off.status, off.body, off.error]).toEqual([200, '0123456789', undefined]);
  });
});
