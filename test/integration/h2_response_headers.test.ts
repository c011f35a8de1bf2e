import http2 from 'node:http2';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hcmListener } from '../helpers/http.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

// The response head an HTTP/2 client gets through an h2c downstream: h2_session.ts edits the
// try's header object in place (no copy). Whatever the upstream protocol, connection-specific
// headers never reach the client, the route's removals and additions apply, `server` is ours.

/** An h2c upstream whose response carries a `host` header (legal for node, forbidden downstream). */
async function h2Upstream(): Promise<{ port: number; close(): Promise<void> }> {
  const server = http2.createServer();
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  server.on('stream', (stream) => {
    stream.on('error', () => {});
    stream.respond({ ':status': 200, host: 'leaked.example', server: 'upstream-srv', 'x-keep': 'k', 'x-drop': 'd' });
    stream.end('h2 body');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise((r) => {
        for (const s of sessions) s.destroy();
        server.close(() => r());
      }),
  };
}

/** An HTTP/1.1 upstream answering every request with hop-by-hop headers in mixed case. */
async function h1Upstream(): Promise<{ port: number; close(): Promise<void> }> {
  const socks = new Set<net.Socket>();
  const server = net.createServer((s) => {
    socks.add(s);
    s.on('close', () => socks.delete(s));
    s.on('error', () => {});
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString('latin1');
      while (buf.includes('\r\n\r\n')) {
        buf = buf.slice(buf.indexOf('\r\n\r\n') + 4);
        s.write('HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nServer: upstream-srv\r\nX-Keep: k\r\nX-Drop: d\r\nContent-Length: 7\r\n\r\nh1 body');
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise((r) => {
        for (const s of socks) s.destroy();
        server.close(() => r());
      }),
  };
}

function get(session: http2.ClientHttp2Session, path: string): Promise<{ headers: http2.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const s = session.request({ ':path': path });
    let headers: http2.IncomingHttpHeaders = {};
    let body = '';
    s.on('response', (h) => (headers = h));
    s.setEncoding('utf8');
    s.on('data', (d: string) => (body += d));
    s.on('end', () => resolve({ headers, body }));
    s.on('error', reject);
  });
}

describe.each(ENGINES.slice(0, 1))('HTTP/2 downstream response headers on the %s engine', (engine) => {
  let up2: Awaited<ReturnType<typeof h2Upstream>>;
  let up1: Awaited<ReturnType<typeof h1Upstream>>;
  let strait: StraitProcess;
  let session: http2.ClientHttp2Session;

  beforeAll(async () => {
    up2 = await h2Upstream();
    up1 = await h1Upstream();
    const routes = `name: local
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/h2" }
    route: { cluster: h2 }
    response_headers_to_remove: [x-drop]
    response_headers_to_add: [{ header: { key: x-added, value: a } }]
  - match: { prefix: "/h1" }
    route: { cluster: h1 }
    response_headers_to_remove: [x-drop]
    response_headers_to_add: [{ header: { key: x-added, value: a } }]`;
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('mesh', routes)}
  clusters:
${staticCluster('h2', [up2.port], '    http2_protocol_options: {}\n')}
${staticCluster('h1', [up1.port])}`,
      { engine },
    );
    session = http2.connect(`http://127.0.0.1:${await strait.port('mesh')}`);
    session.on('error', () => {});
  });

  afterAll(async () => {
    session?.destroy();
    await strait?.stop();
    await up2?.close();
    await up1?.close();
  });

  it('from an HTTP/2 upstream: drops `host`, applies the route’s removal and addition, sets server', async () => {
    const r = await get(session, '/h2/x');
    expect(r.body).toBe('h2 body');
    expect(r.headers[':status']).toBe(200);
    expect(r.headers['x-keep']).toBe('k');
    expect(r.headers['x-added']).toBe('a');
    expect(r.headers['x-drop']).toBeUndefined();
    expect(r.headers.host).toBeUndefined();
    expect(r.headers.server).toBe('envoy');
  });

  it('from an HTTP/1.1 upstream: no hop-by-hop headers, the route’s removal and addition, server set', async () => {
    for (let i = 0; i < 2; i++) {
      const r = await get(session, `/h1/${i}`);
      expect(r.body).toBe('h1 body');
      expect(r.headers[':status']).toBe(200);
      expect(r.headers['x-keep']).toBe('k');
      expect(r.headers['x-added']).toBe('a');
      expect(r.headers['x-drop']).toBeUndefined();
      expect(r.headers.connection).toBeUndefined();
      expect(r.headers['keep-alive']).toBeUndefined();
      expect(r.headers.server).toBe('envoy');
    }
  });
});
