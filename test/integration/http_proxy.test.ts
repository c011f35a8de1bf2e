import crypto from 'node:crypto';
import http from 'node:http';
import type net from 'node:net';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, request } from 'undici';
import { connect, readAll, sha256 } from '../helpers/net.js';
import { expectedSizedBody, hcmListener, httpUpstream, simpleRoutes, type Echo, type TestUpstream } from '../helpers/http.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

describe.each(ENGINES)('http_connection_manager HTTP/1.1 on the %s engine', (engine) => {
  let a: TestUpstream;
  let b: TestUpstream;
  let strait: StraitProcess;
  let base: string;

  beforeAll(async () => {
    a = await httpUpstream('a');
    b = await httpUpstream('b');
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('ingress', simpleRoutes('one'))}
${hcmListener('lb', simpleRoutes('two'))}
${hcmListener('h1only', simpleRoutes('one'), '          codec_type: HTTP1\n')}
  clusters:
${staticCluster('one', [a.port])}
${staticCluster('two', [a.port, b.port])}`,
      { engine },
    );
    base = `http://127.0.0.1:${await strait.port('ingress')}`;
  });

  afterAll(async () => {
    await strait?.stop();
    await a?.close();
    await b?.close();
  });

  it('forwards a GET with its headers, adds x-request-id and x-forwarded-proto, strips hop-by-hop', async () => {
    const r = await request(`${base}/hello?x=1`, { headers: { 'x-custom': 'v1', 'proxy-connection': 'keep-alive', te: 'trailers' } });
    expect(r.statusCode).toBe(200);
    const echo = (await r.body.json()) as Echo;
    expect(echo.method).toBe('GET');
    expect(echo.url).toBe('/hello?x=1');
    expect(echo.headers['x-custom']).toBe('v1');
    expect(echo.headers['x-forwarded-proto']).toBe('http');
    expect(echo.headers['x-request-id']).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(echo.headers['proxy-connection']).toBeUndefined();
    expect(echo.headers.te).toBeUndefined();
    expect(r.headers['x-upstream']).toBe('a');
    // Envoy's default server_header_transformation (OVERWRITE).
    expect(r.headers.server).toBe('envoy');
    await strait.waitStat('http.ingress.downstream_rq_2xx', (v) => v >= 1);
    expect(await strait.stat('http.ingress.downstream_rq_total')).toBeGreaterThanOrEqual(1);
    expect(await strait.stat('cluster.one.upstream_rq_2xx')).toBeGreaterThanOrEqual(1);
    expect(await strait.stat('cluster.one.upstream_rq_200')).toBeGreaterThanOrEqual(1);
    expect(await strait.stat('cluster.one.upstream_rq_total')).toBeGreaterThanOrEqual(1);
    expect(await strait.stat('http.ingress.downstream_cx_total')).toBeGreaterThanOrEqual(1);
  });

  it('drops the headers Connection names, whatever its case, and nothing else for a plain close or keep-alive', async () => {
    const port = Number(new URL(base).port);
    const echoOf = async (connection: string): Promise<Echo> => {
      const s = await connect(port);
      s.write(`GET /conn HTTP/1.1\r\nhost: t\r\nconnection: ${connection}\r\nx-drop-me: 1\r\nx-keep: 2\r\nkeep-alive: timeout=5\r\n\r\n`);
      const all = s.end() && (await readAll(s));
      s.destroy();
      // One chunk (the echo upstream answers chunked): its JSON is all there is.
      const text = all.toString('latin1');
      return JSON.parse(text.slice(text.indexOf('{'), text.lastIndexOf('}') + 1)) as Echo;
    };
    for (const v of ['close', 'CLOSE', 'Keep-Alive']) {
      const e = await echoOf(v);
      expect(e.headers['x-drop-me']).toBe('1');
      expect(e.headers['x-keep']).toBe('2');
      expect(e.headers['keep-alive']).toBeUndefined();
    }
    for (const v of ['close, X-Drop-Me', 'keep-alive,x-drop-me', 'closex, x-drop-me']) {
      const e = await echoOf(v);
      expect(e.headers['x-drop-me']).toBeUndefined();
      expect(e.headers['x-keep']).toBe('2');
    }
  });

  it('keeps a client-supplied x-request-id', async () => {
    const r = await request(`${base}/id`, { headers: { 'x-request-id': 'abc-123' } });
    expect(((await r.body.json()) as Echo).headers['x-request-id']).toBe('abc-123');
  });

  it('carries an 8 MiB Content-Length body and a chunked body byte for byte', async () => {
    const payload = crypto.randomBytes(8 * 1024 * 1024);
    const r1 = await request(`${base}/upload`, { method: 'POST', body: payload });
    const e1 = (await r1.body.json()) as Echo;
    expect(e1.bodyLength).toBe(payload.length);
    expect(e1.bodySha).toBe(sha256(payload));
    expect(e1.headers['content-length']).toBe(String(payload.length));
    // A stream body of unknown length goes out chunked.
    const parts = Array.from({ length: 50 }, () => crypto.randomBytes(20_000));
    const r2 = await request(`${base}/chunked`, { method: 'PUT', body: Readable.from(parts) });
    const e2 = (await r2.body.json()) as Echo;
    expect(e2.headers['transfer-encoding']).toBe('chunked');
    expect(e2.bodyLength).toBe(1_000_000);
    expect(e2.bodySha).toBe(sha256(Buffer.concat(parts)));
  });

  it('relays large and chunked response bodies intact', async () => {
    for (const chunked of [false, true]) {
      const n = 5 * 1024 * 1024 + 17;
      const headers: Record<string, string> = { 'x-test-size': String(n) };
      if (chunked) headers['x-test-chunked'] = '1';
      const r = await request(`${base}/big`, { headers });
      const got = Buffer.from(await r.body.arrayBuffer());
      expect(got.length).toBe(n);
      expect(sha256(got)).toBe(sha256(expectedSizedBody(n)));
      if (chunked) expect(r.headers['transfer-encoding']).toBe('chunked');
    }
  });

  it('balances each request over pooled keep-alive upstream connections', async () => {
    const port = await strait.port('lb');
    const before = { a: a.connections, b: b.connections };
    const client = new Client(`http://127.0.0.1:${port}`, { connections: 1, pipelining: 1 });
    const tags: string[] = [];
    try {
      for (let i = 0; i < 20; i++) {
        const r = await client.request({ path: `/rr/${i}`, method: 'GET' });
        tags.push(((await r.body.json()) as Echo).tag);
      }
    } finally {
      await client.close();
    }
    // One downstream connection, requests spread over both hosts: balancing is per request.
    expect(tags.filter((t) => t === 'a').length).toBe(10);
    expect(tags.filter((t) => t === 'b').length).toBe(10);
    // And the upstream connections were reused rather than opened per request.
    expect(a.connections - before.a).toBeLessThanOrEqual(1);
    expect(b.connections - before.b).toBeLessThanOrEqual(1);
    expect(await strait.stat('http.lb.downstream_cx_total')).toBe(1);
  });

  it('answers pipelined requests in order', async () => {
    const s = await connect(await strait.port('ingress'));
    const all = readAll(s);
    s.write(
      'GET /p1 HTTP/1.1\r\nHost: x\r\n\r\n' +
        'POST /p2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello' +
        'GET /p3 HTTP/1.1\r\nHost: x\r\nx-test-delay-ms: 1\r\n\r\n' +
        'GET /p4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    );
    const text = (await all).toString();
    const urls = [...text.matchAll(/"url":"([^"]+)"/g)].map((m) => m[1]);
    expect(urls).toEqual(['/p1', '/p2', '/p3', '/p4']);
    expect(text.match(/HTTP\/1\.1 200 OK/g)?.length).toBe(4);
    expect(text).toContain('"bodyLength":5');
  });

  it('answers a malformed request with 400 and closes', async () => {
    const s = await connect(await strait.port('ingress'));
    const all = readAll(s);
    s.write('GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n');
    const text = (await all).toString();
    expect(text).toMatch(/^HTTP\/1\.1 400 /);
    expect(text.toLowerCase()).toContain('connection: close');
    await strait.waitStat('http.ingress.downstream_cx_protocol_error', (v) => v >= 1);
  });

  it('answers headers over the limit with 431 and closes', async () => {
    const s = await connect(await strait.port('ingress'));
    const all = readAll(s);
    s.write(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(70 * 1024)}\r\n\r\n`);
    const text = (await all).toString();
    expect(text).toMatch(/^HTTP\/1\.1 431 /);
  });

  it('answers the HTTP/2 preface with 400 when the codec is HTTP1 only', async () => {
    const s = await connect(await strait.port('h1only'));
    const all = readAll(s);
    s.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    expect((await all).toString()).toMatch(/^HTTP\/1\.1 400 /);
    await strait.waitStat('http.h1only.downstream_cx_protocol_error', (v) => v === 1);
  });

  it('passes an upstream 5xx through unchanged without a retry policy', async () => {
    const r = await request(`${base}/x`, { headers: { 'x-test-status': '503' } });
    expect(r.statusCode).toBe(503);
    await r.body.dump();
    await strait.waitStat('http.ingress.downstream_rq_5xx', (v) => v >= 1);
    expect(await strait.stat('cluster.one.upstream_rq_5xx')).toBeGreaterThanOrEqual(1);
  });
});

describe('http_connection_manager HTTP/1.1 details', () => {
  let a: TestUpstream;
  let strait: StraitProcess;
  let port: number;

  beforeAll(async () => {
    a = await httpUpstream('a');
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('d', simpleRoutes('one'), '          request_headers_timeout: 0.3s\n          http_protocol_options: { accept_http_10: true }\n')}
${hcmListener('strict', simpleRoutes('one'))}
${hcmListener('idle', simpleRoutes('one'), '          common_http_protocol_options: { idle_timeout: 0.3s }\n')}
  clusters:
${staticCluster('one', [a.port])}`,
      { engine: ENGINES[0] },
    );
    port = await strait.port('d');
  });

  afterAll(async () => {
    await strait?.stop();
    await a?.close();
  });

  it('answers a request the client half-closed after sending', async () => {
    const s = await connect(port);
    const all = readAll(s);
    s.end('GET /half HTTP/1.1\r\nHost: x\r\n\r\n');
    const text = (await all).toString();
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    expect(text).toContain('"url":"/half"');
  });

  it('drops the headers the client named in Connection', async () => {
    const s = await connect(port);
    const all = readAll(s);
    s.write('GET /named HTTP/1.1\r\nHost: x\r\nConnection: x-hop, close\r\nX-Hop: secret\r\nX-Keep: yes\r\n\r\n');
    const text = (await all).toString();
    expect(text).toContain('"x-keep":"yes"');
    expect(text).not.toContain('x-hop');
  });

  it('answers Expect: 100-continue itself and forwards the body without the Expect header', async () => {
    const s = await connect(port);
    const got: Buffer[] = [];
    const first = new Promise<string>((resolve) => s.once('data', (d: Buffer) => resolve(d.toString())));
    s.on('data', (d: Buffer) => got.push(d));
    s.write('POST /expect HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n');
    expect(await first).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\n/);
    const done = new Promise<void>((r) => s.on('end', () => r()));
    s.write('body');
    await done;
    const text = Buffer.concat(got).toString();
    expect(text).toContain('"bodyLength":4');
    expect(text).not.toContain('"expect"');
  });

  it('sends no body for HEAD and keeps the connection usable', async () => {
    const s = await connect(port);
    const all = readAll(s);
    s.write('HEAD /h HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    const text = (await all).toString();
    const heads = text.split('HTTP/1.1 200 OK');
    expect(heads.length).toBe(3);
    // No body after the HEAD answer's head: the next bytes are the next response.
    expect(heads[1]!.endsWith('\r\n\r\n')).toBe(true);
    expect(text).toContain('"url":"/after"');
  });

  it('serves HTTP/1.0 with accept_http_10, and refuses it with 426 by default', async () => {
    const s = await connect(port);
    const all = readAll(s);
    s.write('GET /old HTTP/1.0\r\n\r\n');
    const text = (await all).toString();
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    expect(text).toContain('"url":"/old"');
    const s2 = await connect(await strait.port('strict'));
    const all2 = readAll(s2);
    s2.write('GET /old HTTP/1.0\r\n\r\n');
    expect((await all2).toString()).toMatch(/^HTTP\/1\.1 426 /);
  });

  it('closes a connection idle longer than common_http_protocol_options.idle_timeout', async () => {
    const s = await connect(await strait.port('idle'));
    const all = readAll(s);
    s.write('GET /one HTTP/1.1\r\nHost: x\r\n\r\n');
    // One answered request, then nothing: the proxy closes on its own.
    const text = (await all).toString();
    expect(text).toContain('"url":"/one"');
    await strait.waitStat('http.idle.downstream_cx_idle_timeout', (v) => v === 1);
  });

  it('closes a connection whose head trickles in slower than request_headers_timeout with 408', async () => {
    const s = await connect(port);
    const all = readAll(s);
    s.write('GET /slow HTTP/1.1\r\nHost: x\r\n');
    const text = (await all).toString();
    expect(text).toMatch(/^HTTP\/1\.1 408 /);
    await strait.waitStat('http.d.downstream_rq_header_timeout', (v) => v === 1);
  });
});

describe('http_connection_manager upgrades', () => {
  it('tunnels a WebSocket upgrade allowed by upgrade_configs and refuses others with 403', async () => {
    // An upstream that accepts the upgrade, then echoes bytes upper-cased (so the test sees it went through).
    const server = http.createServer((_req, res) => res.end('plain'));
    server.on('upgrade', (req, socket: net.Socket, head: Buffer) => {
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Seen-Upgrade: ${req.headers.upgrade}\r\n\r\n`);
      if (head.length) socket.write(head.toString().toUpperCase());
      socket.on('data', (d: Buffer) => socket.write(d.toString().toUpperCase()));
      socket.on('end', () => socket.end());
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const upPort = (server.address() as net.AddressInfo).port;
    const strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('ws', simpleRoutes('up'), '          upgrade_configs: [{ upgrade_type: websocket }]\n')}
${hcmListener('nows', simpleRoutes('up'))}
  clusters:
${staticCluster('up', [upPort])}`,
      { engine: ENGINES[0] },
    );
    try {
      const s = await connect(await strait.port('ws'));
      let got = '';
      const sawEcho = new Promise<void>((resolve) =>
        s.on('data', (d: Buffer) => {
          got += d.toString();
          if (got.includes('HELLO TUNNEL')) resolve();
        }),
      );
      // Bytes right behind the head belong to the tunnel too.
      s.write('GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nhello ');
      await new Promise((r) => setTimeout(r, 50));
      s.write('tunnel');
      await sawEcho;
      expect(got).toMatch(/^HTTP\/1\.1 101 Switching Protocols\r\n/);
      expect(got.toLowerCase()).toContain('x-seen-upgrade: websocket');
      s.destroy();
      const refused = await connect(await strait.port('nows'));
      const first = new Promise<string>((r) => refused.once('data', (d: Buffer) => r(d.toString())));
      refused.write('GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
      expect(await first).toMatch(/^HTTP\/1\.1 403 /);
      refused.destroy();
    } finally {
      await strait.stop();
      server.closeAllConnections();
      server.close();
    }
  });
});
