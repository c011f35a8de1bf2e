// envoy.filters.http.compressor end to end: gzip and brotli filters in one chain, over HTTP/1.1
// (undici) and h2c (node:http2) downstream on both engines, with an HTTP/1.1 upstream (fixed
// length and chunked bodies) and an HTTP/2 one. Compressed bodies are decompressed and compared
// with the upstream's bytes; what must pass untouched does, byte for byte.
import http from 'node:http';
import http2 from 'node:http2';
import type net from 'node:net';
import zlib from 'node:zlib';
import { Client } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hcmListener } from '../helpers/http.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

/** ~200 KiB of compressible but not trivial text. */
const TEXT = Buffer.from(Array.from({ length: 4000 }, (_, i) => `line ${i} ${(i * 7919) % 1000} the quick brown fox\n`).join(''));
const IMAGE = Buffer.alloc(4096, 0x89);
const GZIPPED = zlib.gzipSync(Buffer.from('already encoded '.repeat(100)));

/** 4 MiB of text that compresses only so far (base64 of pseudo-random bytes): many output chunks. */
const BIG = Buffer.from(
  Buffer.from(Array.from({ length: 3 * 1024 * 1024 }, (_, i) => (i * 2654435761) >>> 24)).toString('base64'),
);
/** Upstream responses to /slow that ended because the proxy let go of them. */
let slowClosed = 0;

/** The HTTP/1.1 upstream: one path per case; /ae answers with the Accept-Encoding it got. */
function h1Handler(req: http.IncomingMessage, res: http.ServerResponse): void {
  const url = req.url ?? '/';
  req.resume();
  if (url.startsWith('/text')) {
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': TEXT.length, etag: '"v1"', vary: 'Origin' });
    res.end(req.method === 'HEAD' ? undefined : TEXT);
  } else if (url.startsWith('/stream')) {
    // Chunked, in pieces that arrive in separate reads.
    res.writeHead(200, { 'content-type': 'text/html' });
    let i = 0;
    const step = 16 * 1024;
    const next = () => {
      if (i >= TEXT.length) return res.end();
      res.write(TEXT.subarray(i, (i += step)));
      setTimeout(next, 2);
    };
    next();
  } else if (url.startsWith('/small')) {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 10 });
    res.end('0123456789');
  } else if (url.startsWith('/image')) {
    res.writeHead(200, { 'content-type': 'image/png', 'content-length': IMAGE.length });
    res.end(IMAGE);
  } else if (url.startsWith('/encoded')) {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-encoding': 'gzip', 'content-length': GZIPPED.length });
    res.end(GZIPPED);
  } else if (url.startsWith('/notransform')) {
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'public, no-transform', 'content-length': TEXT.length });
    res.end(TEXT);
  } else if (url.startsWith('/304')) {
    res.writeHead(304, { etag: '"v1"' });
    res.end();
  } else if (url.startsWith('/slow')) {
    // Never ends on its own: a chunk every few milliseconds until the client goes away.
    res.writeHead(200, { 'content-type': 'text/plain' });
    const t = setInterval(() => res.write(TEXT.subarray(0, 4096)), 5);
    res.on('close', () => {
      clearInterval(t);
      slowClosed++;
    });
  } else if (url.startsWith('/big')) {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': BIG.length });
    res.end(BIG);
  } else if (url.startsWith('/ae')) {
    const body = Buffer.from(`ae=${req.headers['accept-encoding'] ?? '(none)'}\n`.repeat(20));
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
    res.end(body);
  } else {
    res.writeHead(404);
    res.end();
  }
}

const COMP = (name: string, lib: string, extra = '') => `          - name: envoy.filters.http.compressor.${name}
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor
              compressor_library: { name: ${name}, typed_config: { "@type": type.googleapis.com/envoy.extensions.compression.${lib} } }
              response_direction_config: { common_config: { content_type: [text/plain, text/html] }${extra} }
`;

const FILTERS = COMP('br', 'brotli.compressor.v3.Brotli', ', remove_accept_encoding_header: true') + COMP('gzip', 'gzip.compressor.v3.Gzip', ', remove_accept_encoding_header: true');

const ROUTES = `name: local
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/off" }
    route: { cluster: up, prefix_rewrite: "/text" }
    typed_per_filter_config:
      envoy.filters.http.compressor.gzip: { "@type": type.googleapis.com/envoy.extensions.filters.http.compressor.v3.CompressorPerRoute, disabled: true }
      envoy.filters.http.compressor.br: { "@type": type.googleapis.com/envoy.extensions.filters.http.compressor.v3.CompressorPerRoute, disabled: true }
  - match: { prefix: "/h2/" }
    route: { cluster: h2up, prefix_rewrite: "/" }
  - match: { prefix: "/" }
    route: { cluster: up }`;

interface Res {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

function decode(r: Res): Buffer {
  const ce = r.headers['content-encoding'];
  if (ce === 'gzip') return zlib.gunzipSync(r.body);
  if (ce === 'br') return zlib.brotliDecompressSync(r.body);
  return r.body;
}

async function viaUndici(client: Client, method: string, path: string, ae: string | null): Promise<Res> {
  const r = await client.request({ method: method as 'GET', path, headers: ae === null ? {} : { 'accept-encoding': ae } });
  const body = Buffer.from(await r.body.arrayBuffer());
  return { status: r.statusCode, headers: r.headers as Res['headers'], body };
}

function viaH2(session: http2.ClientHttp2Session, method: string, path: string, ae: string | null): Promise<Res> {
  return new Promise((resolve, reject) => {
    const rq = session.request({ ':method': method, ':path': path, ':authority': 'svc', ...(ae === null ? {} : { 'accept-encoding': ae }) });
    let h: http2.IncomingHttpHeaders = {};
    const parts: Buffer[] = [];
    rq.on('response', (x) => (h = x));
    rq.on('data', (d: Buffer) => parts.push(d));
    rq.on('end', () => resolve({ status: Number(h[':status']), headers: h as Res['headers'], body: Buffer.concat(parts) }));
    rq.on('error', reject);
    rq.end();
  });
}

const PAIRS = ENGINES.map((e) => [e, e] as const);

describe.each(PAIRS)('envoy.filters.http.compressor on --io-engine %s --h2-engine %s', (engine, h2engine) => {
  let up: http.Server;
  let h2up: http2.Http2Server;
  let strait: StraitProcess;
  let port = 0;
  let client: Client;
  let connects = 0;
  let session: http2.ClientHttp2Session;

  beforeAll(async () => {
    up = http.createServer(h1Handler);
    await new Promise<void>((r) => up.listen(0, '127.0.0.1', r));
    h2up = http2.createServer();
    h2up.on('stream', (s, h) => {
      if (h[':method'] === 'HEAD') {
        s.respond({ ':status': 200, 'content-type': 'text/plain', 'content-length': String(TEXT.length) }, { endStream: true });
        return;
      }
      // No content-length, written in pieces: DATA frames as they come.
      s.respond({ ':status': 200, 'content-type': 'text/plain' });
      s.write(TEXT.subarray(0, 50_000));
      setTimeout(() => s.end(TEXT.subarray(50_000)), 5);
    });
    await new Promise<void>((r) => h2up.listen(0, '127.0.0.1', r));
    const h2opts = '    typed_extension_protocol_options: { envoy.extensions.upstreams.http.v3.HttpProtocolOptions: { "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions, explicit_http_config: { http2_protocol_options: {} } } }\n';
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('web', ROUTES, '', FILTERS)}
  clusters:
${staticCluster('up', [(up.address() as net.AddressInfo).port])}${staticCluster('h2up', [(h2up.address() as net.AddressInfo).port], h2opts)}`,
      { engine, args: ['--h2-engine', h2engine] },
    );
    port = await strait.port('web');
    client = new Client(`http://127.0.0.1:${port}`, { pipelining: 1 });
    client.on('connect', () => connects++);
    session = http2.connect(`http://127.0.0.1:${port}`);
  }, 30_000);

  afterAll(async () => {
    session?.close();
    await client?.close();
    await strait?.stop();
    await new Promise<void>((r) => (up ? up.close(() => r()) : r()));
    await new Promise<void>((r) => (h2up ? h2up.close(() => r()) : r()));
  });

  const sends = [
    ['HTTP/1.1', (m: string, p: string, ae: string | null) => viaUndici(client, m, p, ae)],
    ['h2c', (m: string, p: string, ae: string | null) => viaH2(session, m, p, ae)],
  ] as const;

  describe.each(sends)('over %s', (proto, send) => {
    it('gzips a large text response to exactly the upstream bytes, with vary, no length and a weakened etag', async () => {
      const r = await send('GET', '/text', 'gzip');
      expect(r.status).toBe(200);
      expect(r.headers['content-encoding']).toBe('gzip');
      expect(r.headers['content-length']).toBeUndefined();
      if (proto === 'HTTP/1.1') expect(r.headers['transfer-encoding']).toBe('chunked');
      expect(String(r.headers.vary).toLowerCase()).toBe('origin, accept-encoding');
      expect(r.headers.etag).toBe('W/"v1"');
      expect(r.body.length).toBeLessThan(TEXT.length / 3);
      expect(decode(r).equals(TEXT)).toBe(true);
    });

    it("picks brotli when the client prefers it, and follows the client's q-values", async () => {
      const br = await send('GET', '/text', 'br, gzip');
      expect(br.headers['content-encoding']).toBe('br');
      expect(decode(br).equals(TEXT)).toBe(true);
      const gz = await send('GET', '/text', 'br;q=0.5, gzip;q=0.8');
      expect(gz.headers['content-encoding']).toBe('gzip');
      expect(decode(gz).equals(TEXT)).toBe(true);
      // `*` is the first filter of the chain (brotli); identity;q=0 alone leaves nothing to choose.
      expect((await send('GET', '/text', '*')).headers['content-encoding']).toBe('br');
      const none = await send('GET', '/text', 'deflate');
      expect(none.headers['content-encoding']).toBeUndefined();
      expect(none.body.equals(TEXT)).toBe(true);
      // Compressible, so Vary says another Accept-Encoding may get another body.
      expect(String(none.headers.vary).toLowerCase()).toContain('accept-encoding');
    });

    it('compresses a chunked upstream body streamed in pieces, and an HTTP/2 upstream body', async () => {
      const s = await send('GET', '/stream', 'gzip');
      expect(s.headers['content-encoding']).toBe('gzip');
      expect(decode(s).equals(TEXT)).toBe(true);
      const h2 = await send('GET', '/h2/x', 'br');
      expect(h2.headers['content-encoding']).toBe('br');
      expect(decode(h2).equals(TEXT)).toBe(true);
    });

    it('leaves small, image, already encoded, no-transform, HEAD and 304 responses untouched', async () => {
      const small = await send('GET', '/small', 'gzip');
      expect(small.headers['content-encoding']).toBeUndefined();
      expect(small.body.toString()).toBe('0123456789');
      const img = await send('GET', '/image', 'gzip');
      expect(img.headers['content-encoding']).toBeUndefined();
      expect(img.body.equals(IMAGE)).toBe(true);
      expect(img.headers.vary).toBeUndefined();
      const enc = await send('GET', '/encoded', 'gzip, br');
      expect(enc.headers['content-encoding']).toBe('gzip');
      expect(enc.body.equals(GZIPPED)).toBe(true);
      const nt = await send('GET', '/notransform', 'gzip');
      expect(nt.headers['content-encoding']).toBeUndefined();
      expect(nt.body.equals(TEXT)).toBe(true);
      const head = await send('HEAD', '/text', 'gzip');
      expect(head.status).toBe(200);
      expect(head.headers['content-encoding']).toBeUndefined();
      expect(head.headers['content-length']).toBe(String(TEXT.length));
      const h2head = await send('HEAD', '/h2/x', 'gzip');
      expect(h2head.headers['content-encoding']).toBeUndefined();
      const nm = await send('GET', '/304', 'gzip');
      expect(nm.status).toBe(304);
      expect(nm.headers['content-encoding']).toBeUndefined();
      expect(nm.body.length).toBe(0);
    });

    it('takes Accept-Encoding off the upstream request (remove_accept_encoding_header)', async () => {
      const r = await send('GET', '/ae', 'gzip');
      expect(r.headers['content-encoding']).toBe('gzip');
      expect(decode(r).toString()).toContain('ae=(none)');
    });

    it('does not compress on a route whose CompressorPerRoute says disabled', async () => {
      const r = await send('GET', '/off', 'gzip, br');
      expect(r.headers['content-encoding']).toBeUndefined();
      expect(r.body.equals(TEXT)).toBe(true);
    });
  });

  it('keeps an HTTP/1.1 connection alive across compressed responses', async () => {
    const before = connects;
    for (let i = 0; i < 3; i++) {
      const r = await viaUndici(client, 'GET', i === 1 ? '/stream' : '/text', 'gzip');
      expect(decode(r).equals(TEXT)).toBe(true);
      const plain = await viaUndici(client, 'GET', '/small', null);
      expect(plain.body.toString()).toBe('0123456789');
    }
    expect(connects).toBe(before);
  });

  it('delivers a large compressed body to a client that stops reading for a while (backpressure)', async () => {
    for (const proto of ['HTTP/1.1', 'h2c'] as const) {
      const body = await new Promise<Buffer>((resolve, reject) => {
        const parts: Buffer[] = [];
        if (proto === 'h2c') {
          const rq = session.request({ ':path': '/big', ':authority': 'svc', 'accept-encoding': 'gzip' });
          rq.on('data', (d: Buffer) => parts.push(d));
          rq.on('end', () => resolve(zlib.gunzipSync(Buffer.concat(parts))));
          rq.on('error', reject);
          rq.pause();
          setTimeout(() => rq.resume(), 300);
          rq.end();
          return;
        }
        const rq = http.get({ host: '127.0.0.1', port, path: '/big', headers: { 'accept-encoding': 'gzip' }, agent: false }, (res) => {
          expect(res.headers['content-encoding']).toBe('gzip');
          res.pause();
          setTimeout(() => res.resume(), 300);
          res.on('data', (d: Buffer) => parts.push(d));
          res.on('end', () => resolve(zlib.gunzipSync(Buffer.concat(parts))));
        });
        rq.on('error', reject);
      });
      expect(body.equals(BIG)).toBe(true);
    }
  });

  it('destroys the compressor when the client goes away mid-body, and lets go of the upstream', async () => {
    const unc = 'http.web.compressor.gzip.gzip.response.total_uncompressed_bytes';
    for (const proto of ['HTTP/1.1', 'h2c'] as const) {
      const closed = slowClosed;
      const before = (await strait.stat(unc)) ?? 0;
      await new Promise<void>((resolve, reject) => {
        if (proto === 'h2c') {
          const rq = session.request({ ':path': '/slow', ':authority': 'svc', 'accept-encoding': 'gzip' });
          rq.once('data', () => {
            rq.close(http2.constants.NGHTTP2_CANCEL);
            resolve();
          });
          rq.on('error', reject);
          rq.end();
          return;
        }
        const rq = http.get({ host: '127.0.0.1', port, path: '/slow', headers: { 'accept-encoding': 'gzip' }, agent: false }, (res) => {
          expect(res.headers['content-encoding']).toBe('gzip');
          res.once('data', () => {
            rq.destroy();
            resolve();
          });
        });
        rq.on('error', () => {});
      });
      // The zlib stream counts what it took in when it closes: only a destroy closes this one.
      expect(await strait.waitStat(unc, (v) => v > before)).toBeGreaterThan(before);
      for (let i = 0; i < 200 && slowClosed === closed; i++) await new Promise((r) => setTimeout(r, 25));
      expect(slowClosed).toBe(closed + 1);
    }
    // The listener still serves, compressed.
    expect(decode(await viaUndici(client, 'GET', '/text', 'gzip')).equals(TEXT)).toBe(true);
  });

  it("counts Envoy's stats per filter", async () => {
    const g = 'http.web.compressor.gzip.gzip.response';
    const b = 'http.web.compressor.br.brotli.response';
    const before = { gz: (await strait.stat(`${g}.compressed`)) ?? 0, over: (await strait.stat(`${g}.header_compressor_overshadowed`)) ?? 0, br: (await strait.stat(`${b}.compressed`)) ?? 0 };
    await viaUndici(client, 'GET', '/text', 'br, gzip');
    expect(await strait.stat(`${b}.compressed`)).toBe(before.br + 1);
    expect(await strait.stat(`${g}.header_compressor_overshadowed`)).toBe(before.over + 1);
    expect(await strait.stat(`${g}.compressed`)).toBe(before.gz);
    const used = (await strait.stat(`${g}.header_compressor_used`)) ?? 0;
    const unc = (await strait.stat(`${g}.total_uncompressed_bytes`)) ?? 0;
    const comp = (await strait.stat(`${g}.total_compressed_bytes`)) ?? 0;
    const r = await viaUndici(client, 'GET', '/text', 'gzip');
    expect(await strait.stat(`${g}.header_compressor_used`)).toBe(used + 1);
    expect(await strait.waitStat(`${g}.total_uncompressed_bytes`, (v) => v >= unc + TEXT.length)).toBe(unc + TEXT.length);
    expect(await strait.stat(`${g}.total_compressed_bytes`)).toBe(comp + r.body.length);
    expect(await strait.stat(`${g}.content_length_too_small`)).toBeGreaterThan(0);
    expect(await strait.stat(`${g}.not_compressed`)).toBeGreaterThan(0);
    const na = (await strait.stat(`${g}.no_accept_header`)) ?? 0;
    await viaUndici(client, 'GET', '/text', null);
    expect(await strait.stat(`${g}.no_accept_header`)).toBe(na + 1);
  });
});
