import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Pool, request } from 'undici';
import { deadPort } from '../helpers/net.js';
import { hcmListener, httpUpstream, type Echo, type TestUpstream } from '../helpers/http.js';
import { ADMIN, ENGINES, runCli, startStrait, staticCluster, tmpDir, type StraitProcess } from '../helpers/strait.js';

function routes(...rs: string[]): string {
  return `name: local
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
${rs.map((r) => `  - ${r}`).join('\n')}`;
}

let keySeq = 0;
/** Headers making the upstream fail the first `n` requests of a fresh key. */
function failing(n: number, mode = 'status'): Record<string, string> {
  return { 'x-test-fail': String(n), 'x-test-key': `k${++keySeq}`, 'x-test-fail-mode': mode };
}

describe.each(ENGINES.slice(0, 1))('http_connection_manager traffic policies on the %s engine', (engine) => {
  let a: TestUpstream;
  let strait: StraitProcess;
  let base: string;
  let dead: number;

  beforeAll(async () => {
    a = await httpUpstream('a');
    dead = await deadPort();
    const rc = routes(
      'match: { prefix: "/timeout" }\n    route: { cluster: a, timeout: 0.3s }',
      'match: { prefix: "/retry5xx" }\n    route: { cluster: a, retry_policy: { retry_on: 5xx, num_retries: 2, retry_back_off: { base_interval: 0.001s } } }',
      'match: { prefix: "/gateway" }\n    route: { cluster: a, retry_policy: { retry_on: gateway-error, num_retries: 1 } }',
      'match: { prefix: "/codes" }\n    route: { cluster: a, retry_policy: { retry_on: retriable-status-codes, retriable_status_codes: [418], num_retries: 1 } }',
      'match: { prefix: "/reset" }\n    route: { cluster: a, retry_policy: { retry_on: reset, num_retries: 1 } }',
      'match: { prefix: "/pertry" }\n    route: { cluster: a, timeout: 10s, retry_policy: { retry_on: 5xx, num_retries: 1, per_try_timeout: 0.3s } }',
      'match: { prefix: "/connect-retry" }\n    route: { cluster: flaky, retry_policy: { retry_on: connect-failure, num_retries: 1 } }',
      'match: { prefix: "/connect" }\n    route: { cluster: flaky }',
      'match: { prefix: "/unhealthy" }\n    route: { cluster: unhealthy }',
      'match: { prefix: "/limited" }\n    route: { cluster: limited }',
      'match: { prefix: "/" }\n    route: { cluster: a }',
    );
    // Panic off: with Envoy's default 50% panic threshold a cluster whose hosts are all
    // unhealthy balances over them anyway.
    const unhealthy = `  - name: unhealthy
    type: STATIC
    common_lb_config: { healthy_panic_threshold: { value: 0 } }
    load_assignment:
      cluster_name: unhealthy
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${a.port} } } }, health_status: UNHEALTHY }] }]
`;
    const limits = '    circuit_breakers: { thresholds: [{ max_connections: 1, max_pending_requests: 1 }] }\n';
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${hcmListener('pol', rc)}
  clusters:
${staticCluster('a', [a.port])}
${staticCluster('flaky', [dead, a.port])}
${staticCluster('limited', [a.port], limits)}
${unhealthy}`,
      { engine },
    );
    base = `http://127.0.0.1:${await strait.port('pol')}`;
  });

  afterAll(async () => {
    await strait?.stop();
    await a?.close();
  });

  async function call(p: string, headers: Record<string, string> = {}, method: 'GET' | 'POST' = 'GET') {
    const r = await request(`${base}${p}`, { headers, method, body: method === 'POST' ? 'payload' : undefined });
    return { status: r.statusCode, headers: r.headers, text: await r.body.text() };
  }

  it('answers 504 when the route timeout passes first', async () => {
    const r = await call('/timeout', { 'x-test-delay-ms': '5000' });
    expect(r.status).toBe(504);
    expect(r.text).toBe('upstream request timeout');
    await strait.waitStat('cluster.a.upstream_rq_timeout', (v) => v === 1);
    // The request still in flight upstream is given up on this side: a local reset.
    expect(await strait.stat('cluster.a.upstream_rq_tx_reset')).toBe(1);
    expect(await strait.stat('cluster.a.upstream_rq_rx_reset')).toBe(0);
    expect(await strait.stat('http.pol.downstream_rq_5xx')).toBeGreaterThanOrEqual(1);
  });

  it('retries 5xx up to num_retries and reports the retries', async () => {
    // Without a policy the first 503 is final.
    expect((await call('/plain', failing(1))).status).toBe(503);
    const ok = await call('/retry5xx', failing(2));
    expect(ok.status).toBe(200);
    expect((JSON.parse(ok.text) as Echo).url).toBe('/retry5xx');
    expect(await strait.stat('cluster.a.upstream_rq_retry')).toBe(2);
    expect(await strait.stat('cluster.a.upstream_rq_retry_success')).toBe(1);
    // One failure more than the budget: the last 503 reaches the client.
    const exhausted = await call('/retry5xx', failing(3));
    expect(exhausted.status).toBe(503);
    expect(await strait.stat('cluster.a.upstream_rq_retry_limit_exceeded')).toBe(1);
  });

  it('gateway-error retries 502/503/504 but not 500', async () => {
    expect((await call('/gateway', failing(1, '502'))).status).toBe(200);
    expect((await call('/gateway', failing(1, '500'))).status).toBe(500);
  });

  it('retriable-status-codes retries only the listed codes', async () => {
    expect((await call('/codes', failing(1, '418'))).status).toBe(200);
    expect((await call('/codes', failing(1, '503'))).status).toBe(503);
  });

  it('retry_on reset retries a request whose connection was reset', async () => {
    // POST: never retried transparently, so only the policy can save it.
    const plain = await call('/plain', failing(1, 'reset'), 'POST');
    expect(plain.status).toBe(503);
    expect(plain.text).toContain('reset reason: connection termination');
    const r = await call('/reset', failing(1, 'reset'), 'POST');
    expect(r.status).toBe(200);
    expect((JSON.parse(r.text) as Echo).bodyLength).toBe(7);
  });

  it('per_try_timeout abandons a hanging try and retries', async () => {
    const r = await call('/pertry', failing(1, 'hang'));
    expect(r.status).toBe(200);
    await strait.waitStat('cluster.a.upstream_rq_per_try_timeout', (v) => v === 1);
  });

  it('connect-failure retries on another host; without it the failure reaches the client', async () => {
    const plain: number[] = [];
    for (let i = 0; i < 6; i++) plain.push((await call('/connect')).status);
    expect(plain.filter((s) => s === 503).length).toBe(3);
    expect(plain.filter((s) => s === 200).length).toBe(3);
    const retried: number[] = [];
    for (let i = 0; i < 6; i++) retried.push((await call('/connect-retry')).status);
    expect(retried.every((s) => s === 200)).toBe(true);
    expect(await strait.stat('cluster.flaky.upstream_cx_connect_fail')).toBeGreaterThanOrEqual(6);
  });

  it('answers 503 no healthy upstream when every host is unhealthy', async () => {
    const r = await call('/unhealthy');
    expect(r.status).toBe(503);
    expect(r.text).toBe('no healthy upstream');
  });

  it('bounds upstream connections and pending requests with the circuit breakers', async () => {
    const before = a.connections;
    const pool = new Pool(base, { connections: 3 });
    try {
      const rs = await Promise.all(
        [0, 1, 2].map(async (i) => {
          const r = await pool.request({ path: `/limited/${i}`, method: 'GET', headers: { 'x-test-delay-ms': '1000' } });
          return { status: r.statusCode, overloaded: r.headers['x-envoy-overloaded'], text: await r.body.text() };
        }),
      );
      // One on the only connection, one waiting for it, one turned away.
      expect(rs.filter((r) => r.status === 200).length).toBe(2);
      const over = rs.filter((r) => r.status === 503);
      expect(over.length).toBe(1);
      expect(over[0]!.overloaded).toBe('true');
      expect(a.connections - before).toBe(1);
      expect(await strait.stat('cluster.limited.upstream_rq_pending_overflow')).toBe(1);
    } finally {
      await pool.close();
    }
  });
});

describe('http_connection_manager config validation', () => {
  const dir = tmpDir();
  const cluster = staticCluster('a', [9]);
  const cases: Array<[string, string, string[]]> = [
    ['rds', hcmListener('l', routes('match: { prefix: "/" }\n    route: { cluster: a }'), '          rds: { route_config_name: r, config_source: { ads: {} } }\n'), ['filters[0].typed_config.rds', 'not supported']],
    ['unknown cluster', hcmListener('l', routes('match: { prefix: "/" }\n    route: { cluster: nope }')), ['route_config.virtual_hosts[0].routes[0].route.cluster', 'unknown cluster "nope"']],
    ['hedge policy', hcmListener('l', routes('match: { prefix: "/" }\n    route: { cluster: a, hedge_policy: { initial_requests: 2 } }')), ['routes[0].route.hedge_policy', 'not supported']],
    ['HTTP3 codec', hcmListener('l', routes('match: { prefix: "/" }\n    route: { cluster: a }'), '          codec_type: HTTP3\n'), ['typed_config.codec_type', 'HTTP3']],
  ];
  it.each(cases)('rejects %s with its field path', async (_what, listener, fragments) => {
    const file = path.join(dir, `${_what.replace(/\W+/g, '_')}.yaml`);
    fs.writeFileSync(file, `static_resources:\n  listeners:\n${listener}  clusters:\n${cluster}`);
    const r = await runCli(['--config', file, '--mode', 'validate']);
    expect(r.code, r.stderr).toBe(1);
    for (const f of fragments) expect(r.stderr).toContain(f);
  });

  it('rejects unsupported fields of a supported HTTP filter with their path', async () => {
    const l = hcmListener('l', routes('match: { prefix: "/" }\n    route: { cluster: a }')).replace(
      '          http_filters:\n',
      '          http_filters:\n          - name: envoy.filters.http.local_ratelimit\n            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit, stat_prefix: rl, token_bucket: { max_tokens: 1, fill_interval: 1s }, local_cluster_rate_limit: {} }\n',
    );
    const file = path.join(dir, 'rl.yaml');
    fs.writeFileSync(file, `static_resources:\n  listeners:\n${l}  clusters:\n${cluster}`);
    const r = await runCli(['--config', file, '--mode', 'validate']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('http_filters[0].typed_config.local_cluster_rate_limit');
  });

  it('rejects an unsupported HTTP filter', async () => {
    const l = hcmListener('l', routes('match: { prefix: "/" }\n    route: { cluster: a }')).replace(
      '          http_filters:\n',
      '          http_filters:\n          - name: envoy.filters.http.jwt_authn\n            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication }\n',
    );
    const file = path.join(dir, 'jwt_authn.yaml');
    fs.writeFileSync(file, `static_resources:\n  listeners:\n${l}  clusters:\n${cluster}`);
    const r = await runCli(['--config', file, '--mode', 'validate']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('http_filters[0]');
    expect(r.stderr).toContain('envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication is not supported yet');
  });
});
