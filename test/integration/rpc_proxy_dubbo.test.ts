// rpc_proxy and Envoy's dubbo_proxy with real Dubbo peers: Apache dubbo-js clients in their own
// processes (they number calls from 1, so their ids collide upstream) and hessian.js providers.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { createRequire } from 'node:module';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deadPort } from '../helpers/net.js';
import { ADMIN, ENGINES, REPO, runCli, startStrait, staticCluster, type StraitProcess, rpcProxyListener } from '../helpers/strait.js';

const require = createRequire(import.meta.url);
const FIXTURES = path.join(REPO, 'test/fixtures/rpc');
const { startDubboProvider } = require(path.join(FIXTURES, 'dubbo_provider.cjs'));

type Provider = { port: number; requests: { id: number }[]; heartbeats: { sent: number; acked: number }; connections: number; close(): Promise<void> };
type Result = { ok: true; value: unknown } | { ok: false; error: string; name?: string };

const IFACE = 'com.example.UserService';

function dubboCall(port: number, iface: string, version: string, group: string, method: string, count: number, arg: string, shape = ''): Promise<Result[]> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [path.join(FIXTURES, 'dubbo_client.cjs'), String(port), iface, version, group || '-', method, String(count), arg, ...(shape ? [shape] : [])], { timeout: 20_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`dubbo_client failed: ${err.message}\n${stderr}`));
      else resolve(JSON.parse(stdout));
    });
  });
}

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(ENGINES)("Envoy's dubbo_proxy on the %s engine", (engine) => {
  let stable: Provider;
  let gray: Provider;
  let v2: Provider;
  let strait: StraitProcess;
  let port: number;

  beforeAll(async () => {
    // The stable provider also sends its own heartbeats on idle connections, as Java providers do.
    stable = await startDubboProvider({ interface: IFACE, version: '1.0.0', name: 'stable', methods: ['hello', 'bye'], heartbeatIntervalMs: 150 });
    gray = await startDubboProvider({ interface: IFACE, version: '1.0.0', group: 'gray', name: 'gray', methods: ['hello', 'bye'] });
    v2 = await startDubboProvider({ interface: IFACE, version: '2.0.0', name: 'v2', methods: ['hello', 'bye'] });
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
  - name: dubbo
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.dubbo_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.dubbo_proxy.v3.DubboProxy
          stat_prefix: dubbo
          route_config:
          - name: gray
            interface: ${IFACE}
            group: gray
            routes: [ { match: { method: { name: { exact: hello } } }, route: { cluster: gray } } ]
          - name: v2
            interface: ${IFACE}
            version: 2.0.0
            routes: [ { match: {}, route: { cluster: v2 } } ]
          - name: default
            interface: "com.example.*"
            routes:
            - match: { method: { name: { exact: hello } } }
              route: { cluster: stable }
            - match: { method: { name: { prefix: by } } }
              route:
                weighted_clusters:
                  clusters: [ { name: stable, weight: 50 }, { name: stable_too, weight: 50 } ]
  clusters:
${staticCluster('stable', [stable.port])}${staticCluster('stable_too', [stable.port])}${staticCluster('gray', [gray.port])}${staticCluster('v2', [v2.port])}`,
      { engine },
    );
    port = await strait.port('dubbo');
  });

  afterAll(async () => {
    await strait?.stop();
    await Promise.all([stable?.close(), gray?.close(), v2?.close()]);
  });

  it('routes by group (from the attachments), version and method', async () => {
    expect(await dubboCall(port, IFACE, '1.0.0', 'gray', 'hello', 1, 'a')).toEqual([{ ok: true, value: 'gray:hello:a-0' }]);
    expect(await dubboCall(port, IFACE, '1.0.0', '', 'hello', 1, 'b')).toEqual([{ ok: true, value: 'stable:hello:b-0' }]);
    expect(await dubboCall(port, IFACE, '2.0.0', '', 'hello', 1, 'c')).toEqual([{ ok: true, value: 'v2:hello:c-0' }]);
    expect(await strait.stat('dubbo.dubbo.request')).toBeGreaterThanOrEqual(3);
  });

  it('balances per request over weighted clusters on shared upstream connections', async () => {
    const before = await strait.stat('cluster.stable_too.upstream_rq_total');
    const r = await dubboCall(port, IFACE, '1.0.0', '', 'bye', 40, 'w');
    expect(r).toEqual(Array.from({ length: 40 }, (_, i) => ({ ok: true, value: `stable:bye:w-${i}` })));
    const a = await strait.stat('cluster.stable.upstream_rq_total');
    const b = (await strait.stat('cluster.stable_too.upstream_rq_total')) - before;
    // One client connection, yet both clusters got calls: balancing is per request.
    expect(b).toBeGreaterThan(0);
    expect(a).toBeGreaterThan(0);
  });

  it('maps colliding ids from two client processes back to the right caller', async () => {
    const [x, y] = await Promise.all([dubboCall(port, IFACE, '1.0.0', '', 'hello', 50, 'x'), dubboCall(port, IFACE, '1.0.0', '', 'hello', 50, 'y')]);
    expect(x).toEqual(Array.from({ length: 50 }, (_, i) => ({ ok: true, value: `stable:hello:x-${i}` })));
    expect(y).toEqual(Array.from({ length: 50 }, (_, i) => ({ ok: true, value: `stable:hello:y-${i}` })));
  });

  it('answers an unrouted call with a Dubbo error status before the client times out', async () => {
    const t0 = Date.now();
    const [r] = await dubboCall(port, 'org.other.Service', '1.0.0', '', 'hello', 1, 'z');
    expect(r!.ok).toBe(false);
    expect((r as { error: string }).error).toContain('no route');
    expect(Date.now() - t0).toBeLessThan(2500); // the client gives up at 3 s
    expect(await strait.stat('dubbo.dubbo.local_response_no_route')).toBeGreaterThanOrEqual(1);
  });

  it('tolerates unsolicited provider heartbeats and answers them', async () => {
    await dubboCall(port, IFACE, '1.0.0', '', 'hello', 1, 'hb');
    // Idle upstream connection: the provider sends heartbeats; the proxy must ack them.
    await delay(700);
    expect(stable.heartbeats.sent).toBeGreaterThan(0);
    expect(stable.heartbeats.acked).toBeGreaterThan(0);
    expect(await strait.stat('dubbo.dubbo.upstream_heartbeat')).toBeGreaterThan(0);
    expect(await dubboCall(port, IFACE, '1.0.0', '', 'hello', 1, 'after')).toEqual([{ ok: true, value: 'stable:hello:after-0' }]);
  });
});

describe.each(ENGINES)('rpc_proxy policies with Dubbo on the %s engine', (engine) => {
  let fast: Provider;
  let slow: Provider;
  let busy: Provider;
  let strait: StraitProcess;
  let port: number;
  let dead: number;

  beforeAll(async () => {
    fast = await startDubboProvider({ interface: IFACE, version: '1.0.0', name: 'fast', methods: ['hello', 'hedged'] });
    slow = await startDubboProvider({
      interface: IFACE,
      version: '1.0.0',
      name: 'slow',
      methods: {
        hello: (args: string[]) => `slow:hello:${args[0]}`,
        hedged: async (args: string[]) => {
          await delay(1500);
          return `slow:hedged:${args[0]}`;
        },
      },
    });
    busy = await startDubboProvider({
      interface: 'com.example.Busy',
      version: '1.0.0',
      name: 'busy',
      methods: { hedged: async () => (await delay(800), 'busy') },
    });
    dead = await deadPort();
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${rpcProxyListener('rpc', `          protocol: AUTO
          upstream_heartbeat_interval: 0.2s
          route_config:
          - interface: com.example.Dead
            routes: [ { match: {}, route: { cluster: nowhere } } ]
          - interface: com.example.Busy
            routes: [ { match: {}, route: { cluster: busy } } ]
          - interface: ${IFACE}
            routes:
            - match: { method: { name: { exact: hedged } } }
              route:
                cluster: slow_then_fast
                timeout: 2.5s
                retry_policy: { num_retries: 1, per_try_timeout: 0.2s }
                hedge_policy: { hedge_on_per_try_timeout: true }
            - match: { headers: [ { name: flaky, present_match: true } ] }
              route: { cluster: nowhere }
            - match: {}
              route:
                cluster: half_dead
                retry_policy: { retry_on: connect-failure, num_retries: 2 }`)}
  clusters:
${staticCluster('slow_then_fast', [slow.port, fast.port])}${staticCluster('busy', [busy.port], '    circuit_breakers: { thresholds: [ { max_requests: 1 } ] }\n')}${staticCluster('half_dead', [dead, fast.port], '    circuit_breakers: { thresholds: [ { max_retries: 100 } ] }\n    outlier_detection: { consecutive_5xx: 2, interval: 0.1s, base_ejection_time: 60s, max_ejection_percent: 100 }\n')}${staticCluster('nowhere', [dead])}`,
      { engine },
    );
    port = await strait.port('rpc');
  });

  afterAll(async () => {
    await strait?.stop();
    await Promise.all([fast?.close(), slow?.close(), busy?.close()]);
  });

  it('retries calls whose upstream connection fails on another host, so no client sees the dead one', async () => {
    const r = await dubboCall(port, IFACE, '1.0.0', '', 'hello', 20, 'r');
    expect(r).toEqual(Array.from({ length: 20 }, (_, i) => ({ ok: true, value: `fast:hello:r-${i}` })));
    expect(await strait.stat('rpc.rpc.upstream_rq_retry')).toBeGreaterThan(0);
    expect(await strait.stat('cluster.half_dead.upstream_cx_connect_fail')).toBeGreaterThan(0);
    expect(await strait.stat('cluster.half_dead.upstream_rq_retry_overflow')).toBe(0);
  });

  it('ejects the dead host through outlier detection, so later calls stop trying it', async () => {
    // Each round of calls makes one connection attempt to the dead host (one connect failure,
    // whatever the number of calls waiting on it); two in a row eject it at the next sweep.
    for (let i = 0; i < 10 && !(await strait.stat('cluster.half_dead.outlier_detection.ejections_enforced_total')); i++) {
      expect((await dubboCall(port, IFACE, '1.0.0', '', 'hello', 4, `w${i}`)).every((x) => x.ok)).toBe(true);
      await delay(150);
    }
    expect(await strait.stat('cluster.half_dead.outlier_detection.ejections_enforced_total')).toBeGreaterThanOrEqual(1);
    const failsBefore = await strait.stat('cluster.half_dead.upstream_cx_connect_fail');
    const r = await dubboCall(port, IFACE, '1.0.0', '', 'hello', 20, 'e');
    expect(r.every((x) => x.ok)).toBe(true);
    expect(await strait.stat('cluster.half_dead.upstream_cx_connect_fail')).toBe(failsBefore);
    expect((await strait.get('/clusters')).text).toContain('failed_outlier_check');
  });

  it('answers calls to a dead cluster locally, at once, with the reason', async () => {
    const r = await dubboCall(port, 'com.example.Dead', '1.0.0', '', 'hello', 2, 'd');
    for (const x of r) {
      expect(x.ok).toBe(false);
      expect((x as { error: string }).error).toContain('upstream connect failed');
    }
    expect(await strait.stat('rpc.rpc.local_response_no_upstream')).toBeGreaterThanOrEqual(2);
  });

  it('answers calls over the cluster max_requests locally with an overflow status', async () => {
    // max_requests 1 and a provider that takes 800 ms: of three concurrent calls one goes
    // through and the others fail fast in the proxy, with the circuit breaker named.
    const r = await dubboCall(port, 'com.example.Busy', '1.0.0', '', 'hedged', 3, 'o');
    const overflow = r.filter((x) => !x.ok && (x as { error: string }).error.includes('max_requests'));
    expect(r.filter((x) => x.ok)).toEqual([{ ok: true, value: 'busy' }]);
    expect(overflow.length).toBe(2);
    expect(await strait.stat('rpc.rpc.local_response_overflow')).toBeGreaterThanOrEqual(1);
    expect(await strait.stat('cluster.busy.upstream_rq_pending_overflow')).toBeGreaterThanOrEqual(1);
  });

  it('sends heartbeats on idle provider connections', async () => {
    await dubboCall(port, IFACE, '1.0.0', '', 'hello', 1, 'idle');
    await delay(800);
    expect(fast.heartbeats.received + slow.heartbeats.received).toBeGreaterThan(0);
  });

  it('sends a backup request when the first try passes its per-try timeout, and the faster answer wins', async () => {
    const t0 = Date.now();
    // Round robin sends one of two calls to the slow host first; its backup goes to the fast one.
    const r = await dubboCall(port, IFACE, '1.0.0', '', 'hedged', 2, 'h');
    expect(r).toEqual([
      { ok: true, value: 'fast:hedged:h-0' },
      { ok: true, value: 'fast:hedged:h-1' },
    ]);
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(await strait.stat('cluster.slow_then_fast.upstream_rq_per_try_timeout')).toBeGreaterThanOrEqual(1);
  });
});

describe('version routing with lb_subset_config and route metadata_match (Dubbo)', () => {
  let v1: Provider;
  let v2: Provider;
  let strait: StraitProcess;
  let port: number;

  beforeAll(async () => {
    // Two providers of the same service; only their endpoint metadata tells them apart.
    v1 = await startDubboProvider({ interface: IFACE, version: '1.0.0', name: 'build-v1', methods: ['hello', 'bye'] });
    v2 = await startDubboProvider({ interface: IFACE, version: '1.0.0', name: 'build-v2', methods: ['hello', 'bye'] });
    const ep = (p: number, version: string) => `        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${p} } } }
          metadata: { filter_metadata: { envoy.lb: { version: ${version} } } }`;
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
  - name: dubbo
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.dubbo_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.dubbo_proxy.v3.DubboProxy
          stat_prefix: dubbo
          route_config:
          - interface: ${IFACE}
            routes:
            - match: { method: { name: { exact: hello } } }
              route: { cluster: users, metadata_match: { filter_metadata: { envoy.lb: { version: v2 } } } }
            - match: {}
              route: { cluster: users, metadata_match: { filter_metadata: { envoy.lb: { version: v1 } } } }
  clusters:
  - name: users
    type: STATIC
    connect_timeout: 1s
    lb_subset_config: { subset_selectors: [ { keys: [version] } ], fallback_policy: NO_FALLBACK }
    load_assignment:
      cluster_name: users
      endpoints:
      - lb_endpoints:
${ep(v1.port, 'v1')}
${ep(v2.port, 'v2')}
`,
      { engine: ENGINES[0] },
    );
    port = await strait.port('dubbo');
  });

  afterAll(async () => {
    await strait?.stop();
    await Promise.all([v1?.close(), v2?.close()]);
  });

  it('sends each method to the version its route asks for, and never to the other', async () => {
    const hello = await dubboCall(port, IFACE, '1.0.0', '', 'hello', 20, 'h');
    const bye = await dubboCall(port, IFACE, '1.0.0', '', 'bye', 20, 'b');
    expect(hello).toEqual(Array.from({ length: 20 }, (_, i) => ({ ok: true, value: `build-v2:hello:h-${i}` })));
    expect(bye).toEqual(Array.from({ length: 20 }, (_, i) => ({ ok: true, value: `build-v1:bye:b-${i}` })));
  });
});

// dubbo_proxy `params_match` and `multiple_route_config` (both used to be refused): routes by the
// call's arguments, read from the hessian2 body only for routes that ask. Calls send (String
// "p-i", int i).
describe.each(ENGINES)("dubbo_proxy params_match on the %s engine", (engine) => {
  let low: Provider;
  let seven: Provider;
  let rest: Provider;
  let strait: StraitProcess;
  let port: number;

  beforeAll(async () => {
    low = await startDubboProvider({ interface: IFACE, version: '1.0.0', name: 'low', methods: ['find'] });
    seven = await startDubboProvider({ interface: IFACE, version: '1.0.0', name: 'seven', methods: ['find'] });
    rest = await startDubboProvider({ interface: IFACE, version: '1.0.0', name: 'rest', methods: ['find'] });
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
  - name: dubbo
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.dubbo_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.dubbo_proxy.v3.DubboProxy
          stat_prefix: dubbo
          # The newer spelling of route_config (Envoy deprecates the bare list).
          multiple_route_config:
            name: by-args
            route_config:
            - name: by-args
              interface: ${IFACE}
              routes:
              - match: { method: { name: { exact: find }, params_match: { 1: { range_match: { start: 0, end: 5 } } } } }
                route: { cluster: low }
              - match: { method: { name: { exact: find }, params_match: { 0: { exact_match: p-7 } } } }
                route: { cluster: seven }
              - match: { method: { name: { exact: find } } }
                route: { cluster: rest }
  clusters:
${staticCluster('low', [low.port])}${staticCluster('seven', [seven.port])}${staticCluster('rest', [rest.port])}`,
      { engine },
    );
    port = await strait.port('dubbo');
  });

  afterAll(async () => {
    await strait?.stop();
    await Promise.all([low?.close(), seven?.close(), rest?.close()]);
  });

  it('routes an int argument by range and a string argument by exact value; the rest fall through', async () => {
    const r = await dubboCall(port, IFACE, '1.0.0', '', 'find', 10, 'p', 'with-int');
    const expected = (i: number) => (i < 5 ? 'low' : i === 7 ? 'seven' : 'rest');
    expect(r).toEqual(Array.from({ length: 10 }, (_, i) => ({ ok: true, value: `${expected(i)}:find:p-${i}` })));
  });

  it('a call without the argument does not match the route that asks for it', async () => {
    // One String argument only: argument 1 is absent, so the range route is skipped.
    expect(await dubboCall(port, IFACE, '1.0.0', '', 'find', 1, 'q')).toEqual([{ ok: true, value: 'rest:find:q-0' }]);
  });

  it('refuses multiple_route_config together with route_config, naming the field', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strait-dubbo-cfg-'));
    const cfg = path.join(dir, 'bad.yaml');
    fs.writeFileSync(
      cfg,
      `static_resources:
  listeners:
  - name: dubbo
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.dubbo_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.dubbo_proxy.v3.DubboProxy
          stat_prefix: dubbo
          route_config: [ { name: a, interface: "*", routes: [ { match: {}, route: { cluster: rest } } ] } ]
          multiple_route_config: { name: b, route_config: [ { name: b, interface: "*", routes: [ { match: {}, route: { cluster: rest } } ] } ] }
  clusters:
${staticCluster('rest', [rest.port])}`,
    );
    const r = await runCli(['--mode', 'validate', '--config', cfg]);
    fs.rmSync(dir, { recursive: true, force: true });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('typed_config.multiple_route_config: cannot be combined with route_config');
  });
});
