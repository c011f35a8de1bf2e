// envoy.filters.http.cors with real policies: a virtual host's CorsPolicy, a route's overriding
// some of its settings, the older `cors` fields on another virtual host, over HTTP/1.1 and h2c
// on both engines. Preflights answered by Strait never reach the upstream (counted there).
import http from 'node:http';
import http2 from 'node:http2';
import type net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { h2cRequest, hcmListener, httpUpstream, type TestUpstream } from '../helpers/http.js';
import { deadPort } from '../helpers/net.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

const POLICY = '"@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy';
const APP = 'https://app.example';

const ROUTES = `name: local
virtual_hosts:
- name: web
  domains: ["*"]
  typed_per_filter_config:
    envoy.filters.http.cors:
      ${POLICY}
      allow_origin_string_match: [ { exact: "${APP}" }, { safe_regex: { regex: "https://[a-z]+\\\\.trusted\\\\.example" } } ]
      allow_methods: "GET,POST"
      allow_headers: "content-type,x-token"
      expose_headers: "x-upstream"
      max_age: "600"
      allow_credentials: true
  routes:
  - match: { prefix: "/route" }
    route: { cluster: up }
    response_headers_to_add: [ { header: { key: access-control-allow-origin, value: "*" } } ]
    typed_per_filter_config:
      envoy.filters.http.cors:
        ${POLICY}
        allow_methods: "PUT"
        max_age: "30"
        allow_credentials: false
        expose_headers: "x-route-exposed"
        forward_not_matching_preflights: false
  - match: { prefix: "/off" }
    route: { cluster: up }
    typed_per_filter_config:
      envoy.filters.http.cors: { ${POLICY}, filter_enabled: { default_value: { numerator: 0 } } }
  - match: { prefix: "/fail" }
    route: { cluster: dead }
  - match: { prefix: "/h2up" }
    route: { cluster: h2up }
  - match: { prefix: "/" }
    route: { cluster: up }
- name: legacy
  domains: ["legacy.test"]
  cors:
    allow_origin_string_match: [ { exact: "https://legacy.example" } ]
    allow_methods: "GET"
    expose_headers: "x-legacy"
  routes:
  - match: { prefix: "/" }
    route: { cluster: up, cors: { allow_credentials: true, max_age: "5" } }`;

const FILTERS = `          - name: envoy.filters.http.cors
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors }
`;

interface Res {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function h1(port: number, method: string, path: string, headers: Record<string, string>, host = 'svc'): Promise<Res> {
  return new Promise((resolve, reject) => {
    const rq = http.request({ host: '127.0.0.1', port, method, path, headers: { host, ...headers }, agent: false }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    rq.on('error', reject);
    rq.end();
  });
}

function h2c(port: number, method: string, path: string, headers: Record<string, string>, host = 'svc'): Promise<Res> {
  return h2cRequest(port, { method, path, headers, authority: host });
}

/** An h2c upstream that answers every request 200 with `x-upstream: h2up`, counting them. */
async function h2Upstream(): Promise<{ port: number; readonly requests: number; close(): Promise<void> }> {
  let requests = 0;
  const server = http2.createServer();
  server.on('stream', (s) => {
    requests++;
    s.respond({ ':status': 200, 'x-upstream': 'h2up', 'content-type': 'text/plain' });
    s.end('h2 ok');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    get requests() {
      return requests;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

const CORS_NAMES = ['access-control-allow-origin', 'access-control-allow-credentials', 'access-control-allow-methods', 'access-control-allow-headers', 'access-control-max-age', 'access-control-expose-headers'];
const corsOf = (r: Res): Record<string, string> => Object.fromEntries(CORS_NAMES.filter((n) => r.headers[n] !== undefined).map((n) => [n, String(r.headers[n])]));

const PAIRS = ENGINES.map((e) => [e, e] as const);

describe.each(PAIRS)('envoy.filters.http.cors on --io-engine %s --h2-engine %s', (engine, h2engine) => {
  let up: TestUpstream;
  let h2up: Awaited<ReturnType<typeof h2Upstream>>;
  let strait: StraitProcess;
  let port = 0;

  beforeAll(async () => {
    up = await httpUpstream('up');
    h2up = await h2Upstream();
    const dead = await deadPort();
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('web', ROUTES, '', FILTERS)}
  clusters:
${staticCluster('up', [up.port])}${staticCluster('dead', [dead])}${staticCluster('h2up', [h2up.port], '    typed_extension_protocol_options: { envoy.extensions.upstreams.http.v3.HttpProtocolOptions: { "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions, explicit_http_config: { http2_protocol_options: {} } } }\n')}`,
      { engine, args: ['--h2-engine', h2engine] },
    );
    port = await strait.port('web');
  }, 30_000);

  afterAll(async () => {
    await strait?.stop();
    await up?.close();
    await h2up?.close();
  });

  describe.each([
    ['HTTP/1.1', h1],
    ['h2c', h2c],
  ] as const)('over %s', (_proto, send) => {
    it('answers a preflight from an allowed origin itself, with the virtual host policy', async () => {
      const before = up.requests;
      const r = await send(port, 'OPTIONS', '/api', { origin: APP, 'access-control-request-method': 'POST', 'access-control-request-headers': 'x-token' });
      expect(r.status).toBe(200);
      expect(corsOf(r)).toEqual({
        'access-control-allow-origin': APP,
        'access-control-allow-credentials': 'true',
        'access-control-allow-methods': 'GET,POST',
        'access-control-allow-headers': 'content-type,x-token',
        'access-control-max-age': '600',
        // Envoy's encoder side of the filter runs on its own reply too.
        'access-control-expose-headers': 'x-upstream',
      });
      expect(r.body).toBe('');
      // A regex origin matches as well.
      const re = await send(port, 'OPTIONS', '/api', { origin: 'https://ci.trusted.example', 'access-control-request-method': 'GET' });
      expect(re.headers['access-control-allow-origin']).toBe('https://ci.trusted.example');
      expect(up.requests).toBe(before);
    });

    it("takes the route's settings over the virtual host's, the rest from the virtual host", async () => {
      const before = up.requests;
      const r = await send(port, 'OPTIONS', '/route/x', { origin: APP, 'access-control-request-method': 'PUT' });
      expect(r.status).toBe(200);
      expect(corsOf(r)).toEqual({
        'access-control-allow-origin': APP,
        'access-control-allow-methods': 'PUT',
        'access-control-allow-headers': 'content-type,x-token',
        'access-control-max-age': '30',
        'access-control-expose-headers': 'x-route-exposed',
      });
      expect(up.requests).toBe(before);
    });

    it('forwards a preflight from an origin the policy does not allow, unless the route says not to', async () => {
      const before = up.requests;
      const fwd = await send(port, 'OPTIONS', '/api', { origin: 'https://evil.example', 'access-control-request-method': 'POST' });
      expect(fwd.status).toBe(200);
      expect(JSON.parse(fwd.body).method).toBe('OPTIONS');
      expect(corsOf(fwd)).toEqual({});
      expect(up.requests).toBe(before + 1);
      // forward_not_matching_preflights: false — answered here, without allow-origin.
      const held = await send(port, 'OPTIONS', '/route/x', { origin: 'https://evil.example', 'access-control-request-method': 'PUT' });
      expect(held.status).toBe(200);
      expect(held.headers['access-control-allow-origin']).toBeUndefined();
      expect(held.headers['access-control-allow-methods']).toBe('PUT');
      expect(up.requests).toBe(before + 1);
    });

    it("puts allow-origin, credentials and expose-headers on an allowed origin's upstream response", async () => {
      const r = await send(port, 'GET', '/api', { origin: APP });
      expect(r.status).toBe(200);
      expect(JSON.parse(r.body).method).toBe('GET');
      expect(corsOf(r)).toEqual({ 'access-control-allow-origin': APP, 'access-control-allow-credentials': 'true', 'access-control-expose-headers': 'x-upstream' });
      // After the route's own response_headers_to_add: its "*" is replaced by the echoed origin.
      const route = await send(port, 'POST', '/route/y', { origin: APP });
      expect(corsOf(route)).toEqual({ 'access-control-allow-origin': APP, 'access-control-expose-headers': 'x-route-exposed' });
      // An HTTP/2 upstream's response too.
      const h2 = await send(port, 'GET', '/h2up', { origin: APP });
      expect([h2.status, h2.body, h2.headers['x-upstream']]).toEqual([200, 'h2 ok', 'h2up']);
      expect(corsOf(h2)).toEqual({ 'access-control-allow-origin': APP, 'access-control-allow-credentials': 'true', 'access-control-expose-headers': 'x-upstream' });
    });

    it("puts them on the router's local reply after routing too", async () => {
      const r = await send(port, 'GET', '/fail', { origin: APP });
      expect(r.status).toBe(503);
      expect(corsOf(r)).toEqual({ 'access-control-allow-origin': APP, 'access-control-allow-credentials': 'true', 'access-control-expose-headers': 'x-upstream' });
    });

    it('adds nothing without an Origin or for an origin the policy does not allow', async () => {
      const none = await send(port, 'GET', '/api', {});
      expect(none.status).toBe(200);
      expect(corsOf(none)).toEqual({});
      const other = await send(port, 'GET', '/api', { origin: 'https://evil.example' });
      expect(corsOf(other)).toEqual({});
      // The route's own header is left as it was when the filter adds nothing.
      expect(corsOf(await send(port, 'GET', '/route/z', {}))).toEqual({ 'access-control-allow-origin': '*' });
    });

    it('does nothing on a route whose policy has filter_enabled at 0%', async () => {
      const before = up.requests;
      const r = await send(port, 'OPTIONS', '/off', { origin: APP, 'access-control-request-method': 'POST' });
      expect(JSON.parse(r.body).method).toBe('OPTIONS');
      expect(corsOf(r)).toEqual({});
      expect(up.requests).toBe(before + 1);
    });

    it('applies the older cors fields, the route action over its virtual host', async () => {
      const before = up.requests;
      const pre = await send(port, 'OPTIONS', '/x', { origin: 'https://legacy.example', 'access-control-request-method': 'GET' }, 'legacy.test');
      expect(corsOf(pre)).toEqual({
        'access-control-allow-origin': 'https://legacy.example',
        'access-control-allow-credentials': 'true',
        'access-control-allow-methods': 'GET',
        'access-control-max-age': '5',
        'access-control-expose-headers': 'x-legacy',
      });
      expect(up.requests).toBe(before);
      const simple = await send(port, 'GET', '/x', { origin: 'https://legacy.example' }, 'legacy.test');
      expect(corsOf(simple)).toEqual({ 'access-control-allow-origin': 'https://legacy.example', 'access-control-allow-credentials': 'true', 'access-control-expose-headers': 'x-legacy' });
      expect(up.requests).toBe(before + 1);
    });
  });

  it('counts origin_valid and origin_invalid in the connection manager scope', async () => {
    const valid = (await strait.stat('http.web.cors.origin_valid')) ?? 0;
    const invalid = (await strait.stat('http.web.cors.origin_invalid')) ?? 0;
    await h1(port, 'GET', '/api', { origin: APP });
    await h1(port, 'GET', '/api', { origin: 'https://evil.example' });
    await h1(port, 'GET', '/api', {}); // no Origin: not counted
    await h1(port, 'GET', '/off', { origin: APP }); // policy off: not counted
    expect(await strait.stat('http.web.cors.origin_valid')).toBe(valid + 1);
    expect(await strait.stat('http.web.cors.origin_invalid')).toBe(invalid + 1);
    // The blocks above (both protocols) were counted too.
    expect(valid).toBeGreaterThan(0);
    expect(invalid).toBeGreaterThan(0);
  });
});
