// The admin API's HTTP/1.1 handling (it runs on the proxy's own codec, not node:http): keep-alive,
// pipelining in order, HEAD, request bodies read and dropped, 100-continue, HTTP/1.0, bad input.
import net from 'node:net';
import { Client } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, startStrait, type StraitProcess } from '../helpers/strait.js';

/** Sends `req` on a fresh connection and reads until the peer closes or `until` matches. */
async function exchange(port: number, req: string | string[], until?: RegExp): Promise<{ text: string; closed: boolean }> {
  const s = net.connect(port, '127.0.0.1');
  let text = '';
  let closed = false;
  const done = new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 3000);
    s.on('data', (d) => {
      text += d.toString('latin1');
      if (until?.test(text)) {
        clearTimeout(timer);
        resolve();
      }
    });
    s.on('close', () => {
      closed = true;
      clearTimeout(timer);
      resolve();
    });
    s.on('error', () => {});
  });
  for (const part of Array.isArray(req) ? req : [req]) {
    s.write(part);
    await new Promise((r) => setTimeout(r, 20));
  }
  await done;
  s.destroy();
  return { text, closed };
}

const statuses = (t: string) => [...t.matchAll(/^HTTP\/1\.1 (\d{3})/gm)].map((m) => Number(m[1]));

describe('admin HTTP/1.1', () => {
  let strait: StraitProcess;
  let port: number;

  beforeAll(async () => {
    strait = await startStrait(`${ADMIN}static_resources: {}\n`);
    await strait.get('/ready');
    port = Number(new URL(strait.admin).port);
  });

  afterAll(async () => {
    await strait?.stop();
  });

  it('serves many requests on one keep-alive connection (undici)', async () => {
    const c = new Client(strait.admin, { pipelining: 4 });
    try {
      const rs = await Promise.all(['/ready', '/server_info', '/stats', '/ready'].map((p) => c.request({ path: p, method: 'GET' })));
      expect(rs.map((r) => r.statusCode)).toEqual([200, 200, 200, 200]);
      const bodies = await Promise.all(rs.map((r) => r.body.text()));
      expect(bodies[0]).toBe('LIVE\n');
      expect(JSON.parse(bodies[1]!).state).toBe('LIVE');
      expect(bodies[3]).toBe('LIVE\n');
      expect(rs[0]!.headers['content-type']).toBe('text/plain; charset=UTF-8');
      expect(rs[1]!.headers['content-type']).toBe('application/json');
    } finally {
      await c.close();
    }
    expect(await strait.stat('server.live')).toBe(1);
  });

  it('answers pipelined requests in order, HEAD with the GET length and no body', async () => {
    const { text } = await exchange(port, 'GET /ready HTTP/1.1\r\nHost: a\r\n\r\nHEAD /ready HTTP/1.1\r\nHost: a\r\n\r\nGET /nope HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    expect(statuses(text)).toEqual([200, 200, 404]);
    const [, head, third] = text.split(/(?=^HTTP\/1\.1 )/m);
    expect(head).toMatch(/content-length: 5\r\n/);
    expect(head!.endsWith('\r\n\r\n')).toBe(true); // nothing after the HEAD response's head
    expect(third).toContain('admin commands are:');
  });

  it('reads and drops a request body (length and chunked), then acts on the request', async () => {
    const { text } = await exchange(port, [
      'POST /healthcheck/fail HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello',
      ' world',
      'GET /ready HTTP/1.1\r\nHost: a\r\n\r\n',
      'POST /healthcheck/ok HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
      'GET /ready HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
    ]);
    // /ready is 503 while health checks fail, 200 again after /healthcheck/ok.
    expect(statuses(text)).toEqual([200, 503, 200, 200]);
  });

  it('sends 100 Continue when asked, then the response', async () => {
    const { text } = await exchange(port, ['POST /healthcheck/ok HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n', 'ok'], /OK\n$/);
    expect(statuses(text)).toEqual([100, 200]);
  });

  it('closes an HTTP/1.0 connection after its response unless it asked to keep it', async () => {
    const a = await exchange(port, 'GET /ready HTTP/1.0\r\n\r\n');
    expect(statuses(a.text)).toEqual([200]);
    expect(a.text).toContain('connection: close');
    expect(a.closed).toBe(true);
    const b = await exchange(port, 'GET /ready HTTP/1.0\r\nConnection: keep-alive\r\n\r\n', /LIVE\n$/);
    expect(b.closed).toBe(false);
  });

  it('answers bad input with 400, 431 or 413 and a close; the admin API keeps serving', async () => {
    const bad = await exchange(port, 'GET /ready HTTP/9.9\r\n\r\n');
    expect(statuses(bad.text)).toEqual([400]);
    expect(bad.closed).toBe(true);
    const big = await exchange(port, `GET /ready HTTP/1.1\r\nHost: a\r\nX-Big: ${'x'.repeat(70 * 1024)}\r\n\r\n`);
    expect(statuses(big.text)).toEqual([431]);
    expect(big.closed).toBe(true);
    const body = await exchange(port, 'POST /healthcheck/ok HTTP/1.1\r\nHost: a\r\nContent-Length: 10000000\r\n\r\n');
    expect(statuses(body.text)).toEqual([413]);
    expect(body.closed).toBe(true);
    expect(await strait.get('/ready')).toEqual({ status: 200, text: 'LIVE\n' });
  });
});
