import http2 from 'node:http2';
import type net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hcmListener, simpleRoutes } from '../helpers/http.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

/**
 * An h2c upstream that holds every stream until `release()`, so the test controls how many are in
 * flight at once; it counts the HTTP/2 connections the proxy opened to it.
 */
async function holdingServer() {
  const server = http2.createServer();
  let sessions = 0;
  let held: Array<() => void> = [];
  let waiters: Array<() => void> = [];
  server.on('session', () => sessions++);
  server.on('stream', (stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on('data', (d: Buffer) => chunks.push(d));
    stream.on('end', () => {
      held.push(() => {
        if (stream.destroyed) return;
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'x-got': `${headers[':path']}:${Buffer.concat(chunks).toString()}` }));
        stream.end(Buffer.from('reply'));
      });
      for (const w of waiters.splice(0)) w();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    sessions: () => sessions,
    /** Resolves once `n` streams are held (their request bodies complete). */
    async heldCount(n: number) {
      while (held.length < n) await new Promise<void>((r) => waiters.push(r));
    },
    release() {
      const h = held;
      held = [];
      for (const f of h) f();
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

interface Reply {
  status: number;
  body: string;
  trailers: Record<string, unknown>;
}

function call(session: http2.ClientHttp2Session, path: string, body: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const s = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' });
    let status = 0;
    let trailers: Record<string, unknown> = {};
    const chunks: Buffer[] = [];
    s.on('response', (h) => (status = Number(h[':status'])));
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('trailers', (t) => (trailers = t));
    s.on('end', () => resolve({ status, body: Buffer.concat(chunks).toString(), trailers }));
    s.on('error', reject);
    s.end(body);
  });
}

describe.each(ENGINES.slice(0, 1))('HTTP/2 upstream connection pool on the %s engine', (engine) => {
  let up: Awaited<ReturnType<typeof holdingServer>>;
  let strait: StraitProcess;
  let client: http2.ClientHttp2Session;

  beforeAll(async () => {
    up = await holdingServer();
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('mesh', simpleRoutes('h2'))}
  clusters:
${staticCluster('h2', [up.port], '    http2_protocol_options: { max_concurrent_streams: 2 }\n')}`,
      { engine },
    );
    client = http2.connect(`http://127.0.0.1:${await strait.port('mesh')}`);
    client.on('error', () => {});
  });

  afterAll(async () => {
    client?.close();
    await strait?.stop();
    await up?.close();
  });

  it('opens a connection per max_concurrent_streams streams and reuses them once the streams are done', async () => {
    const first = [0, 1, 2, 3].map((i) => call(client, `/svc/A${i}`, `body${i}`));
    await up.heldCount(4);
    // Four streams in flight, at most two per connection: two connections.
    expect(up.sessions()).toBe(2);
    up.release();
    const r1 = await Promise.all(first);
    for (const [i, r] of r1.entries()) {
      expect(r).toMatchObject({ status: 200, body: 'reply' });
      // The request body went up and the upstream's trailers came back down.
      expect(r.trailers['grpc-status']).toBe('0');
      expect(r.trailers['x-got']).toBe(`/svc/A${i}:body${i}`);
    }
    // Every finished stream gave its slot back: four more fit on the same two connections.
    const second = [0, 1, 2, 3].map((i) => call(client, `/svc/B${i}`, `again${i}`));
    await up.heldCount(4);
    expect(up.sessions()).toBe(2);
    up.release();
    const r2 = await Promise.all(second);
    expect(r2.map((r) => r.trailers['x-got'])).toEqual([0, 1, 2, 3].map((i) => `/svc/B${i}:again${i}`));
  });
});
