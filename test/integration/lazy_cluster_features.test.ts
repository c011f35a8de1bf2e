import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { AdsServer } from '../../src/xds/server/ads_server.js';
import { loadResourceDir } from '../../src/xds/server/resource_dir.js';
import { startModuleLogged, type LoggedRun } from '../helpers/module_log.js';
import { fetchTag, tagServer } from '../helpers/net.js';
import { ADMIN, StraitProcess, tcpListener, tmpDir } from '../helpers/strait.js';
import { adsBootstrap, eventually, res, writeResources } from '../helpers/xds.js';

/**
 * Idle memory: a cluster's optional features (LB policies other than ROUND_ROBIN, active health
 * checking, outlier detection, subsets) load only when a cluster names them: at start-up for the
 * bootstrap's clusters, and before the swap for a CDS update naming one not used so far. Module
 * loads are logged by a loader hook (test/fixtures/module_log), as in lazy_modules.test.ts.
 */
const FEATURE_MODULES = {
  ringHash: 'dist/upstream/lb/ring_hash.js',
  leastRequest: 'dist/upstream/lb/least_request.js',
  maglev: 'dist/upstream/lb/maglev.js',
  random: 'dist/upstream/lb/random.js',
  health: 'dist/upstream/health/checker.js',
  outlier: 'dist/upstream/outlier/detector.js',
  subset: 'dist/upstream/subset/subset_lb.js',
};

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

/** Cluster fields, indented to the cluster's keys by `pad`. */
const health = (pad: string) => `${pad}health_checks:
${pad}- timeout: 0.5s
${pad}  interval: 0.1s
${pad}  no_traffic_interval: 0.1s
${pad}  unhealthy_threshold: 2
${pad}  healthy_threshold: 1
${pad}  tcp_health_check: {}
`;
const outlier = (pad: string) => `${pad}outlier_detection: { consecutive_5xx: 5, interval: 1s }
`;

describe('cluster features load as clusters name them', () => {
  it('bootstrap clusters naming RING_HASH, health checks, outlier detection, LEAST_REQUEST and subsets load those and work', async () => {
    const rh = await tagServer('rh');
    const sub = await tagServer('sub');
    closers.push(() => rh.close(), () => sub.close());
    const { strait, modules } = await startLogged(`${ADMIN}static_resources:
  listeners:
${tcpListener('l-rh', 'rh')}${tcpListener('l-sub', 'sub')}
  clusters:
  - name: rh
    type: STATIC
    connect_timeout: 1s
    lb_policy: RING_HASH
${health('    ')}${outlier('    ')}    load_assignment:
      cluster_name: rh
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${rh.port} } } } }] }]
  - name: sub
    type: STATIC
    connect_timeout: 1s
    lb_policy: LEAST_REQUEST
    lb_subset_config:
      fallback_policy: ANY_ENDPOINT
      subset_selectors: [{ keys: [version] }]
    load_assignment:
      cluster_name: sub
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${sub.port} } } }
          metadata: { filter_metadata: { envoy.lb: { version: v1 } } }
`);
    expect(await fetchTag(await strait.port('l-rh'))).toBe('rh');
    expect(await fetchTag(await strait.port('l-sub'))).toBe('sub');
    // The features run: the ring is built, the checker probes, the detector is registered.
    expect(await strait.stat('cluster.rh.ring_hash_lb.size')).toBeGreaterThan(0);
    await strait.waitStat('cluster.rh.health_check.success', (v) => v > 0);
    expect(await strait.stat('cluster.rh.health_check.healthy')).toBe(1);
    const loaded = modules();
    for (const m of [FEATURE_MODULES.ringHash, FEATURE_MODULES.leastRequest, FEATURE_MODULES.health, FEATURE_MODULES.outlier, FEATURE_MODULES.subset]) expect(loaded).toContain(m);
    // Only what was named.
    for (const m of [FEATURE_MODULES.maglev, FEATURE_MODULES.random]) expect(loaded).not.toContain(m);
  });

  it('a CDS update naming a policy and features not loaded yet loads them before the swap, and the cluster serves', async () => {
    const before = await tagServer('before');
    const after = await tagServer('after');
    closers.push(() => before.close(), () => after.close());
    const dir = tmpDir('strait-lazy-cds-');
    const server = new AdsServer();
    closers.push(async () => {
      await server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });
    let version = 0;
    const push = (cluster: string) => {
      writeResources(dir, 'listeners.yaml', [res.tcpListener('l', 'svc')]);
      writeResources(dir, 'clusters.yaml', [cluster]);
      server.update({ version: String(++version), resources: loadResourceDir(dir).resources });
    };
    push(res.staticCluster('svc', before.port));
    const port = await server.listen('127.0.0.1', 0);
    const { strait, modules } = await startLogged(adsBootstrap(port, 'DELTA_GRPC', 'lazy-node'));
    const l = await eventually(() => strait.port('l'), (p) => p > 0, 15_000, 'listener l active');
    expect(await fetchTag(l)).toBe('before');
    for (const m of [FEATURE_MODULES.maglev, FEATURE_MODULES.health, FEATURE_MODULES.outlier]) expect(modules()).not.toContain(m);

    const modified = (await strait.stat('cluster_manager.cluster_modified')) ?? 0;
    push(res.staticCluster('svc', after.port).replace('  type: STATIC\n', `  type: STATIC\n  lb_policy: MAGLEV\n${health('  ')}${outlier('  ')}`));
    await strait.waitStat('cluster_manager.cluster_modified', (v) => v === modified + 1);
    // Swapped in complete: the table is built and the first health check has run.
    expect(await fetchTag(l)).toBe('after');
    expect(await strait.stat('cluster.svc.maglev_lb.max_entries_per_host')).toBeGreaterThan(0);
    expect(await strait.stat('cluster.svc.health_check.healthy')).toBe(1);
    const loaded = modules();
    for (const m of [FEATURE_MODULES.maglev, FEATURE_MODULES.health, FEATURE_MODULES.outlier]) expect(loaded).toContain(m);
  });
});
