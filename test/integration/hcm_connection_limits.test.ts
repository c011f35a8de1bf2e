// The connection manager's common_http_protocol_options max_requests_per_connection and
// max_connection_duration on real HTTP/1.1 (raw sockets) and HTTP/2 (node:http2) clients, with
// both downstream HTTP/2 engines. As Envoy: the request that reaches the limit is served, HTTP/1.1
// says `connection: close` on its response and closes, HTTP/2 sends GOAWAY; a connection that
// outlives its duration drains the same way (an idle HTTP/1.1 one is closed). Both were refused.
import http2 from 'node:http2';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hcmListener, httpUpstream, simpleRoutes, type TestUpstream } from '../helpers/http.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

/** Keep-alive requests one after another on one socket; each response as text, and whether the server then closed. */
async function keepAlive(port: number, paths: string[], headers = ''): Promise<{ responses: string[]; closedAfter: number; closeMs: number }> {
  const s = net.connect(port, '127.0.0.1');
  s.on('error', () => {});
  const t0 = Date.now();
  let buf = '';
  let closed = false;
  let closeMs = -1;
  s.on('data', (d) => (buf += d.toString('latin1')));
  s.on('close', () => {
    closed = true;
    closeMs = Date.now() - t0;
  });
  const responses: string[] = [];
  let closedAfter = -1;
  for (const p of paths) {
    buf = '';
    s.write(`GET ${p} HTTP/1.1\r\nHost: svc\r\n${headers}\r\n`);
    // One whole response: head plus content-length bytes.
    for (;;) {
      const end = buf.indexOf('\r\n\r\n');
      const len = end < 0 ? -1 : Number(/content-length: *(\d+)/i.exec(buf.slice(0, end))?.[1] ?? 0);
      if (end >= 0 && buf.length >= end + 4 + len) break;
      if (closed) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    responses.push(buf);
    // Give a close that follows the response a moment to arrive.
    await new Promise((r) => setTimeout(r, 50));
    if (closed) {
      closedAfter = responses.length;
      break;
    }
  }
  if (!closed) s.destroy();
  return { responses, closedAfter, closeMs };
}

/** GETs on one h2c session in turn; the statuses (or error codes), and when GOAWAY came (after which request). */
async function h2Session(port: number, n: number): Promise<{ results: Array<number | string>; goawayAfter: number }> {
  const c = http2.connect(`http://127.0.0.1:${port}`);
  c.on('error', () => {});
  let goawayAfter = -1;
  const results: Array<number | string> = [];
  c.on('goaway', () => {
    if (goawayAfter < 0) goawayAfter = results.length;
  });
  for (let i = 0; i < n; i++) {
    const r = await new Promise<number | string>((resolve) => {
      let rq: http2.ClientHttp2Stream;
      try {
        rq = c.request({ ':path': '/', ':authority': 'svc' });
      } catch (err) {
        resolve((err as { code?: string }).code ?? 'throw');
        return;
      }
      let status = 0;
      rq.on('response', (h) => (status = Number(h[':status'])));
      rq.on('data', () => {});
      rq.on('end', () => resolve(status));
      rq.on('error', (err: Error & { code?: string }) => resolve(err.code ?? err.message));
      rq.end();
    });
    results.push(r);
    await new Promise((r) => setTimeout(r, 30));
  }
  c.destroy();
  return { results, goawayAfter };
}

describe.each(['node', 'native'] as const)('connection limits with the %s h2 engine', (h2engine) => {
  let up: TestUpstream;
  let strait: StraitProcess;
  let reqs: number;
  let dur: number;

  beforeAll(async () => {
    up = await httpUpstream('A');
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('reqs', simpleRoutes('up'), '          common_http_protocol_options: { max_requests_per_connection: 3 }\n')}
${hcmListener('dur', simpleRoutes('up'), '          common_http_protocol_options: { max_connection_duration: 0.5s }\n')}
  clusters:
${staticCluster('up', [up.port])}`,
      { engine: ENGINES[0], args: ['--h2-engine', h2engine] },
    );
    reqs = await strait.port('reqs');
    dur = await strait.port('dur');
  });

  afterAll(async () => {
    await strait?.stop();
    await up?.close();
  });

  it('HTTP/1.1: the third request of a connection is answered with connection: close, then the connection ends', async () => {
    const before = (await strait.stat('http.reqs.downstream_cx_max_requests_reached')) ?? 0;
    const r = await keepAlive(reqs, ['/a', '/b', '/c', '/d']);
    expect(r.responses.map((x) => x.slice(0, 12))).toEqual(['HTTP/1.1 200', 'HTTP/1.1 200', 'HTTP/1.1 200']);
    expect(r.responses.map((x) => /\r\nconnection: close\r\n/i.test(x))).toEqual([false, false, true]);
    expect(r.closedAfter).toBe(3);
    await strait.waitStat('http.reqs.downstream_cx_max_requests_reached', (v) => v === before + 1);
  });

  it('HTTP/2: the third stream is served and GOAWAY sends the next one to a new connection', async () => {
    const before = (await strait.stat('http.reqs.downstream_cx_max_requests_reached')) ?? 0;
    const r = await h2Session(reqs, 4);
    expect(r.results.slice(0, 3)).toEqual([200, 200, 200]);
    expect(r.goawayAfter).toBeGreaterThanOrEqual(2);
    expect(r.goawayAfter).toBeLessThanOrEqual(3);
    // The session is going away: the client cannot start a fourth stream on it.
    expect(r.results[3]).not.toBe(200);
    await strait.waitStat('http.reqs.downstream_cx_max_requests_reached', (v) => v === before + 1);
  });

  it('HTTP/1.1: an idle keep-alive connection is closed once it outlives max_connection_duration', async () => {
    const before = (await strait.stat('http.dur.downstream_cx_max_duration_reached')) ?? 0;
    const r = await keepAlive(dur, ['/a']);
    expect(r.responses[0]).toMatch(/^HTTP\/1\.1 200 /);
    expect(r.closedAfter).toBe(-1); // still open right after the response
    // Wait for the close, with the socket left open meanwhile.
    const s = net.connect(dur, '127.0.0.1');
    const t0 = Date.now();
    const closedAt = await new Promise<number>((resolve) => {
      s.on('error', () => {});
      s.on('close', () => resolve(Date.now() - t0));
      setTimeout(() => s.destroy(), 4000);
    });
    expect(closedAt).toBeGreaterThanOrEqual(400);
    expect(closedAt).toBeLessThan(3000);
    await strait.waitStat('http.dur.downstream_cx_max_duration_reached', (v) => v >= before + 1);
  });

  it('HTTP/1.1: a request in flight at the limit completes with connection: close', async () => {
    // Answered after 0.8 s: the 0.5 s limit passes while it is in flight.
    const r = await keepAlive(dur, ['/slow', '/next'], 'x-test-delay-ms: 800\r\n');
    expect(r.responses[0]).toMatch(/^HTTP\/1\.1 200 [\s\S]*\r\nconnection: close\r\n/i);
    expect(r.closedAfter).toBe(1);
  });

  it('HTTP/2: the session gets GOAWAY once it outlives max_connection_duration', async () => {
    const c = http2.connect(`http://127.0.0.1:${dur}`);
    c.on('error', () => {});
    const t0 = Date.now();
    const goaway = new Promise<number>((resolve) => c.on('goaway', () => resolve(Date.now() - t0)));
    const status = await new Promise<number>((resolve) => {
      const rq = c.request({ ':path': '/', ':authority': 'svc' });
      rq.on('response', (h) => resolve(Number(h[':status'])));
      rq.on('data', () => {});
      rq.end();
    });
    expect(status).toBe(200);
    const at = await Promise.race([goaway, new Promise<number>((r) => setTimeout(() => r(-1), 4000))]);
    c.destroy();
    expect(at).toBeGreaterThanOrEqual(400);
    expect(at).toBeLessThan(3000);
  });
});
