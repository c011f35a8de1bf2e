import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { httpUpstream, type TestUpstream } from '../helpers/http.js';
import { startModuleLogged, type LoggedRun } from '../helpers/module_log.js';
import { tagServer } from '../helpers/net.js';
import { ADMIN, runCli, staticCluster, StraitProcess, tmpDir } from '../helpers/strait.js';

/**
 * Idle memory: the proxy imports a filter's module, and the protobufjs/yaml file readers, only
 * when its config names them. Each proxy runs with a module loader hook that logs every module
 * it loads (test/fixtures/module_log), and the test reads that list once the proxy is LIVE.
 */
const running: StraitProcess[] = [];
const closers: Array<() => Promise<void>> = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop()));
  await Promise.all(closers.splice(0).map((c) => c()));
});

async function startLogged(config: string): Promise<LoggedRun> {
  const run = await startModuleLogged(config);
  running.push(run.strait);
  return run;
}

function tcpListener(name: string, cluster: string): string {
  return `  - name: ${name}
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: ${name}
          cluster: ${cluster}
`;
}

const UNUSED_BY_L4 = [
  // (its rds_table.js, the tiny RDS table type the bootstrap check hands out, may load)
  'dist/filters/network/http_connection_manager/config.js',
  'dist/filters/network/http_connection_manager/http1_session.js',
  'dist/filters/network/rpc_proxy/',
  'dist/filters/network/rbac/',
  'dist/filters/network/local_ratelimit/',
  'dist/filters/http/fault/',
  'dist/filters/http/rbac/',
  'dist/filters/http/local_ratelimit/',
  'dist/filters/http/buffer/',
  'dist/filters/http/priority_ratelimit/',
  'dist/router/http_route_table.js',
  'dist/xds/server/',
  'dist/config/registry.js',
  'node_modules/protobufjs/',
  'node_modules/yaml/',
  // No TLS is configured.
  'node:tls',
  'node:crypto',
  // No RPC filter and no RPC heartbeat health check.
  'dist/protocols/index.js',
  'dist/protocols/hessian2.js',
  // No name to resolve (STATIC clusters only).
  'node:dns',
  // One ROUND_ROBIN cluster: no other LB policy, health checking, outlier detection or subsets.
  'dist/upstream/lb/index.js',
  'dist/upstream/lb/random.js',
  'dist/upstream/lb/least_request.js',
  'dist/upstream/lb/ring_hash.js',
  'dist/upstream/lb/maglev.js',
  'dist/upstream/health/checker.js',
  'dist/upstream/health/probe.js',
  'dist/upstream/health/http_probe.js',
  'dist/upstream/health/grpc_probe.js',
  'dist/upstream/health/rpc_probe.js',
  'dist/upstream/outlier/detector.js',
  'dist/upstream/subset/subset_lb.js',
];

describe('modules load as the config names them', () => {
  it('a tcp_proxy-only config loads tcp_proxy and none of the other filters, protobufjs or yaml', async () => {
    const up = await tagServer('l4');
    closers.push(() => up.close());
    const { strait, modules } = await startLogged(`${ADMIN}static_resources:
  listeners:
${tcpListener('l4', 'up')}
  clusters:
${staticCluster('up', [up.port])}`);
    // It proxies: the filter it did load works.
    const port = await strait.port('l4');
    const got = await new Promise<string>((resolve, reject) => {
      let data = '';
      const s = net.connect(port, '127.0.0.1');
      s.on('data', (d: Buffer) => (data += d));
      s.on('end', () => resolve(data));
      s.on('error', reject);
    });
    expect(got).toBe('l4');
    const loaded = modules();
    expect(loaded).toContain('dist/filters/network/tcp_proxy/config.js');
    for (const prefix of UNUSED_BY_L4) expect(loaded.filter((m) => m.startsWith(prefix)), prefix).toEqual([]);
  });

  it('an HCM with routes from a file loads the file reader and every HTTP filter (the file may name any per route), and no unnamed network filter', async () => {
    const up: TestUpstream = await httpUpstream('h');
    closers.push(() => up.close());
    const dir = tmpDir();
    closers.push(async () => fs.rmSync(dir, { recursive: true, force: true }));
    const routes = path.join(dir, 'routes.yaml');
    fs.writeFileSync(
      routes,
      `resources:
- "@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
  name: local
  virtual_hosts:
  - name: all
    domains: ["*"]
    routes:
    - match: { prefix: "/limited" }
      route: { cluster: h }
      # A per-route config of a filter the bootstrap's chain does not name: parsing the file
      # must find its factory (it used to stop start-up: "used before its module was loaded").
      typed_per_filter_config:
        envoy.filters.http.local_ratelimit:
          "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
          stat_prefix: per_route
          token_bucket: { max_tokens: 1, tokens_per_fill: 1, fill_interval: 3600s }
    - match: { prefix: "/" }
      route: { cluster: h }
`,
    );
    const { strait, modules } = await startLogged(`${ADMIN}static_resources:
  listeners:
  - name: web
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: web
          http_filters:
          - name: envoy.filters.http.fault
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
              abort: { percentage: { numerator: 100 }, header_abort: {} }
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
          rds:
            route_config_name: local
            config_source: { path_config_source: { path: ${JSON.stringify(routes)} } }
  clusters:
${staticCluster('h', [up.port])}`);
    const base = `http://127.0.0.1:${await strait.port('web')}`;
    // The route from the file, and the fault filter (aborts only when asked by header).
    const ok = await request(`${base}/x`);
    expect(ok.statusCode).toBe(200);
    expect(ok.headers['x-upstream']).toBe('h');
    await ok.body.text();
    const aborted = await request(`${base}/x`, { headers: { 'x-envoy-fault-abort-request': '503' } });
    expect(aborted.statusCode).toBe(503);
    await aborted.body.text();
    const loaded = modules();
    for (const m of ['dist/filters/network/http_connection_manager/config.js', 'dist/filters/http/fault/config.js', 'dist/xds/server/resource_dir.js']) expect(loaded).toContain(m);
    expect(loaded).toContain('dist/filters/http/local_ratelimit/config.js');
    for (const prefix of ['dist/filters/network/rpc_proxy/', 'dist/filters/network/rbac/', 'dist/filters/network/local_ratelimit/']) {
      expect(loaded.filter((m) => m.startsWith(prefix)), prefix).toEqual([]);
    }
  });

  it('an unknown filter next to known ones is still rejected with its field path and the supported list', async () => {
    const dir = tmpDir();
    closers.push(async () => fs.rmSync(dir, { recursive: true, force: true }));
    const cfg = path.join(dir, 'bad.yaml');
    fs.writeFileSync(
      cfg,
      `static_resources:
  listeners:
  - name: l
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.rbac
        typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC, stat_prefix: r, rules: {} }
      - name: envoy.filters.network.redis_proxy
      - name: envoy.filters.network.tcp_proxy
        typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: nowhere }
  clusters:
${staticCluster('c', [1])}`,
    );
    const r = await runCli(['--config', cfg, '--mode', 'validate']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('static_resources.listeners[0].filter_chains[0].filters[1].name');
    expect(r.stderr).toContain('unsupported network filter "envoy.filters.network.redis_proxy"');
    expect(r.stderr).toContain('envoy.filters.network.http_connection_manager');
    // The loaded tcp_proxy parsed its config too: its unknown cluster is reported in the same run.
    expect(r.stderr).toContain('filters[2].typed_config.cluster');
  });
});
