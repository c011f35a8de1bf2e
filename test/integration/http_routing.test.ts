import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { hcmListener, httpUpstream, type Echo, type TestUpstream } from '../helpers/http.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

const ROUTES = `name: local
request_headers_to_add:
- header: { key: x-global, value: g }
virtual_hosts:
- name: api
  domains: ["api.example.com", "*.api.example.com"]
  response_headers_to_add:
  - header: { key: x-vhost, value: api }
  routes:
  - match: { prefix: "/v1/" }
    route: { cluster: a, prefix_rewrite: "/internal/", host_rewrite_literal: backend.local }
  - match: { prefix: "/" }
    route: { cluster: b }
- name: shop
  domains: ["shop.*"]
  routes:
  - match: { prefix: "/" }
    route: { cluster: b }
- name: fallback
  domains: ["*"]
  routes:
  - match: { path: "/direct" }
    direct_response: { status: 418, body: { inline_string: "short and stout" } }
  - match: { prefix: "/old/" }
    redirect: { prefix_rewrite: "/new/", response_code: PERMANENT_REDIRECT }
  - match: { path: "/secure" }
    redirect: { https_redirect: true, host_redirect: "secure.example.com" }
  - match: { prefix: "/hdr", headers: [{ name: x-route, string_match: { exact: b } }] }
    route: { cluster: b }
  - match: { prefix: "/q", query_parameters: [{ name: to, string_match: { exact: b } }] }
    route: { cluster: b }
  - match: { safe_regex: { regex: "/re/[0-9]+" } }
    route: { cluster: b }
  - match: { prefix: "/weighted" }
    route:
      weighted_clusters:
        clusters:
        - { name: a, weight: 50 }
        - { name: b, weight: 50 }
  - match: { prefix: "/by-header" }
    route: { cluster_header: x-cluster }
  - match: { prefix: "/mut" }
    route: { cluster: a }
    request_headers_to_add:
    - header: { key: x-added, value: "1" }
    - header: { key: x-over, value: new }
      append_action: OVERWRITE_IF_EXISTS_OR_ADD
    - header: { key: x-absent, value: set }
      append_action: ADD_IF_ABSENT
    request_headers_to_remove: [x-drop]
    response_headers_to_add:
    - header: { key: x-resp, value: r }
    response_headers_to_remove: [x-upstream-remove-me]
  - match: { prefix: "/a" }
    route: { cluster: a }
`;

describe.each(ENGINES.slice(0, 1))('http_connection_manager routing on the %s engine', (engine) => {
  let a: TestUpstream;
  let b: TestUpstream;
  let strait: StraitProcess;
  let base: string;
  let xff: string;

  beforeAll(async () => {
    a = await httpUpstream('a');
    b = await httpUpstream('b');
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('routes', ROUTES)}
${hcmListener('xff', `name: x\nvirtual_hosts:\n- name: all\n  domains: ["*"]\n  routes:\n  - match: { prefix: "/" }\n    route: { cluster: a }`, '          use_remote_address: true\n          always_set_request_id_in_response: true\n          server_header_transformation: PASS_THROUGH\n')}
  clusters:
${staticCluster('a', [a.port])}
${staticCluster('b', [b.port])}`,
      { engine },
    );
    base = `http://127.0.0.1:${await strait.port('routes')}`;
    xff = `http://127.0.0.1:${await strait.port('xff')}`;
  });

  afterAll(async () => {
    await strait?.stop();
    await a?.close();
    await b?.close();
  });

  async function get(path: string, headers: Record<string, string> = {}, url = base) {
    const r = await request(`${url}${path}`, { headers });
    const text = await r.body.text();
    let echo: Echo | null = null;
    try {
      echo = JSON.parse(text) as Echo;
    } catch {
      // not an echo
    }
    return { status: r.statusCode, headers: r.headers, text, echo };
  }

  it('routes by Host to virtual hosts with wildcard domains', async () => {
    expect((await get('/x', { host: 'api.example.com' })).echo?.tag).toBe('b');
    expect((await get('/x', { host: 'eu.api.example.com' })).echo?.tag).toBe('b');
    expect((await get('/x', { host: 'shop.example.org' })).echo?.tag).toBe('b');
    expect((await get('/a', { host: 'unknown.host' })).echo?.tag).toBe('a');
  });

  it('rewrites the prefix and the Host, adds config headers, keeps the query', async () => {
    const r = await get('/v1/users?id=7', { host: 'api.example.com' });
    expect(r.echo?.tag).toBe('a');
    expect(r.echo?.url).toBe('/internal/users?id=7');
    expect(r.echo?.headers.host).toBe('backend.local');
    expect(r.echo?.headers['x-global']).toBe('g');
    expect(r.headers['x-vhost']).toBe('api');
  });

  it('matches routes by header, query parameter and regex', async () => {
    expect((await get('/hdr', { 'x-route': 'b' })).echo?.tag).toBe('b');
    expect((await get('/hdr', { 'x-route': 'a' })).status).toBe(404);
    expect((await get('/q?to=b')).echo?.tag).toBe('b');
    expect((await get('/q?to=a')).status).toBe(404);
    expect((await get('/re/123')).echo?.tag).toBe('b');
    expect((await get('/re/12x')).status).toBe(404);
    await strait.waitStat('http.routes.no_route', (v) => v >= 3);
  });

  it('answers direct responses and redirects itself', async () => {
    const upstreamBefore = a.requests + b.requests;
    const d = await get('/direct');
    expect(d.status).toBe(418);
    expect(d.text).toBe('short and stout');
    const r = await get('/old/page?x=1', { host: 'site.test:8080' });
    expect(r.status).toBe(308);
    expect(r.headers.location).toBe('http://site.test:8080/new/page?x=1');
    const s = await get('/secure', { host: 'site.test' });
    expect(s.status).toBe(301);
    expect(s.headers.location).toBe('https://secure.example.com/secure');
    expect(await strait.stat('http.routes.rq_direct_response')).toBe(1);
    expect(await strait.stat('http.routes.rq_redirect')).toBe(2);
    // No upstream saw these.
    expect(a.requests + b.requests).toBe(upstreamBefore);
  });

  it('splits weighted_clusters traffic between clusters', async () => {
    const tags: string[] = [];
    for (let i = 0; i < 60; i++) tags.push((await get('/weighted')).echo!.tag);
    // 50/50 over 60 requests: either side below 10 has probability < 1e-7.
    expect(tags.filter((t) => t === 'a').length).toBeGreaterThan(10);
    expect(tags.filter((t) => t === 'b').length).toBeGreaterThan(10);
  });

  it('picks the cluster from a request header, 503 when it names no cluster', async () => {
    expect((await get('/by-header', { 'x-cluster': 'b' })).echo?.tag).toBe('b');
    expect((await get('/by-header', { 'x-cluster': 'nope' })).status).toBe(503);
    expect((await get('/by-header')).status).toBe(503);
    await strait.waitStat('http.routes.no_cluster', (v) => v === 2);
  });

  it('adds, overwrites and removes request and response headers', async () => {
    const r = await get('/mut', { 'x-over': 'old', 'x-drop': 'gone', 'x-absent': 'client' });
    const h = r.echo!.headers;
    expect(h['x-added']).toBe('1');
    expect(h['x-over']).toBe('new');
    expect(h['x-absent']).toBe('client');
    expect(h['x-drop']).toBeUndefined();
    expect(r.headers['x-resp']).toBe('r');
    expect(r.headers['x-upstream-remove-me']).toBeUndefined();
    expect(r.headers['x-upstream']).toBe('a');
  });

  it('appends the peer to x-forwarded-for only with use_remote_address', async () => {
    const plain = await get('/a', { 'x-forwarded-for': '203.0.113.9' });
    expect(plain.echo?.headers['x-forwarded-for']).toBe('203.0.113.9');
    const r = await get('/a', { 'x-forwarded-for': '203.0.113.9' }, xff);
    expect(r.echo?.headers['x-forwarded-for']).toBe('203.0.113.9,127.0.0.1');
    const fresh = await get('/a', {}, xff);
    expect(fresh.echo?.headers['x-forwarded-for']).toBe('127.0.0.1');
    // always_set_request_id_in_response, and PASS_THROUGH leaves the upstream's server header.
    expect(fresh.headers['x-request-id']).toBe(fresh.echo?.headers['x-request-id']);
    expect(fresh.headers.server).toBe('test-upstream');
  });
});
