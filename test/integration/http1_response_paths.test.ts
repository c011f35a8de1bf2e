// The HTTP/1.1 response paths the hot path distinguishes: a small body that arrives with its
// head (sent downstream as one buffer), a body that arrives after its head, a Content-Length: 0
// response, and many requests on one keep-alive connection sharing the connection's timers.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from 'undici';
import { hcmListener, simpleRoutes } from '../helpers/http.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

/** A raw upstream: answers by path with exact bytes, so the shape of each upstream write is known. */
async function rawUpstream(): Promise<{ port: number; connections: () => number; close: () => Promise<void> }> {
  let conns = 0;
  const server = net.createServer((s) => {
    conns++;
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString('latin1');
      for (let i = buf.indexOf('\r\n\r\n'); i !== -1; i = buf.indexOf('\r\n\r\n')) {
        const head = buf.slice(0, i);
        buf = buf.slice(i + 4);
        const path = head.split(' ')[1]!;
        if (path === '/close') {
          s.end('HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: close\r\nx-kind: close\r\n\r\nclosed');
          return;
        } else if (path === '/empty') s.write('HTTP/1.1 200 OK\r\ncontent-length: 0\r\nx-kind: empty\r\n\r\n');
        else if (path === '/split') {
          // Head and body in two writes: the proxy sees them in two reads.
          s.write('HTTP/1.1 200 OK\r\ncontent-length: 11\r\nx-kind: split\r\n\r\n');
          setTimeout(() => s.write('hello split'), 30);
        } else s.write('HTTP/1.1 200 OK\r\nx-kind: small\r\ncontent-length: 5\r\nx-after: 1\r\n\r\nhello');
      }
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    connections: () => conns,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

describe.each(ENGINES)('HTTP/1.1 response paths on the %s engine', (engine) => {
  let up: Awaited<ReturnType<typeof rawUpstream>>;
  let strait: StraitProcess;
  let client: Client;

  beforeAll(async () => {
    up = await rawUpstream();
    // A long route timeout: a response the proxy failed to finish would hold the next request
    // on the connection far past the test's own timeout.
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('ingress', simpleRoutes('up', 'timeout: 120s'))}
  clusters:
${staticCluster('up', [up.port])}`,
      { engine },
    );
    client = new Client(`http://127.0.0.1:${await strait.port('ingress')}`, { pipelining: 1 });
  });

  afterAll(async () => {
    await client?.destroy(); // a hung request must not hold the suite
    await strait?.stop();
    await up?.close();
  });

  async function get(path: string): Promise<{ status: number; kind: string | string[] | undefined; after: string | string[] | undefined; body: string }> {
    const r = await client.request({ method: 'GET', path });
    return { status: r.statusCode, kind: r.headers['x-kind'], after: r.headers['x-after'], body: await r.body.text() };
  }

  it('relays a small body that came with its head, a body that came later and an empty body, then serves the next request on the same connections', { timeout: 20_000 }, async () => {
    for (let round = 0; round < 3; round++) {
      expect(await get('/small')).toEqual({ status: 200, kind: 'small', after: '1', body: 'hello' });
      // Content-Length: 0 with nothing after the head: the exchange must end here, or the next
      // request on this connection waits for the route timeout.
      expect(await get('/empty')).toEqual({ status: 200, kind: 'empty', after: undefined, body: '' });
      expect(await get('/split')).toEqual({ status: 200, kind: 'split', after: undefined, body: 'hello split' });
    }
    // One client connection throughout, and the upstream connection was reused for every request.
    expect(up.connections()).toBe(1);
    expect(await strait.stat('http.ingress.downstream_cx_total')).toBe(1);
    expect(await strait.stat('http.ingress.downstream_rq_completed')).toBe(9);
    expect((await strait.stat('cluster.up.upstream_rq_timeout')) ?? 0).toBe(0);
    expect((await strait.stat('cluster.up.upstream_cx_close_notify')) ?? 0).toBe(0);
  });

  it('counts an upstream response that says close as upstream_cx_close_notify and opens a new connection after it', async () => {
    const before = up.connections();
    expect(await get('/close')).toEqual({ status: 200, kind: 'close', after: undefined, body: 'closed' });
    expect(await strait.stat('cluster.up.upstream_cx_close_notify')).toBe(1);
    expect(await get('/small')).toEqual({ status: 200, kind: 'small', after: '1', body: 'hello' });
    expect(up.connections()).toBe(before + 1);
    expect(await strait.stat('cluster.up.upstream_cx_close_notify')).toBe(1);
  });
});
