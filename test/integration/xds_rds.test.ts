import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpUpstream, type TestUpstream } from '../helpers/http.js';
import { startStrait, tmpDir, type StraitProcess } from '../helpers/strait.js';
import { adsBootstrap, eventually, res, startXdsServer, writeResources, type XdsServerProcess } from '../helpers/xds.js';

type Obj = Record<string, any>;

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

/**
 * A RouteConfiguration: `/missing` to a cluster nobody defines, everything else to `cluster`.
 * `duplicate` adds a second virtual host claiming `*` too: schema-valid (so the control plane
 * serves it) but refused by Strait, as by Envoy.
 */
function routeConfig(name: string, cluster: string, duplicate = false): string {
  return `- "@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
  name: ${name}
  virtual_hosts:${duplicate ? `
  - name: dup
    domains: ["*"]
    routes: [{ match: { prefix: "/" }, route: { cluster: a } }]` : ''}
  - name: all
    domains: ["*"]
    routes:
    - match: { prefix: "/missing" }
      route: { cluster: nowhere }
    - match: { prefix: "/" }
      route: { cluster: ${cluster} }
`;
}

/** A GET through `agent`; returns the status, the upstream's tag and the local port of the connection used. */
function get(port: number, path: string, agent: http.Agent): Promise<{ status: number; upstream: string; localPort: number }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent }, (r) => {
      // Read now: once the body ends, a keep-alive socket goes back to the agent and r.socket is gone.
      const localPort = r.socket.localPort!;
      r.resume();
      r.on('end', () => resolve({ status: r.statusCode!, upstream: String(r.headers['x-upstream'] ?? ''), localPort }));
    });
    req.on('error', reject);
  });
}

describe.each(['DELTA_GRPC', 'GRPC'] as const)('RDS over ADS (%s)', (apiType) => {
  let dir: string;
  let snapshot: string;
  let xs: XdsServerProcess;
  let strait: StraitProcess;
  let a: TestUpstream;
  let b: TestUpstream;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

  beforeAll(async () => {
    a = await httpUpstream('A');
    b = await httpUpstream('B');
    dir = tmpDir('strait-rds-dir-');
    writeResources(dir, '0-listeners.yaml', [rdsListener('web', 'web-routes')]);
    writeResources(dir, '1-clusters.yaml', [res.staticCluster('a', a.port), res.staticCluster('b', b.port)]);
    writeResources(dir, '2-routes.yaml', [routeConfig('web-routes', 'a')]);
    snapshot = path.join(tmpDir('strait-rds-work-'), 'snapshot.json');
    xs = await startXdsServer(dir);
    strait = await startStrait(adsBootstrap(xs.port, apiType), { args: ['--xds-snapshot', snapshot, '--log-level', 'info'] });
  });

  afterAll(async () => {
    agent.destroy();
    await strait?.stop();
    await xs?.stop();
    await Promise.all([a?.close(), b?.close()]);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    if (snapshot) fs.rmSync(path.dirname(snapshot), { recursive: true, force: true });
  });

  it('serves a listener whose routes come from RDS, and shows them in /config_dump', async () => {
    const port = await strait.port('web');
    expect(await get(port, '/', agent)).toMatchObject({ status: 200, upstream: 'A' });
    const dump = JSON.parse((await strait.get('/config_dump')).text) as { configs: Obj[] };
    const routes = dump.configs.find((c) => String(c['@type']).endsWith('RoutesConfigDump'))!;
    expect(routes.dynamic_route_configs.map((r: Obj) => r.route_config.name)).toEqual(['web-routes']);
    expect(xs.logs.filter((l) => l.msg === 'xds NACK')).toEqual([]);
  });

  it('swaps routes on the running listener: same port, same open connection, new table for new requests', async () => {
    const port = await strait.port('web');
    const first = await get(port, '/', agent);
    expect(first.upstream).toBe('A');
    const addedBefore = await strait.stat('listener_manager.listener_added');
    expect(addedBefore).toBeGreaterThanOrEqual(1);
    writeResources(dir, '2-routes.yaml', [routeConfig('web-routes', 'b')]);
    const after = await eventually(() => get(port, '/', agent), (r) => r.upstream === 'B', 15_000, 'route update applied');
    // The keep-alive connection opened before the update carried the new route: the listener was never replaced.
    expect(after.localPort).toBe(first.localPort);
    expect(await strait.port('web')).toBe(port);
    expect(await strait.stat('listener_manager.listener_added')).toBe(addedBefore);
  });

  it('answers 503 for a route to an unknown cluster and keeps serving', async () => {
    const port = await strait.port('web');
    expect((await get(port, '/missing', agent)).status).toBe(503);
    expect(await get(port, '/', agent)).toMatchObject({ status: 200, upstream: 'B' });
    await strait.waitStat('http.web.no_cluster', (v) => v >= 1);
  });

  it('NACKs an invalid RouteConfiguration with its field path; the previous table keeps serving', async () => {
    const from = xs.logs.length;
    writeResources(dir, '2-routes.yaml', [routeConfig('web-routes', 'a', true)]);
    const nack = await xs.waitLog((l) => l.msg === 'xds NACK' && l.type === 'RouteConfiguration', from);
    expect(nack.error).toBe('RouteConfiguration "web-routes": virtual_hosts[1].domains[0]: domain "*" is used by more than one virtual host');
    const port = await strait.port('web');
    expect(await get(port, '/', agent)).toMatchObject({ status: 200, upstream: 'B' });
    const dump = JSON.parse((await strait.get('/config_dump')).text) as { configs: Obj[] };
    const rc = dump.configs.find((c) => String(c['@type']).endsWith('RoutesConfigDump'))!.dynamic_route_configs[0];
    expect(rc.client_status).toBe('NACKED');
    expect(rc.route_config.virtual_hosts[0].routes[1].route.cluster).toBe('b');
  });

  it('warms a new listener until its route configuration arrives', async () => {
    writeResources(dir, '0-listeners.yaml', [rdsListener('web', 'web-routes'), rdsListener('late', 'late-routes')]);
    // Routes valid again, and the new listener's routes in the same push.
    writeResources(dir, '2-routes.yaml', [routeConfig('web-routes', 'b'), routeConfig('late-routes', 'a')]);
    const port = await eventually(() => strait.port('late'), (p) => p > 0, 15_000, 'late listener active');
    // Had it started before its routes, the first requests would have been 404s.
    expect(await get(port, '/', new http.Agent())).toMatchObject({ status: 200, upstream: 'A' });
    expect((await strait.stat('http.late.rq_total')) ?? 0).toBe(1);
  });

  it('restores listeners with their routes from the persisted snapshot while the control plane is down', async () => {
    const routeType = 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration';
    await eventually(async () => JSON.parse(fs.readFileSync(snapshot, 'utf8')) as Obj, (s) => s.types?.[routeType]?.resources.some((r: Obj) => r.name === 'late-routes'), 15_000, 'routes in the snapshot');
    await xs.stop();
    await strait.stop();
    strait = await startStrait(adsBootstrap(xs.port, apiType), { args: ['--xds-snapshot', snapshot, '--log-level', 'info'] });
    expect((await strait.get('/ready')).text).toContain('serving the persisted snapshot');
    expect(await get(await strait.port('web'), '/', new http.Agent())).toMatchObject({ status: 200, upstream: 'B' });
    expect(await get(await strait.port('late'), '/', new http.Agent())).toMatchObject({ status: 200, upstream: 'A' });
  });
});
