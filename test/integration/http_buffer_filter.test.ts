import fs from 'node:fs';
import http2 from 'node:http2';
import path from 'node:path';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hcmListener, httpUpstream, simpleRoutes, type Echo, type TestUpstream } from '../helpers/http.js';
import { ADMIN, ENGINES, runCli, startStrait, staticCluster, tmpDir, type StraitProcess } from '../helpers/strait.js';

const MAX = 1024;
const BUFFER = (max: unknown) => `          - name: envoy.filters.http.buffer
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer${max === undefined ? '' : `, max_request_bytes: ${max}`} }
`;

/** An HCM listener whose HTTP filters are the buffer filter then the router. */
function bufferListener(name: string, max: unknown, cluster: string, routes = simpleRoutes(cluster)): string {
  return hcmListener(name, routes, '', BUFFER(max));
}

const PER_ROUTE = 'envoy.filters.http.buffer: { "@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute';
/** `/nobuf` turns the filter off, `/bigbuf` raises its limit to 4 x MAX, the rest use the filter's. */
const ROUTES = `name: local
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/nobuf" }
    route: { cluster: up }
    typed_per_filter_config: { ${PER_ROUTE}, disabled: true } }
  - match: { prefix: "/bigbuf" }
    route: { cluster: up }
    typed_per_filter_config: { ${PER_ROUTE}, buffer: { max_request_bytes: ${4 * MAX} } } }
  - match: { prefix: "/" }
    route: { cluster: up }`;

/** A body sent in pieces, so the client frames it chunked (no Content-Length). */
function pieces(total: number, size = 256): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= total) return this.push(null);
      const n = Math.min(size, total - sent);
      sent += n;
      this.push(Buffer.alloc(n, 0x61));
    },
  });
}

describe.each(ENGINES.slice(0, 1))('envoy.filters.http.buffer on the %s engine', (engine) => {
  let up: TestUpstream;
  let strait: StraitProcess;
  let base: string;
  let port: number;

  beforeAll(async () => {
    up = await httpUpstream('up');
    strait = await startStrait(`${ADMIN}static_resources:\n  listeners:\n${bufferListener('buf', MAX, 'up', ROUTES)}  clusters:\n${staticCluster('up', [up.port])}`, { engine });
    port = await strait.port('buf');
    base = `http://127.0.0.1:${port}`;
  });

  afterAll(async () => {
    await strait?.stop();
    await up?.close();
  });

  it('passes requests without a body straight on (HTTP/1.1 and HTTP/2)', async () => {
    const r = await request(`${base}/get`);
    expect(r.statusCode).toBe(200);
    expect(((await r.body.json()) as Echo).method).toBe('GET');
    const session = http2.connect(base);
    session.on('error', () => {});
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const s = session.request({ ':method': 'GET', ':path': '/h2-get' });
        s.on('response', (h) => resolve(Number(h[':status'])));
        s.on('error', reject);
        s.resume();
      });
      expect(status).toBe(200);
    } finally {
      session.close();
    }
  });

  it('forwards a chunked body within the limit whole', async () => {
    const r = await request(`${base}/ok`, { method: 'POST', body: pieces(MAX) });
    expect(r.statusCode).toBe(200);
    const echo = (await r.body.json()) as Echo;
    expect(echo.bodyLength).toBe(MAX);
  });

  it('answers 413 at once when Content-Length is over the limit; nothing reaches the upstream', async () => {
    const before = up.requests;
    const r = await request(`${base}/big`, { method: 'POST', body: Buffer.alloc(MAX + 1, 0x62) });
    expect(r.statusCode).toBe(413);
    expect(await r.body.text()).toBe('Payload Too Large');
    expect(up.requests).toBe(before);
  });

  it('answers 413 when a chunked body grows past the limit; nothing reaches the upstream', async () => {
    const before = up.requests;
    const r = await request(`${base}/big-chunked`, { method: 'POST', body: pieces(4 * MAX) }).catch((e: Error) => e);
    // The client may still be sending when the answer comes; it must be a 413 if it reads one.
    if (!(r instanceof Error)) {
      expect(r.statusCode).toBe(413);
      await r.body.text();
    }
    expect(await strait.waitStat('http.buf.downstream_rq_too_large', (v) => v >= 2)).toBeGreaterThanOrEqual(2);
    expect(up.requests).toBe(before);
  });

  it('BufferPerRoute: disabled on one route, a larger limit on another', async () => {
    const off = await request(`${base}/nobuf`, { method: 'POST', body: pieces(3 * MAX) });
    expect(off.statusCode).toBe(200);
    expect(((await off.body.json()) as Echo).bodyLength).toBe(3 * MAX);
    const big = await request(`${base}/bigbuf`, { method: 'POST', body: pieces(3 * MAX) });
    expect(big.statusCode).toBe(200);
    expect(((await big.body.json()) as Echo).bodyLength).toBe(3 * MAX);
    const over = await request(`${base}/bigbuf`, { method: 'POST', body: Buffer.alloc(4 * MAX + 1, 0x61) });
    expect(over.statusCode).toBe(413);
    await over.body.text();
  });

  it('HTTP/2: answers 413 to a streamed body over the limit', async () => {
    const before = up.requests;
    const session = http2.connect(base);
    session.on('error', () => {});
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const s = session.request({ ':method': 'POST', ':path': '/h2-big' });
        s.on('response', (h) => resolve(Number(h[':status'])));
        s.on('error', reject);
        s.write(Buffer.alloc(MAX, 0x63));
        s.write(Buffer.alloc(MAX, 0x63));
        s.end();
      });
      expect(status).toBe(413);
    } finally {
      session.close();
    }
    expect(up.requests).toBe(before);
  });

  it('HTTP/2: forwards a body within the limit once complete', async () => {
    const session = http2.connect(base);
    session.on('error', () => {});
    try {
      const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
        const s = session.request({ ':method': 'POST', ':path': '/h2-ok' });
        let status = 0;
        let text = '';
        s.on('response', (h) => (status = Number(h[':status'])));
        s.on('data', (d: Buffer) => (text += d.toString()));
        s.on('end', () => resolve({ status, text }));
        s.on('error', reject);
        s.write(Buffer.alloc(100, 0x63));
        s.end(Buffer.alloc(100, 0x63));
      });
      expect(status).toBe(200);
      expect((JSON.parse(text) as Echo).bodyLength).toBe(200);
    } finally {
      session.close();
    }
  });
});

describe('envoy.filters.http.buffer config', () => {
  const dir = tmpDir();
  it.each([
    ['missing max_request_bytes', undefined, 'max_request_bytes: is required'],
    ['zero max_request_bytes', 0, 'max_request_bytes: must be an integer from 1'],
  ])('rejects %s with its field path', async (what, max, fragment) => {
    const file = path.join(dir, `${what.replace(/\W+/g, '_')}.yaml`);
    fs.writeFileSync(file, `static_resources:\n  listeners:\n${bufferListener('l', max, 'a')}  clusters:\n${staticCluster('a', [9])}`);
    const r = await runCli(['--config', file, '--mode', 'validate']);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain('http_filters[0].typed_config.max_request_bytes');
    expect(r.stderr).toContain(fragment.split(': ')[1]);
  });
});
