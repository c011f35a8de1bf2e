import http from 'node:http';
import http2 from 'node:http2';
import type net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { hcmListener, httpUpstream, type Echo, type TestUpstream } from '../helpers/http.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

interface Seen {
  method: string;
  url: string;
  host: string;
  body: string;
}

/** The shadow upstream: records what it gets and answers 500, which nobody must ever see. */
async function shadowUpstream(): Promise<{ port: number; seen: Seen[]; next(pred: (s: Seen) => boolean): Promise<Seen>; close(): Promise<void> }> {
  const seen: Seen[] = [];
  const waiters: Array<{ pred: (s: Seen) => boolean; resolve: (s: Seen) => void }> = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    req.on('end', () => {
      const s = { method: req.method!, url: req.url!, host: String(req.headers.host), body };
      seen.push(s);
      for (const w of waiters.splice(0)) {
        if (w.pred(s)) w.resolve(s);
        else waiters.push(w);
      }
      res.writeHead(500, { 'x-upstream': 'shadow' });
      res.end('shadow says no');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    seen,
    next: (pred) => {
      const hit = seen.find(pred);
      return hit ? Promise.resolve(hit) : new Promise((resolve) => waiters.push({ pred, resolve }));
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe.each(ENGINES.slice(0, 1))('http_connection_manager request_mirror_policies on the %s engine', (engine) => {
  let primary: TestUpstream;
  let shadow: Awaited<ReturnType<typeof shadowUpstream>>;
  let strait: StraitProcess;
  let port: number;

  beforeAll(async () => {
    primary = await httpUpstream('primary');
    shadow = await shadowUpstream();
    const rc = `name: local
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/never" }
    route: { cluster: primary, request_mirror_policies: [{ cluster: shadow, runtime_fraction: { default_value: { numerator: 0 } } }] }
  - match: { prefix: "/" }
    route: { cluster: primary, request_mirror_policies: [{ cluster: shadow }] }`;
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('mir', rc)}
  clusters:
${staticCluster('primary', [primary.port])}
${staticCluster('shadow', [shadow.port])}`,
      { engine },
    );
    port = await strait.port('mir');
  });

  afterAll(async () => {
    await strait?.stop();
    await primary?.close();
    await shadow?.close();
  });

  it('copies an HTTP/1.1 request with its body to the shadow cluster, host suffixed -shadow; the client sees only the primary', async () => {
    const r = await request(`http://127.0.0.1:${port}/orders?id=7`, { method: 'POST', body: 'hello mirror', headers: { 'content-type': 'text/plain' } });
    expect(r.statusCode).toBe(200);
    expect(r.headers['x-upstream']).toBe('primary');
    const echo = (await r.body.json()) as Echo;
    expect(echo.headers.host).toBe(`127.0.0.1:${port}`);
    const s = await shadow.next((x) => x.url === '/orders?id=7');
    expect(s).toEqual({ method: 'POST', url: '/orders?id=7', host: `127.0.0.1-shadow:${port}`, body: 'hello mirror' });
  });

  it('copies a chunked HTTP/1.1 body without its framing', async () => {
    async function* parts() {
      yield Buffer.from('part-1;');
      yield Buffer.from('part-2');
    }
    const r = await request(`http://127.0.0.1:${port}/chunked`, { method: 'POST', body: parts() });
    expect(r.statusCode).toBe(200);
    expect(((await r.body.json()) as Echo).bodyLength).toBe(13);
    expect((await shadow.next((x) => x.url === '/chunked')).body).toBe('part-1;part-2');
  });

  it('copies HTTP/2 requests too', async () => {
    const s = http2.connect(`http://127.0.0.1:${port}`);
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const req = s.request({ ':method': 'PUT', ':path': '/h2' });
        let st = 0;
        req.on('response', (h) => (st = Number(h[':status'])));
        req.on('data', () => {});
        req.on('end', () => resolve(st));
        req.on('error', reject);
        req.end('from h2');
      });
      expect(status).toBe(200);
    } finally {
      s.close();
    }
    expect(await shadow.next((x) => x.url === '/h2')).toEqual({ method: 'PUT', url: '/h2', host: `127.0.0.1-shadow:${port}`, body: 'from h2' });
  });

  it('samples by runtime_fraction: 0% never mirrors', async () => {
    const r = await request(`http://127.0.0.1:${port}/never`);
    expect(r.statusCode).toBe(200);
    await r.body.text();
    // A later mirrored request arrives after anything the first could have sent.
    const again = await request(`http://127.0.0.1:${port}/after-never`);
    await again.body.text();
    await shadow.next((x) => x.url === '/after-never');
    expect(shadow.seen.some((x) => x.url === '/never')).toBe(false);
  });
});

// Virtual host and route configuration request_mirror_policies (used to be refused): the most
// specific non-empty list applies whole, as in Envoy: a route's own, else its virtual host's,
// else the route configuration's.
describe('request_mirror_policies on virtual hosts and route configurations', () => {
  let primary: TestUpstream;
  let shadow: Awaited<ReturnType<typeof shadowUpstream>>;
  let strait: StraitProcess;
  let port: number;

  beforeAll(async () => {
    primary = await httpUpstream('primary');
    shadow = await shadowUpstream();
    const rc = `name: local
request_mirror_policies: [{ cluster: shadow }]
virtual_hosts:
- name: vh
  domains: ["vh.test"]
  request_mirror_policies: [{ cluster: shadow, disable_shadow_host_suffix_append: true }]
  routes:
  - match: { prefix: "/own" }
    route: { cluster: primary, request_mirror_policies: [{ cluster: shadow, runtime_fraction: { default_value: { numerator: 0 } } }] }
  - match: { prefix: "/by-header" }
    route: { cluster: primary, request_mirror_policies: [{ cluster_header: x-mirror-cluster }] }
  - match: { prefix: "/" }
    route: { cluster: primary }
- name: other
  domains: ["*"]
  routes:
  - match: { prefix: "/" }
    route: { cluster: primary }`;
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('mir', rc)}
  clusters:
${staticCluster('primary', [primary.port])}
${staticCluster('shadow', [shadow.port])}`,
      { engine: ENGINES[0] },
    );
    port = await strait.port('mir');
  });

  afterAll(async () => {
    await strait?.stop();
    await primary?.close();
    await shadow?.close();
  });

  const get = async (host: string, path: string, headers: Record<string, string> = {}) => {
    const r = await request(`http://127.0.0.1:${port}${path}`, { headers: { host, ...headers } });
    await r.body.text();
    return r.statusCode;
  };

  it("a route without its own list takes its virtual host's, and one without either the route configuration's", async () => {
    expect(await get('vh.test', '/from-vhost')).toBe(200);
    // The virtual host's policy keeps the host as it is; the route configuration's appends -shadow.
    expect((await shadow.next((x) => x.url === '/from-vhost')).host).toBe('vh.test');
    expect(await get('other.test', '/from-rc')).toBe(200);
    expect((await shadow.next((x) => x.url === '/from-rc')).host).toBe('other.test-shadow');
  });

  it("a route's own list replaces the inherited one whole", async () => {
    expect(await get('vh.test', '/own')).toBe(200);
    // A later mirrored request arrives after anything the first could have sent.
    expect(await get('vh.test', '/after-own')).toBe(200);
    await shadow.next((x) => x.url === '/after-own');
    expect(shadow.seen.some((x) => x.url === '/own')).toBe(false);
  });

  it('cluster_header: the request names the shadow cluster; none, or one that does not exist, is not shadowed', async () => {
    expect(await get('vh.test', '/by-header/none')).toBe(200);
    expect(await get('vh.test', '/by-header/unknown', { 'x-mirror-cluster': 'nope' })).toBe(200);
    expect(await get('vh.test', '/by-header/named', { 'x-mirror-cluster': 'shadow' })).toBe(200);
    expect((await shadow.next((x) => x.url === '/by-header/named')).host).toBe('vh.test-shadow');
    expect(shadow.seen.some((x) => x.url === '/by-header/none' || x.url === '/by-header/unknown')).toBe(false);
  });
});
