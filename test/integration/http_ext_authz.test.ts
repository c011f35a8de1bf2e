import fs from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import type net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { authzServer, type AuthzServer } from '../helpers/authz.js';
import { h2cRequest, hcmListener, httpUpstream, type Echo, type TestUpstream } from '../helpers/http.js';
import { deadPort } from '../helpers/net.js';
import { ADMIN, ENGINES, REPO, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

type Obj = Record<string, any>;

/** An HCM listener with `filters` before the router and `routes` (14-space indent) in one virtual host. */
function listener(name: string, filters: string, routes = '              - match: { prefix: "/" }\n                route: { cluster: up }', extra = ''): string {
  const rc = `name: local\nvirtual_hosts:\n- name: all\n  domains: ["*"]\n  routes:\n${routes.replace(/^ {12}/gm, '')}`;
  return hcmListener(name, rc, extra, filters);
}

/** An access log to `{{TMP}}/<file>` writing the x-tag request header and the ext_authz metadata `keys`, '|'-separated. */
function accessLog(file: string, keys: string[]): string {
  const fmt = ['%REQ(X-TAG)%', '%RESPONSE_CODE%', ...keys.map((k) => `%DYNAMIC_METADATA(envoy.filters.http.ext_authz${k ? `:${k}` : ''})%`)].join('|');
  return `          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: "{{TMP}}/${file}"
              log_format: { text_format: "${fmt.replace(/"/g, '\\"')}\\n" }
`;
}

/** The access log line of the request tagged `tag` (the sink writes asynchronously), split on '|'. */
async function logLine(file: string, tag: string): Promise<string[]> {
  for (let i = 0; i < 200; i++) {
    const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
    const hit = text.split('\n').find((l) => l.startsWith(`${tag}|`));
    if (hit) return hit.split('|');
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`${file}: no line for ${tag}`);
}

const META_KEYS = ['user', 'level', 'tags', 'tags:team', 'from', 'reason', 'ext_authz_duration', ''];

const EXT_AUTHZ = '"@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz';

function grpcAuthz(cluster: string, extra = ''): string {
  return `          - name: envoy.filters.http.ext_authz
            typed_config:
              ${EXT_AUTHZ}
              transport_api_version: V3
              grpc_service: { envoy_grpc: { cluster_name: ${cluster} }, timeout: 0.3s, initial_metadata: [ { key: x-from, value: strait } ] }
${extra}`;
}

/**
 * The rbac (shadow rules, `istio_ext_authz_` prefix) and ext_authz filters Istio writes for an
 * AuthorizationPolicy with action CUSTOM, taken from the corpus config dump. Changed: the
 * principals become `any` (they name the mTLS peer, and these clients speak plaintext).
 */
function istioCustomFilters(): { rbac: Obj; extAuthz: Obj } {
  const dump = YAML.parse(fs.readFileSync(path.resolve(REPO, '../shared/corpus/istio/configdump.yaml'), 'utf8')) as Obj;
  let found: Obj[] | null = null;
  const walk = (o: unknown): void => {
    if (found || !o || typeof o !== 'object') return;
    const hf = (o as Obj).http_filters;
    if (Array.isArray(hf) && hf.some((f: Obj) => f.name === 'envoy.filters.http.ext_authz')) {
      found = hf;
      return;
    }
    for (const v of Object.values(o as Obj)) walk(v);
  };
  walk(dump);
  const hf = found! as Obj[];
  const i = hf.findIndex((f) => f.name === 'envoy.filters.http.ext_authz');
  const rbac = structuredClone(hf[i - 1]!);
  const extAuthz = structuredClone(hf[i]!);
  expect(rbac.typed_config.shadow_rules_stat_prefix).toBe('istio_ext_authz_');
  for (const p of Object.values(rbac.typed_config.shadow_rules.policies) as Obj[]) p.principals = [{ any: true }];
  expect(extAuthz.typed_config.filter_enabled_metadata.path[0].key).toBe('istio_ext_authz_shadow_effective_policy_id');
  expect(extAuthz.typed_config.with_request_body.max_request_bytes).toBe(8000);
  return { rbac, extAuthz };
}

/** An HTTP authorization service: paths under /check/allowed get 200 (+ x-user), others 401. */
async function httpAuthz(): Promise<{ port: number; seen: Array<{ method: string; url: string; headers: http.IncomingHttpHeaders; body: string }>; close(): Promise<void> }> {
  const seen: Array<{ method: string; url: string; headers: http.IncomingHttpHeaders; body: string }> = [];
  const server = http.createServer((req, res) => {
    const s = { method: req.method!, url: req.url!, headers: req.headers, body: '' };
    seen.push(s);
    req.on('data', (d: Buffer) => (s.body += d.toString()));
    if (req.url!.startsWith('/check/allowed')) {
      res.writeHead(200, [
        ['x-user', 'bob'],
        ['x-internal', 'secret'],
        ['x-client-note', 'hi'],
        ['x-client-note', 'again'],
        ['x-envoy-auth-headers-to-remove', 'x-strip-me, X-Strip-Too,host'],
      ]);
      res.end();
    } else {
      res.writeHead(401, { 'www-authenticate': 'Bearer', 'x-internal': 'secret', 'content-type': 'text/plain', 'x-user': 'nobody' });
      res.end('login first');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    seen,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

function get(port: number, p: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const rq = http.request({ host: '127.0.0.1', port, path: p, headers: { host: 'svc', ...headers }, agent: false }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    rq.on('error', reject);
    rq.end();
  });
}

/** A POST with `body`, sent with Content-Length or (chunked) in two writes without one. */
function post(port: number, p: string, body: string, headers: Record<string, string> = {}, chunked = false): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const rq = http.request({ host: '127.0.0.1', port, path: p, method: 'POST', headers: { host: 'svc', ...(chunked ? {} : { 'content-length': String(Buffer.byteLength(body)) }), ...headers }, agent: false }, (res) => {
      let b = '';
      res.on('data', (d: Buffer) => (b += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, body: b }));
    });
    rq.on('error', reject);
    if (chunked) {
      rq.write(body.slice(0, 3));
      setTimeout(() => rq.end(body.slice(3)), 20);
    } else rq.end(body);
  });
}

function h2Post(port: number, p: string, body: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const c = http2.connect(`http://127.0.0.1:${port}`);
    c.on('error', reject);
    const rq = c.request({ ':method': 'POST', ':path': p, ':authority': 'svc', ...headers });
    let status = 0;
    let b = '';
    rq.on('response', (x) => (status = Number(x[':status'])));
    rq.on('data', (d: Buffer) => (b += d.toString()));
    rq.on('end', () => {
      c.close();
      resolve({ status, body: b });
    });
    rq.on('error', reject);
    rq.write(body.slice(0, 3));
    setTimeout(() => rq.end(body.slice(3)), 20);
  });
}

function h2Get(port: number, p: string, headers: Record<string, string>): Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: string }> {
  return h2cRequest(port, { path: p, headers });
}

describe.each(ENGINES)('envoy.filters.http.ext_authz on the %s engine', (engine) => {
  let up: TestUpstream;
  let authz: AuthzServer;
  let hauthz: Awaited<ReturnType<typeof httpAuthz>>;
  let strait: StraitProcess;
  const ports: Record<string, number> = {};

  beforeAll(async () => {
    up = await httpUpstream('up');
    authz = await authzServer();
    hauthz = await httpAuthz();
    const dead = await deadPort();
    const istio = istioCustomFilters();
    const indent = (o: Obj) => `          - ${JSON.stringify(o)}`;
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${listener(
  'grpc',
  grpcAuthz('authz'),
  `              - match: { prefix: "/off" }
                route: { cluster: up }
                typed_per_filter_config:
                  envoy.filters.http.ext_authz: { "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute, disabled: true }
              - match: { prefix: "/ctx" }
                route: { cluster: up }
                typed_per_filter_config:
                  envoy.filters.http.ext_authz: { "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute, check_settings: { context_extensions: { tenant: blue } } }
              - match: { prefix: "/" }
                route: { cluster: up }`,
)}${listener('down', grpcAuthz('dead'))}${listener('fma', grpcAuthz('dead', '              failure_mode_allow: true\n              failure_mode_allow_header_add: true\n              stat_prefix: fma\n'))}${listener(
        'slow',
        grpcAuthz('authz', '              status_on_error: { code: 503 }\n'),
      )}${listener(
        'httpsvc',
        `          - name: envoy.filters.http.ext_authz
            typed_config:
              ${EXT_AUTHZ}
              http_service:
                server_uri: { uri: "http://authz.local", cluster: hauthz, timeout: 1s }
                path_prefix: /check
                authorization_request:
                  allowed_headers: { patterns: [ { exact: x-token } ] }
                  headers_to_add: [ { key: x-from, value: strait } ]
                authorization_response:
                  allowed_upstream_headers: { patterns: [ { exact: x-user } ] }
                  allowed_client_headers: { patterns: [ { exact: content-type } ] }`,
      )}${listener('istio', `${indent(istio.rbac)}\n${indent(istio.extAuthz)}`)}${listener('body', grpcAuthz('authz', '              with_request_body: { max_request_bytes: 16 }\n'))}${listener(
        'partial',
        grpcAuthz('authz', '              with_request_body: { max_request_bytes: 4, allow_partial_message: true }\n'),
      )}${listener(
        'hbody',
        `          - name: envoy.filters.http.ext_authz
            typed_config:
              ${EXT_AUTHZ}
              with_request_body: { max_request_bytes: 100 }
              http_service:
                server_uri: { uri: "http://authz.local", cluster: hauthz, timeout: 1s }
                path_prefix: /check`,
      )}${listener(
        'edits',
        grpcAuthz('authz'),
        `              - match: { prefix: "/rw/" }
                route: { cluster: up, prefix_rewrite: "/rewritten/" }
              - match: { prefix: "/" }
                route: { cluster: up }
                response_headers_to_add: [ { header: { key: x-route, value: r1 } } ]`,
        accessLog('edits.log', META_KEYS),
      )}${listener('noingest', grpcAuthz('authz', '              enable_dynamic_metadata_ingestion: false\n'), undefined, accessLog('noingest.log', META_KEYS))}${listener(
        'hedits',
        `          - name: envoy.filters.http.ext_authz
            typed_config:
              ${EXT_AUTHZ}
              http_service:
                server_uri: { uri: "http://authz.local", cluster: hauthz, timeout: 1s }
                path_prefix: /check
                authorization_response:
                  allowed_upstream_headers: { patterns: [ { exact: x-user } ] }
                  allowed_client_headers_on_success: { patterns: [ { prefix: x-client- } ] }
                  dynamic_metadata_from_headers: { patterns: [ { exact: x-user }, { exact: x-client-note } ] }`,
        undefined,
        accessLog('hedits.log', ['x-user', 'x-client-note', 'ext_authz_duration']),
      )}${listener(
        'chain',
        `${grpcAuthz('authz')}          - name: second_authz
            typed_config:
              ${EXT_AUTHZ}
              stat_prefix: second
              filter_enabled_metadata: { filter: envoy.filters.http.ext_authz, path: [ { key: user } ], value: { string_match: { exact: alice } } }
              http_service:
                server_uri: { uri: "http://authz.local", cluster: hauthz, timeout: 1s }
                path_prefix: /check`,
      )}
  clusters:
${staticCluster('up', [up.port])}${staticCluster('authz', [authz.port], '    typed_extension_protocol_options: { envoy.extensions.upstreams.http.v3.HttpProtocolOptions: { "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions, explicit_http_config: { http2_protocol_options: {} } } }\n')}${staticCluster(istio.extAuthz.typed_config.grpc_service.envoy_grpc.cluster_name, [authz.port])}${staticCluster('dead', [dead])}${staticCluster('hauthz', [hauthz.port])}`,
      { engine },
    );
    for (const l of ['grpc', 'down', 'fma', 'slow', 'httpsvc', 'istio', 'body', 'partial', 'hbody', 'edits', 'noingest', 'hedits', 'chain']) ports[l] = await strait.port(l);
  }, 30_000);

  afterAll(async () => {
    await strait?.stop();
    await up?.close();
    await authz?.close();
    await hauthz?.close();
  });

  const lastCheck = (p: string): Obj | undefined => [...authz.checks].reverse().find((c) => c.attributes?.request?.http?.path === p);

  it('lets an allowed request through with the ok response header edits, after sending the request facts', async () => {
    const before = up.requests;
    const r = await get(ports.grpc!, '/hello?x=1', { 'x-authz': 'allow', 'x-remove-me': 'gone', 'x-keep': 'kept', 'x-request-id': 'rid-1' });
    expect(r.status).toBe(200);
    const echo = JSON.parse(r.body) as Echo;
    expect(echo.headers['x-authz-user']).toBe('alice');
    expect(echo.headers['x-remove-me']).toBeUndefined();
    expect(echo.headers['x-keep']).toBe('kept');
    expect(up.requests).toBe(before + 1);
    const c = lastCheck('/hello?x=1')!;
    const a = c.attributes;
    expect(a.request.http.method).toBe('GET');
    expect(a.request.http.host).toBe('svc');
    expect(a.request.http.id).toBe('rid-1');
    expect(a.request.http.scheme).toBe('http');
    expect(a.request.http.protocol).toBe('HTTP/1.1');
    expect(a.request.http.headers['x-keep']).toBe('kept');
    expect(a.request.http.headers[':method']).toBe('GET');
    expect(a.request.http.headers[':authority']).toBe('svc');
    expect(a.source.address.socket_address.address).toBe('127.0.0.1');
    expect(a.source.address.socket_address.port_value).toBeGreaterThan(0);
    expect(a.destination.address.socket_address.port_value).toBe(ports.grpc);
    expect(c.metadata['x-from']).toBe('strait');
    expect(await strait.stat('http.grpc.ext_authz.ok')).toBeGreaterThanOrEqual(1);
  });

  it("puts an ok response's response_headers_to_add on the client's response, over HTTP/1.1 and HTTP/2", async () => {
    const r = await get(ports.grpc!, '/said', { 'x-authz': 'respond' });
    expect(r.status).toBe(200);
    expect(r.headers['x-authz-said']).toBe('ok');
    // Unset append overwrites (external_auth.proto): the upstream's own x-upstream is replaced.
    expect(r.headers['x-upstream']).toBe('authz');
    expect(r.headers['x-authz-append']).toBe('yes');
    // The upstream saw none of them: they are for the client.
    expect((JSON.parse(r.body) as Echo).headers['x-authz-said']).toBeUndefined();
    const h2 = await h2Get(ports.grpc!, '/said-h2', { 'x-authz': 'respond' });
    expect([h2.status, h2.headers['x-authz-said'], h2.headers['x-upstream']]).toEqual([200, 'ok', 'authz']);
    // A plain allow adds nothing to the response.
    expect((await get(ports.grpc!, '/plain', { 'x-authz': 'allow' })).headers['x-authz-said']).toBeUndefined();
  });

  it('answers a denied request with the denial and never reaches the upstream', async () => {
    const before = up.requests;
    const r = await get(ports.grpc!, '/secret', { 'x-authz': 'deny' });
    expect(r.status).toBe(401);
    expect(r.body).toBe('go away');
    expect(r.headers['x-denied-by']).toBe('authz');
    const plain = await get(ports.grpc!, '/secret2', { 'x-authz': 'nope' });
    expect(plain.status).toBe(403);
    expect(up.requests).toBe(before);
    expect(await strait.stat('http.grpc.ext_authz.denied')).toBeGreaterThanOrEqual(2);
  });

  it('checks HTTP/2 requests too', async () => {
    const ok = await h2Get(ports.grpc!, '/h2', { 'x-authz': 'allow' });
    expect(ok.status).toBe(200);
    expect((JSON.parse(ok.body) as Echo).headers['x-authz-user']).toBe('alice');
    expect(lastCheck('/h2')!.attributes.request.http.protocol).toBe('HTTP/2');
    const no = await h2Get(ports.grpc!, '/h2-deny', { 'x-authz': 'deny' });
    expect(no.status).toBe(401);
    expect(no.body).toBe('go away');
  });

  it('skips the check on a route that disables the filter, and sends context_extensions', async () => {
    const n = authz.checks.length;
    const r = await get(ports.grpc!, '/off/x', { 'x-authz': 'deny' });
    expect(r.status).toBe(200);
    expect(authz.checks.length).toBe(n);
    const c = await get(ports.grpc!, '/ctx', { 'x-authz': 'allow' });
    expect(c.status).toBe(200);
    expect(lastCheck('/ctx')!.attributes.context_extensions).toEqual({ tenant: 'blue' });
  });

  it('answers 403 when the service is down, or lets the request through with failure_mode_allow', async () => {
    const before = up.requests;
    const r = await get(ports.down!, '/x', { 'x-authz': 'allow' });
    expect(r.status).toBe(403);
    expect(up.requests).toBe(before);
    expect(await strait.stat('http.down.ext_authz.error')).toBeGreaterThanOrEqual(1);
    const f = await get(ports.fma!, '/x', { 'x-authz': 'allow' });
    expect(f.status).toBe(200);
    expect((JSON.parse(f.body) as Echo).headers['x-envoy-auth-failure-mode-allowed']).toBe('true');
    expect(await strait.stat('http.fma.ext_authz.fma.failure_mode_allowed')).toBeGreaterThanOrEqual(1);
    expect(await strait.stat('http.fma.ext_authz.fma.error')).toBeGreaterThanOrEqual(1);
  });

  it('answers status_on_error when the service is slower than the timeout', async () => {
    const t0 = Date.now();
    const r = await get(ports.slow!, '/slow', { 'x-authz': 'slow' });
    expect(r.status).toBe(503);
    expect(Date.now() - t0).toBeLessThan(900);
    expect(await strait.stat('http.slow.ext_authz.error')).toBeGreaterThanOrEqual(1);
  });

  it('asks an HTTP authorization service: 200 allows with allowed upstream headers, 401 denies with its body', async () => {
    const ok = await get(ports.httpsvc!, '/allowed/a?q=1', { 'x-token': 't1', 'x-other': 'o', authorization: 'Bearer z', 'x-strip-me': '1', 'x-strip-too': '2' });
    expect(ok.status).toBe(200);
    const echo = JSON.parse(ok.body) as Echo;
    expect(echo.headers['x-user']).toBe('bob');
    expect(echo.headers['x-internal']).toBeUndefined();
    // x-envoy-auth-headers-to-remove took these off the upstream request (never Host).
    expect(echo.headers['x-strip-me']).toBeUndefined();
    expect(echo.headers['x-strip-too']).toBeUndefined();
    expect(echo.headers['x-other']).toBe('o');
    expect(echo.headers.host).toBeDefined();
    const seen = hauthz.seen.at(-1)!;
    expect(seen.method).toBe('GET');
    expect(seen.url).toBe('/check/allowed/a?q=1');
    expect(seen.headers['x-token']).toBe('t1');
    expect(seen.headers.authorization).toBe('Bearer z');
    expect(seen.headers['x-other']).toBeUndefined();
    expect(seen.headers['x-from']).toBe('strait');
    expect(seen.headers.host).toBe('svc');
    expect(seen.headers['content-length']).toBe('0');
    const before = up.requests;
    const no = await get(ports.httpsvc!, '/private');
    expect(no.status).toBe(401);
    expect(no.body).toBe('login first');
    expect(no.headers['www-authenticate']).toBe('Bearer');
    expect(no.headers['x-internal']).toBeUndefined();
    expect(up.requests).toBe(before);
    expect(await strait.stat('http.httpsvc.ext_authz.denied')).toBeGreaterThanOrEqual(1);
  });

  it("checks only what Istio's CUSTOM shadow policy matches (filter_enabled_metadata)", async () => {
    const n = authz.checks.length;
    const r = await get(ports.istio!, '/info/1', { 'x-authz': 'deny' });
    expect(r.status).toBe(401);
    expect(authz.checks.length).toBe(n + 1);
    expect(lastCheck('/info/1')).toBeDefined();
    const other = await get(ports.istio!, '/other', { 'x-authz': 'deny' });
    expect(other.status).toBe(200);
    expect(authz.checks.length).toBe(n + 1);
    expect(await strait.stat('http.istio.ext_authz.disabled')).toBeGreaterThanOrEqual(1);
    expect(await strait.stat('http.istio.rbac.istio_ext_authz_shadow_denied')).toBeGreaterThanOrEqual(1);
  });

  it('sends the request body in the check with with_request_body, and forwards it whole', async () => {
    for (const chunked of [false, true]) {
      const r = await post(ports.body!, `/b/${chunked}`, 'hello world', { 'x-authz': 'allow' }, chunked);
      expect(r.status).toBe(200);
      expect((JSON.parse(r.body) as Echo).bodyLength).toBe(11);
      const http = lastCheck(`/b/${chunked}`)!.attributes.request.http;
      expect([http.body, http.size]).toEqual(['hello world', 11]);
    }
    const h2 = await h2Post(ports.body!, '/b/h2', 'over http/2', { 'x-authz': 'allow' });
    expect(h2.status).toBe(200);
    expect(lastCheck('/b/h2')!.attributes.request.http.body).toBe('over http/2');
    // The HTTP service gets the body as its own.
    const hs = await post(ports.hbody!, '/allowed/x', 'form=1');
    expect(hs.status).toBe(200);
    expect(hauthz.seen.at(-1)!.body).toBe('form=1');
  });

  it('answers 413 to a body over max_request_bytes, or checks its first bytes with allow_partial_message', async () => {
    const n = authz.checks.length;
    const before = up.requests;
    const big = await post(ports.body!, '/big', 'x'.repeat(40), { 'x-authz': 'allow' });
    expect(big.status).toBe(413);
    expect(authz.checks.length).toBe(n);
    expect(up.requests).toBe(before);
    for (const chunked of [false, true]) {
      const r = await post(ports.partial!, `/p/${chunked}`, 'abcdefgh', { 'x-authz': 'allow' }, chunked);
      expect(r.status).toBe(200);
      expect((JSON.parse(r.body) as Echo).bodyLength).toBe(8);
      expect(lastCheck(`/p/${chunked}`)!.attributes.request.http.body).toBe('abcd');
    }
  });

  it("applies an ok response's query parameter edits to the upstream request, over HTTP/1.1 and HTTP/2", async () => {
    const p = '/q/a%2Fb?z=1&drop=x&a=old&flag&a=older&drop=y';
    // Envoy's order: parameters by name, a set one replacing all its values, a bare one written `flag=`.
    const want = '/q/a%2Fb?a=new&flag=&sp=a%20b&z=1';
    const h1 = await get(ports.edits!, p, { 'x-authz': 'query' });
    expect(h1.status).toBe(200);
    expect((JSON.parse(h1.body) as Echo).url).toBe(want);
    // The check saw the request as the client sent it.
    expect(lastCheck(p)).toBeDefined();
    const h2 = await h2Get(ports.edits!, p, { 'x-authz': 'query' });
    expect(h2.status).toBe(200);
    expect((JSON.parse(h2.body) as Echo).url).toBe(want);
    // The route chosen before the check keeps its prefix_rewrite; a query left empty loses its '?'.
    const rw = await get(ports.edits!, '/rw/x?drop=1', { 'x-authz': 'query' });
    expect((JSON.parse(rw.body) as Echo).url).toBe('/rewritten/x?a=new&sp=a%20b');
    const rw2 = await h2Get(ports.edits!, '/rw/y?drop=1', { 'x-authz': 'query' });
    expect((JSON.parse(rw2.body) as Echo).url).toBe('/rewritten/y?a=new&sp=a%20b');
    // Without edits the target is untouched, byte for byte.
    const plain = await get(ports.edits!, '/q/x?b=2&a=1&flag', { 'x-authz': 'allow' });
    expect((JSON.parse(plain.body) as Echo).url).toBe('/q/x?b=2&a=1&flag');
  });

  it('publishes CheckResponse dynamic_metadata as envoy.filters.http.ext_authz metadata for the access log', async () => {
    const file = path.join(strait.dir, 'edits.log');
    for (const [tag, send] of [
      ['m-h1', () => get(ports.edits!, '/m', { 'x-authz': 'meta', 'x-tag': 'm-h1' })],
      ['m-h2', () => h2Get(ports.edits!, '/m', { 'x-authz': 'meta', 'x-tag': 'm-h2' })],
    ] as const) {
      expect((await send()).status).toBe(200);
      const [, code, user, level, tags, team, from, reason, took, all] = await logLine(file, tag);
      expect([code, user, level, tags, team, from, reason]).toEqual(['200', 'alice', '3', '{"team":"blue"}', 'blue', '-', '-']);
      // An allowed request's metadata also says how long the check took, in ms.
      expect(Number(took)).toBeGreaterThanOrEqual(0);
      expect(JSON.parse(all!)).toMatchObject({ user: 'alice', level: 3, tags: { team: 'blue' } });
    }
    // The deprecated ok_response.dynamic_metadata wins over the outer one.
    await get(ports.edits!, '/m', { 'x-authz': 'meta-ok', 'x-tag': 'm-ok' });
    expect((await logLine(file, 'm-ok'))[6]).toBe('ok');
    // A denial's metadata is published too (without a duration), the local reply logged with it.
    const d = await get(ports.edits!, '/m', { 'x-authz': 'meta-deny', 'x-tag': 'm-deny' });
    expect(d.status).toBe(403);
    const dl = await logLine(file, 'm-deny');
    expect([dl[1], dl[7], dl[8]]).toEqual(['403', 'nope', '-']);
    // A response without metadata publishes nothing.
    await get(ports.edits!, '/m', { 'x-authz': 'allow', 'x-tag': 'm-none' });
    expect((await logLine(file, 'm-none')).slice(2)).toEqual(META_KEYS.map(() => '-'));
  });

  it('drops the metadata with enable_dynamic_metadata_ingestion false, and counts it', async () => {
    const r = await get(ports.noingest!, '/m', { 'x-authz': 'meta', 'x-tag': 'ni' });
    expect(r.status).toBe(200);
    expect((await logLine(path.join(strait.dir, 'noingest.log'), 'ni')).slice(2)).toEqual(META_KEYS.map(() => '-'));
    expect(await strait.stat('http.noingest.ext_authz.ignored_dynamic_metadata')).toBe(1);
  });

  it('gives the client the allowed_client_headers_on_success of an allowing HTTP service, and publishes dynamic_metadata_from_headers', async () => {
    const file = path.join(strait.dir, 'hedits.log');
    const h1 = await get(ports.hedits!, '/allowed/1', { 'x-tag': 'h-h1' });
    expect(h1.status).toBe(200);
    // Both values of the header, appended as Envoy does; the upstream never saw them.
    expect(h1.headers['x-client-note']).toBe('hi, again');
    expect(h1.headers['x-internal']).toBeUndefined();
    const echo = JSON.parse(h1.body) as Echo;
    expect(echo.headers['x-client-note']).toBeUndefined();
    expect(echo.headers['x-user']).toBe('bob');
    const l1 = await logLine(file, 'h-h1');
    // A repeated header's last value; the HTTP service's metadata also gets the duration.
    expect(l1.slice(1, 4)).toEqual(['200', 'bob', 'again']);
    expect(Number(l1[4])).toBeGreaterThanOrEqual(0);
    const h2 = await h2Get(ports.hedits!, '/allowed/2', { 'x-tag': 'h-h2' });
    expect(h2.status).toBe(200);
    expect(h2.headers['x-client-note']).toEqual('hi, again');
    expect((await logLine(file, 'h-h2')).slice(1, 4)).toEqual(['200', 'bob', 'again']);
    // A denial carries no on-success headers, but its matching headers still become metadata.
    const no = await get(ports.hedits!, '/private', { 'x-tag': 'h-no' });
    expect(no.status).toBe(401);
    expect(no.headers['x-client-note']).toBeUndefined();
    expect((await logLine(file, 'h-no')).slice(1, 5)).toEqual(['401', 'nobody', '-', '-']);
  });

  it('lets the filters after it act on the published metadata (a second ext_authz enabled by it)', async () => {
    const n = hauthz.seen.length;
    // The first service publishes user=alice: the second filter checks with the HTTP service.
    const on = await get(ports.chain!, '/allowed/chain', { 'x-authz': 'meta' });
    expect(on.status).toBe(200);
    expect(hauthz.seen.length).toBe(n + 1);
    expect(hauthz.seen.at(-1)!.url).toBe('/check/allowed/chain');
    // Without the metadata the second filter stands aside.
    const off = await get(ports.chain!, '/allowed/chain2', { 'x-authz': 'allow' });
    expect(off.status).toBe(200);
    expect(hauthz.seen.length).toBe(n + 1);
    expect(await strait.stat('http.chain.ext_authz.second.disabled')).toBe(1);
  });
});
