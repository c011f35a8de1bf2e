import fs from 'node:fs';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdsClient, type ResourceUpdate } from '../../src/xds/client/ads_client.js';
import { AdsServer } from '../../src/xds/server/ads_server.js';
import { loadResourceDir } from '../../src/xds/server/resource_dir.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE, ROUTE_TYPE } from '../../src/xds/proto.js';
import { httpUpstream, type TestUpstream } from '../helpers/http.js';
import { runCli, startStrait, tmpDir, type StraitProcess } from '../helpers/strait.js';
import { adsBootstrap, eventually, res, writeResources } from '../helpers/xds.js';

type Obj = Record<string, any>;

const CLUSTERS = 50;

/** An LDS listener whose HCM takes its routes from RDS over ADS. */
function rdsListener(name: string, routeConfigName: string): string {
  return `- "@type": type.googleapis.com/envoy.config.listener.v3.Listener
  name: ${name}
  address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
  filter_chains:
  - filters:
    - name: envoy.filters.network.http_connection_manager
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
        stat_prefix: ${name}
        rds: { route_config_name: ${routeConfigName}, config_source: { ads: {}, resource_api_version: V3 } }
        http_filters:
        - name: envoy.filters.http.router
          typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
`;
}

/** `/hdr` picks its cluster from the x-cluster header (names no cluster up front); the rest goes to `cluster`. */
function routeConfig(name: string, cluster: string): string {
  return `- "@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
  name: ${name}
  virtual_hosts:
  - name: all
    domains: ["*"]
    routes:
    - match: { prefix: "/hdr" }
      route: { cluster_header: x-cluster }
    - match: { prefix: "/" }
      route: { cluster: ${cluster} }
`;
}

function get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; upstream: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, headers, agent: false }, (r) => {
      r.resume();
      r.on('end', () => resolve({ status: r.statusCode!, upstream: String(r.headers['x-upstream'] ?? '') }));
    });
    req.on('error', reject);
  });
}

const onDemandBootstrap = (port: number, apiType: 'GRPC' | 'DELTA_GRPC' = 'DELTA_GRPC') =>
  adsBootstrap(port, apiType, 'on-demand-node').replace('metadata: { app: strait-test }', 'metadata: { app: strait-test, STRAIT_ON_DEMAND_CLUSTERS: true }');

describe('on-demand clusters over delta ADS', () => {
  let dir: string;
  let server: AdsServer;
  let strait: StraitProcess;
  let a: TestUpstream;
  let b: TestUpstream;
  let generation = 0;
  let restarted: StraitProcess | undefined;
  let serverClosed = false;

  /** Loads the directory and pushes it as a new version (what `strait xds-server` does on a change). */
  const push = () => server.update({ version: String(++generation), resources: loadResourceDir(dir).resources });

  /** Dynamic clusters Strait holds, from /clusters (the static xDS cluster left out). */
  const held = async () => {
    const j = JSON.parse((await strait.get('/clusters?format=json')).text) as { cluster_statuses: Obj[] };
    return j.cluster_statuses.filter((c) => c.added_via_api).map((c) => String(c.name)).sort();
  };
  /** What the server was asked for, per stream: on demand there is one stream naming clusters. */
  const serverView = (type: string) => server.subscriptions(type);

  beforeAll(async () => {
    a = await httpUpstream('A');
    b = await httpUpstream('B');
    dir = tmpDir('strait-ondemand-');
    const clusters: string[] = [];
    const assignments: string[] = [];
    for (let i = 0; i < CLUSTERS; i++) {
      clusters.push(res.edsCluster(`svc-${i}`));
      assignments.push(res.assignment(`svc-${i}`, [i % 2 === 0 ? b.port : a.port]));
    }
    writeResources(dir, '0-listeners.yaml', [rdsListener('web', 'web-routes')]);
    writeResources(dir, '1-clusters.yaml', clusters);
    writeResources(dir, '2-endpoints.yaml', assignments);
    writeResources(dir, '3-routes.yaml', [routeConfig('web-routes', 'svc-1')]);
    server = new AdsServer();
    push();
    const port = await server.listen('127.0.0.1', 0);
    strait = await startStrait(onDemandBootstrap(port), { args: ['--xds-snapshot', `${dir}.snapshot.json`] });
  });

  afterAll(async () => {
    await strait?.stop();
    await restarted?.stop();
    if (!serverClosed) await server?.close();
    await Promise.all([a?.close(), b?.close()]);
    if (dir) {
      fs.rmSync(dir, { recursive: true, force: true });
      fs.rmSync(`${dir}.snapshot.json`, { force: true });
    }
  });

  it('holds only the clusters its routes name, and the server sends only those', async () => {
    // Ready may come at initial_fetch_timeout on a busy machine, before the listener has warmed.
    const port = await eventually(() => strait.port('web'), (p) => p > 0, 15_000, 'listener web active');
    expect(await eventually(() => get(port, '/'), (r) => r.status === 200, 10_000, 'route to svc-1')).toMatchObject({ upstream: 'A' });
    expect(await held()).toEqual(['svc-1']);
    expect(serverView(CLUSTER_TYPE)).toEqual([expect.objectContaining({ wildcard: false, names: ['svc-1'] })]);
    expect(serverView(ENDPOINT_TYPE)).toEqual([expect.objectContaining({ wildcard: false, names: ['svc-1'] })]);
    const status = JSON.parse((await strait.get('/ondemand/clusters')).text) as Obj;
    expect(status.subscribed).toEqual([{ name: 'svc-1', present: true }]);
  });

  it('a route change subscribes the new cluster, traffic moves to it without a 503, and the unused one is dropped', async () => {
    const port = await strait.port('web');
    writeResources(dir, '3-routes.yaml', [routeConfig('web-routes', 'svc-2')]);
    push();
    // The old table serves until svc-2 has warmed: every request in between still succeeds.
    const statuses: number[] = [];
    await eventually(
      async () => {
        const r = await get(port, '/');
        statuses.push(r.status);
        return r;
      },
      (r) => r.upstream === 'B',
      10_000,
      'route to svc-2',
    );
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    expect(await eventually(held, (h) => h.join() === 'svc-2', 10_000, 'svc-1 dropped')).toEqual(['svc-2']);
    expect(serverView(CLUSTER_TYPE)[0]!.names).toEqual(['svc-2']);
  });

  it('a cluster named only by a request header answers 503 the first time, then is subscribed and serves', async () => {
    const port = await strait.port('web');
    expect((await get(port, '/hdr', { 'x-cluster': 'svc-5' })).status).toBe(503);
    const ok = await eventually(() => get(port, '/hdr', { 'x-cluster': 'svc-5' }), (r) => r.status === 200, 10_000, 'svc-5 subscribed');
    expect(ok.upstream).toBe('A');
    expect(serverView(CLUSTER_TYPE)[0]!.names).toEqual(['svc-2', 'svc-5']);
    const status = JSON.parse((await strait.get('/ondemand/clusters')).text) as Obj;
    expect(status.learned_from_requests).toEqual(['svc-5']);
  });

  it('a cluster the app declares with POST /ondemand/clusters is subscribed; GET cannot declare', async () => {
    const refused = await strait.get('/ondemand/clusters?name=svc-9');
    expect(refused.status).toBe(405);
    const posted = await strait.post('/ondemand/clusters?name=svc-7');
    expect(posted.status).toBe(200);
    expect((JSON.parse(posted.text) as Obj).declared).toEqual(['svc-7']);
    const have = await eventually(held, (h) => h.includes('svc-7'), 10_000, 'svc-7 arrives');
    expect(have).toEqual(['svc-2', 'svc-5', 'svc-7']);
    expect(serverView(CLUSTER_TYPE)[0]!.names).not.toContain('svc-9');
    // Bad input is refused with the parameter named.
    const empty = await strait.post('/ondemand/clusters?name=');
    expect(empty.status).toBe(400);
    expect(empty.text).toMatch(/^name: /);
    // Withdrawn: dropped again.
    expect((await strait.post('/ondemand/clusters?name=svc-7&remove')).status).toBe(200);
    await eventually(held, (h) => !h.includes('svc-7'), 10_000, 'svc-7 dropped');
  });

  it('a restart while the control plane is down serves the on-demand clusters from the persisted snapshot', async () => {
    // The snapshot is written 100 ms after the first update of a burst and stop() is a SIGKILL:
    // the tests above can finish inside one such window, so wait for the file to hold what Strait
    // holds (its clusters, the route to svc-2) before killing it.
    const want = (await held()).join();
    const persisted = async () => {
      try {
        const snap = JSON.parse(fs.readFileSync(`${dir}.snapshot.json`, 'utf8')) as { types: Record<string, { resources: { name: string; any: string }[] }> };
        const route = snap.types[ROUTE_TYPE]?.resources.find((r) => r.name === 'web-routes');
        return { clusters: (snap.types[CLUSTER_TYPE]?.resources ?? []).map((r) => r.name).sort().join(), route: route ? Buffer.from(route.any, 'base64').toString('latin1') : '' };
      } catch {
        return { clusters: '', route: '' };
      }
    };
    await eventually(persisted, (p) => p.clusters === want && p.route.includes('svc-2'), 10_000, 'snapshot holds the clusters and the route to svc-2');
    await strait.stop();
    await server.close();
    serverClosed = true;
    expect(fs.existsSync(`${dir}.snapshot.json`)).toBe(true);
    // Port 1: nothing listens, the control plane is unreachable.
    restarted = await startStrait(onDemandBootstrap(1), { args: ['--xds-snapshot', `${dir}.snapshot.json`] });
    const lport = await eventually(() => restarted!.port('web'), (p) => p > 0, 15_000, 'listener web restored');
    expect(await eventually(() => get(lport, '/'), (r) => r.status === 200, 10_000, 'route restored')).toMatchObject({ upstream: 'B' });
    const j = JSON.parse((await restarted.get('/clusters?format=json')).text) as { cluster_statuses: Obj[] };
    expect(j.cluster_statuses.filter((c) => c.added_via_api).map((c) => c.name)).toContain('svc-2');
  });
});

describe('delta ADS server: subscriptions by name', () => {
  it('sends only the named clusters, follows subscribe and unsubscribe, and answers an unknown name as removed', async () => {
    const dir = tmpDir('strait-ondemand-srv-');
    const clusters = (changed: readonly string[]) => Array.from({ length: CLUSTERS }, (_, i) => (changed.includes(`svc-${i}`) ? res.staticCluster(`svc-${i}`, 1) : res.edsCluster(`svc-${i}`)));
    writeResources(dir, 'clusters.yaml', clusters([]));
    const server = new AdsServer();
    server.update({ version: '1', resources: loadResourceDir(dir).resources });
    const port = await server.listen('127.0.0.1', 0);
    const updates: ResourceUpdate[] = [];
    const client = new AdsClient(
      { target: `ipv4:127.0.0.1:${port}`, delta: true, node: { id: 'probe' }, backoff: { baseMs: 100, maxMs: 500 } },
      {
        onUpdate: async (u) => {
          updates.push(u);
          return { problems: [], rejected: new Set() };
        },
      },
    );
    try {
      client.watch(CLUSTER_TYPE, new Set(['svc-3', 'nope']));
      client.start();
      await eventually(async () => updates.length, (n) => n >= 1, 10_000, 'first CDS response');
      expect(updates[0]!.resources.map((r) => r.name)).toEqual(['svc-3']);
      expect(updates[0]!.removed).toEqual(['nope']);

      client.watch(CLUSTER_TYPE, new Set(['svc-4']));
      await eventually(async () => server.subscriptions(CLUSTER_TYPE)[0]?.names, (n) => n?.join() === 'svc-4', 10_000, 'unsubscribe seen');
      await eventually(async () => updates.length, (n) => n >= 2, 10_000, 'svc-4 sent');
      expect(updates[1]!.resources.map((r) => r.name)).toEqual(['svc-4']);
      expect(server.subscriptions(CLUSTER_TYPE)).toEqual([expect.objectContaining({ wildcard: false, names: ['svc-4'] })]);

      // A change to svc-3 (no longer subscribed) is not pushed to this client; one to svc-4 is.
      writeResources(dir, 'clusters.yaml', clusters(['svc-3', 'svc-4']));
      const before = updates.length;
      server.update({ version: '2', resources: loadResourceDir(dir).resources });
      await eventually(async () => updates.length, (n) => n > before, 10_000, 'svc-4 change pushed');
      expect(updates.slice(before).flatMap((u) => u.resources.map((r) => r.name))).toEqual(['svc-4']);
    } finally {
      client.stop();
      await server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('on-demand bootstrap option', () => {
  it('is refused with its field path on a state-of-the-world stream', async () => {
    const dir = tmpDir('strait-ondemand-cfg-');
    const cfg = `${dir}/bad.yaml`;
    fs.writeFileSync(cfg, onDemandBootstrap(1, 'GRPC'));
    const r = await runCli(['--mode', 'validate', '--config', cfg]);
    fs.rmSync(dir, { recursive: true, force: true });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('node.metadata.STRAIT_ON_DEMAND_CLUSTERS: on-demand clusters need dynamic_resources.ads_config.api_type DELTA_GRPC');
  });
});
