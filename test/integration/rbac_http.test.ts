import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { httpUpstream, simpleRoutes, type TestUpstream } from '../helpers/http.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

/** An HCM listener whose only HTTP filter before the router is an RBAC filter with `body`. */
function listener(name: string, body: string): string {
  const rbac = body
    .trim()
    .split('\n')
    .map((l) => `              ${l}`)
    .join('\n');
  return `  - name: ${name}
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ${name}
          http_filters:
          - name: envoy.filters.http.rbac
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
${rbac}
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
          route_config:
${simpleRoutes('a').split('\n').map((l) => `            ${l}`).join('\n')}
`;
}

describe.each(ENGINES.slice(0, 1))('HTTP RBAC on the %s engine', (engine) => {
  let a: TestUpstream;
  let strait: StraitProcess;
  let url = '';
  let shadowUrl = '';

  beforeAll(async () => {
    a = await httpUpstream('a');
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${listener(
  'guarded',
  `
rules_stat_prefix: enforced_
rules:
  action: ALLOW
  policies:
    readers:
      permissions:
      - and_rules:
          rules:
          - header: { name: ":method", string_match: { exact: GET } }
          - url_path: { path: { prefix: /public/ } }
      principals: [{ any: true }]
    admins:
      permissions: [{ any: true }]
      principals:
      - and_ids:
          ids:
          - header: { name: x-role, string_match: { exact: admin } }
          - direct_remote_ip: { address_prefix: 127.0.0.0, prefix_len: 8 }
`,
)}
${listener(
  'shadowed',
  `
shadow_rules_stat_prefix: dry_
shadow_rules:
  action: DENY
  policies:
    no-secrets:
      permissions: [{ url_path: { path: { prefix: /secret } } }]
      principals: [{ any: true }]
`,
)}
  clusters:
${staticCluster('a', [a.port])}`,
      { engine },
    );
    url = `http://127.0.0.1:${await strait.port('guarded')}`;
    shadowUrl = `http://127.0.0.1:${await strait.port('shadowed')}`;
  });

  afterAll(async () => {
    await strait?.stop();
    await a?.close();
  });

  it('routes requests a policy allows and answers the rest with 403 before routing', async () => {
    const before = a.requests;
    const ok = await request(`${url}/public/x?q=1`);
    expect(ok.statusCode).toBe(200);
    await ok.body.text();
    const post = await request(`${url}/public/x`, { method: 'POST', body: 'x' });
    expect(post.statusCode).toBe(403);
    expect(await post.body.text()).toBe('RBAC: access denied');
    const priv = await request(`${url}/private`);
    expect(priv.statusCode).toBe(403);
    await priv.body.text();
    const admin = await request(`${url}/private`, { headers: { 'x-role': 'admin' } });
    expect(admin.statusCode).toBe(200);
    await admin.body.text();
    // Only the two allowed requests reached the upstream.
    expect(a.requests - before).toBe(2);
    expect(await strait.stat('http.guarded.rbac.enforced_allowed')).toBe(2);
    expect(await strait.stat('http.guarded.rbac.enforced_denied')).toBe(2);
    expect(await strait.stat('http.guarded.downstream_rq_4xx')).toBe(2);
  });

  it('counts shadow denials but serves the request', async () => {
    const r = await request(`${shadowUrl}/secret/plans`);
    expect(r.statusCode).toBe(200);
    await r.body.text();
    const r2 = await request(`${shadowUrl}/open`);
    expect(r2.statusCode).toBe(200);
    await r2.body.text();
    expect(await strait.stat('http.shadowed.rbac.dry_shadow_denied')).toBe(1);
    expect(await strait.stat('http.shadowed.rbac.dry_shadow_allowed')).toBe(1);
    const prom = (await strait.get('/stats/prometheus')).text;
    expect(prom).toMatch(/envoy_http_rbac_dry_shadow_denied\{envoy_http_conn_manager_prefix="shadowed"\} 1/);
  });
});
