// rpc_proxy retry host selection: `retry_host_predicate` (previous_hosts only) and
// `host_selection_retry_max_attempts` as the number of extra picks away from a tried host.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deadPort } from '../helpers/net.js';
import { ADMIN, REPO, runCli, startStrait, staticCluster, tmpDir, type StraitProcess } from '../helpers/strait.js';

const require = createRequire(import.meta.url);
const FIXTURES = path.join(REPO, 'test/fixtures/rpc');
const { startDubboProvider } = require(path.join(FIXTURES, 'dubbo_provider.cjs'));

type Provider = { port: number; requests: { id: number }[]; close(): Promise<void> };
type Result = { ok: true; value: unknown } | { ok: false; error: string };

const IFACE = 'com.example.UserService';
const CALLS = 100;

function dubboCall(port: number, method: string, count: number, arg: string): Promise<Result[]> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [path.join(FIXTURES, 'dubbo_client.cjs'), String(port), IFACE, '1.0.0', '-', method, String(count), arg], { timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`dubbo_client failed: ${err.message}\n${stderr}`));
      else resolve(JSON.parse(stdout));
    });
  });
}

/** A route with a retry policy; `extra` is more of the policy's YAML (flow style). */
function route(cluster: string, method: string, extra: string): string {
  return `            - match: { method: { name: { exact: ${method} } } }
              route: { cluster: ${cluster}, retry_policy: { retry_on: connect-failure, num_retries: 1${extra} } }
`;
}

describe('rpc_proxy retry_host_predicate and host_selection_retry_max_attempts', () => {
  let provider: Provider;
  let strait: StraitProcess;
  let port: number;

  beforeAll(async () => {
    provider = await startDubboProvider({ interface: IFACE, version: '1.0.0', name: 'live', methods: ['none', 'many', 'bare'] });
    const dead = await deadPort();
    // RANDOM over a refusing host and a live one: whether a retry lands on the refusing host
    // again depends only on how many extra picks the route allows.
    // The calls run at once: lift the retry breaker (3 by default) so none is refused for it.
    const cluster = (name: string) => staticCluster(name, [dead, provider.port], '    lb_policy: RANDOM\n    circuit_breakers: { thresholds: [ { max_retries: 1000 } ] }\n');
    const pred = `, retry_host_predicate: [ { name: envoy.retry_host_predicates.previous_hosts } ]`;
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
  - name: rpc
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: strait.filters.network.rpc_proxy
        typed_config:
          "@type": type.googleapis.com/strait.rpc_proxy.v1.RpcProxy
          stat_prefix: rpc
          protocol: DUBBO
          route_config:
          - interface: ${IFACE}
            routes:
${route('c0', 'none', `${pred}, host_selection_retry_max_attempts: 0`)}${route('c20', 'many', `${pred}, host_selection_retry_max_attempts: 20`)}${route('cbare', 'bare', '')}  clusters:
${cluster('c0')}${cluster('c20')}${cluster('cbare')}`,
    );
    port = await strait.port('rpc');
  });

  afterAll(async () => {
    await strait?.stop();
    await provider?.close();
  });

  it('max attempts 0: a retry may go back to the refusing host, so some calls fail', async () => {
    const r = await dubboCall(port, 'none', CALLS, 'n');
    const failed = r.filter((x) => !x.ok).length;
    // Each call fails when both picks hit the dead host: ~1 in 4 with no reselect, ~1 in 32
    // with the old fixed three.
    expect(failed).toBeGreaterThan(10);
    expect(await strait.stat('cluster.c0.upstream_rq_retry')).toBeGreaterThan(10);
  });

  it('max attempts 20: the retry always steps away from the tried host, so every call succeeds on the provider', async () => {
    const before = provider.requests.length;
    const r = await dubboCall(port, 'many', CALLS, 'm');
    expect(r.filter((x) => !x.ok)).toEqual([]);
    expect(provider.requests.length - before).toBe(CALLS);
    // Roughly half the calls tried the dead host first and were retried onto the provider.
    expect(await strait.stat('cluster.c20.upstream_rq_retry')).toBeGreaterThan(10);
  });

  it('a retry policy with neither field keeps avoiding tried hosts', async () => {
    const r = await dubboCall(port, 'bare', 20, 'b');
    expect(r.filter((x) => x.ok).length).toBeGreaterThan(15);
  });
});

describe('rpc_proxy retry policy validation', () => {
  const dir = tmpDir('strait-rpc-retry-');
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  async function validate(policy: string): Promise<{ code: number | null; stderr: string }> {
    const file = path.join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
    fs.writeFileSync(
      file,
      `static_resources:
  listeners:
  - name: rpc
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: strait.filters.network.rpc_proxy
        typed_config:
          "@type": type.googleapis.com/strait.rpc_proxy.v1.RpcProxy
          stat_prefix: rpc
          route_config:
          - interface: ${IFACE}
            routes:
            - match: {}
              route: { cluster: backend, retry_policy: { num_retries: 1${policy} } }
  clusters:
${staticCluster('backend', [9])}`,
    );
    const r = await runCli(['--config', file, '--mode', 'validate']);
    return { code: r.code, stderr: r.stderr };
  }

  it('accepts previous_hosts, by name or by typed_config type', async () => {
    expect(await validate(', retry_host_predicate: [ { name: envoy.retry_host_predicates.previous_hosts } ], host_selection_retry_max_attempts: 5')).toMatchObject({ code: 0 });
    const typed = ', retry_host_predicate: [ { name: x, typed_config: { "@type": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate } } ]';
    expect(await validate(typed)).toMatchObject({ code: 0 });
  });

  it('refuses any other predicate, naming the field path', async () => {
    const r = await validate(', retry_host_predicate: [ { name: envoy.retry_host_predicates.previous_hosts }, { name: envoy.retry_host_predicates.omit_canary_hosts } ]');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('route_config[0].routes[0].route.retry_policy.retry_host_predicate[1].name');
    expect(r.stderr).toContain('omit_canary_hosts');
  });

  it('refuses an out-of-range host_selection_retry_max_attempts, naming the field path', async () => {
    const r = await validate(', host_selection_retry_max_attempts: 1000');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('route_config[0].routes[0].route.retry_policy.host_selection_retry_max_attempts');
  });
});
