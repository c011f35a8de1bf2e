import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpUpstream, type TestUpstream } from '../helpers/http.js';
import { ADMIN, ENGINES, startStrait, tmpDir, type StraitProcess } from '../helpers/strait.js';
import { eventually } from '../helpers/xds.js';

// Envoy's "dynamic configuration from the filesystem": LDS, CDS, RDS and EDS each from a
// DiscoveryResponse file, replaced by moving a new file into place.

const ROUTER = `http_filters: [ { name: envoy.filters.http.router, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } } ]`;
const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';

/** An LDS listener resource on 127.0.0.1 with an HCM whose routes come from `routes` (indented to its keys). */
function hcmListener(name: string, port: number | string, routes: string): string {
  return `- "@type": type.googleapis.com/envoy.config.listener.v3.Listener
  name: ${name}
  address: { socket_address: { address: 127.0.0.1, port_value: ${port} } }
  filter_chains:
  - filters:
    - name: envoy.filters.network.http_connection_manager
      typed_config:
        "@type": ${HCM}
        stat_prefix: ${name}
        ${ROUTER}
${routes}`;
}

/** A listener on 127.0.0.1:0 routing everything to `cluster` (inline route_config). */
function listener(name: string, cluster: string, port: number | string = 0): string {
  return hcmListener(
    name,
    port,
    `        route_config:
          virtual_hosts: [ { name: all, domains: ["*"], routes: [ { match: { prefix: "/" }, route: { cluster: ${cluster} } } ] } ]
`,
  );
}

/** A listener whose HCM takes its routes from a file (rds.config_source.path_config_source). */
function rdsListener(name: string, file: string): string {
  return hcmListener(
    name,
    0,
    `        rds:
          route_config_name: file_routes
          config_source: { path_config_source: { path: ${JSON.stringify(file)} } }
`,
  );
}

function staticCluster(name: string, port: number): string {
  return `- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: ${name}
  type: STATIC
  connect_timeout: 1s
  load_assignment:
    cluster_name: ${name}
    endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${port} } } } } ] } ]
`;
}

function edsCluster(name: string, file: string): string {
  return `- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: ${name}
  type: EDS
  connect_timeout: 1s
  eds_cluster_config:
    eds_config: { path_config_source: { path: ${JSON.stringify(file)} } }
`;
}

function assignment(name: string, port: number): string {
  return `- "@type": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment
  cluster_name: ${name}
  endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${port} } } } } ] } ]
`;
}

function routes(cluster: string): string {
  return `- "@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
  name: file_routes
  virtual_hosts: [ { name: all, domains: ["*"], routes: [ { match: { prefix: "/" }, route: { cluster: ${cluster} } } ] } ]
`;
}

function discovery(version: string, resources: string[]): string {
  return `version_info: "${version}"\nresources:\n${resources.join('')}`;
}

/** Replaces a file the way Envoy documents it: write elsewhere, then move into place. */
function mvInto(file: string, text: string): void {
  const tmp = path.join(path.dirname(path.dirname(file)), `.${path.basename(file)}.${process.pid}.tmp`);
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

describe.each(ENGINES.slice(0, 1))('filesystem xDS (LDS, CDS, RDS, EDS from files) on the %s engine', (engine) => {
  let a: TestUpstream;
  let b: TestUpstream;
  let c: TestUpstream;
  let strait: StraitProcess;
  const root = tmpDir('strait-fsxds-');
  // The files live in a directory of their own; temporaries are written beside it, then moved in.
  const dir = path.join(root, 'config');
  const lds = path.join(dir, 'lds.yaml');
  const cds = path.join(dir, 'cds.yaml');
  const eds = path.join(dir, 'eds.yaml');
  const rds = path.join(dir, 'rds.yaml');
  let cdsText = '';

  /** GET / through the named listener: status and the upstream that answered. */
  async function via(listenerName: string): Promise<{ status: number; tag: string }> {
    const port = await strait.port(listenerName);
    const r = await request(`http://127.0.0.1:${port}/`, { reset: true });
    await r.body.text();
    return { status: r.statusCode, tag: String(r.headers['x-upstream'] ?? '') };
  }

  async function listenerNames(): Promise<string[]> {
    const j = JSON.parse((await strait.get('/listeners?format=json')).text) as { listener_statuses: Array<{ name: string }> };
    return j.listener_statuses.map((l) => l.name).sort();
  }

  beforeAll(async () => {
    fs.mkdirSync(dir);
    [a, b, c] = await Promise.all([httpUpstream('a'), httpUpstream('b'), httpUpstream('c')]);
    cdsText = discovery('1', [staticCluster('a', a.port), staticCluster('b', b.port), edsCluster('e', eds)]);
    fs.writeFileSync(cds, cdsText);
    fs.writeFileSync(eds, discovery('1', [assignment('e', c.port)]));
    fs.writeFileSync(rds, discovery('1', [routes('b')]));
    fs.writeFileSync(lds, discovery('1', [listener('l1', 'a'), rdsListener('r', rds), listener('le', 'e')]));
    strait = await startStrait(
      `node: { id: fs-test, cluster: fs-test }
${ADMIN}dynamic_resources:
  lds_config: { path_config_source: { path: ${JSON.stringify(lds)} } }
  cds_config:
    resource_api_version: V3
    path_config_source: { path: ${JSON.stringify(cds)}, watched_directory: { path: ${JSON.stringify(dir)} } }
`,
      { engine },
    );
  });

  afterAll(async () => {
    await strait?.stop();
    await Promise.all([a?.close(), b?.close(), c?.close()]);
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('serves a file-defined listener to a file-defined cluster, with no control plane', async () => {
    expect(await via('l1')).toEqual({ status: 200, tag: 'a' });
    expect(await strait.stat('listener_manager.lds.update_success')).toBe(1);
    expect(await strait.stat('cluster_manager.cds.update_success')).toBe(1);
    expect(await strait.stat('listener_manager.lds.update_rejected')).toBe(0);
  });

  it('takes an HCM route configuration from a file (rds.config_source.path_config_source)', async () => {
    expect(await via('r')).toEqual({ status: 200, tag: 'b' });
    mvInto(rds, discovery('2', [routes('a')]));
    await eventually(() => via('r'), (r) => r.tag === 'a', 10_000, 'route from the new rds.yaml');
  });

  it('takes an EDS cluster\'s endpoints from a file, and follows a new one', async () => {
    expect(await via('le')).toEqual({ status: 200, tag: 'c' });
    mvInto(eds, discovery('2', [assignment('e', b.port)]));
    await eventually(() => via('le'), (r) => r.tag === 'b', 10_000, 'endpoints from the new eds.yaml');
  });

  it("counts a refused or unreadable eds.yaml in the EDS cluster's own stats, as Envoy does, and keeps its endpoints", async () => {
    const before = async (s: string) => (await strait.stat(`cluster.e.${s}`)) ?? 0;
    const [attempts, rejected, failed] = [await before('update_attempt'), await before('update_rejected'), await before('update_failure')];
    // A port out of range: the assignment is refused by name.
    mvInto(eds, discovery('3', [assignment('e', 70000)]));
    await strait.waitStat('cluster.e.update_rejected', (v) => v === rejected + 1);
    expect(await via('le')).toEqual({ status: 200, tag: 'b' });
    // Not a DiscoveryResponse at all: a failed read.
    mvInto(eds, 'resources: [ {');
    await strait.waitStat('cluster.e.update_failure', (v) => v === failed + 1);
    expect(await strait.stat('cluster.e.update_attempt')).toBe(attempts + 2);
    expect(await via('le')).toEqual({ status: 200, tag: 'b' });
    // A good file again: endpoints follow and the success is counted too.
    mvInto(eds, discovery('4', [assignment('e', c.port)]));
    await eventually(() => via('le'), (r) => r.tag === 'c', 10_000, 'endpoints from the repaired eds.yaml');
    expect(await strait.stat('cluster.e.update_attempt')).toBe(attempts + 3);
  });

  it('follows a new lds.yaml moved into place: a changed route and an added listener', async () => {
    mvInto(lds, discovery('2', [listener('l1', 'b'), rdsListener('r', rds), listener('le', 'e'), listener('l2', 'a')]));
    await eventually(() => via('l1'), (r) => r.tag === 'b', 10_000, 'l1 routed to b');
    expect(await via('l2')).toEqual({ status: 200, tag: 'a' });
    expect(await strait.stat('listener_manager.lds.update_success')).toBe(2);
    const dump = JSON.parse((await strait.get('/config_dump')).text) as { configs: Array<Record<string, any>> };
    const ld = dump.configs.find((x) => String(x['@type']).endsWith('ListenersConfigDump'))!;
    expect(ld.version_info).toBe('2');
  });

  it('rejects a bad file, naming the file and the field path, and keeps serving the previous configuration', async () => {
    const rejected = (await strait.stat('listener_manager.lds.update_rejected')) ?? 0;
    mvInto(lds, discovery('3', [listener('l1', 'a', 70000), rdsListener('r', rds), listener('le', 'e'), listener('l2', 'a')]));
    await strait.waitStat('listener_manager.lds.update_rejected', (v) => v === rejected + 1);
    await eventually(async () => strait.stderr, (e) => e.includes('resources[0].address.socket_address.port_value'), 5_000, 'the rejection log line');
    expect(strait.stderr).toContain(JSON.stringify(lds).slice(1, -1));
    expect(await via('l1')).toEqual({ status: 200, tag: 'b' });

    // Not YAML at all: the file cannot be read as a DiscoveryResponse (Envoy's update_failure).
    const failed = (await strait.stat('listener_manager.lds.update_failure')) ?? 0;
    mvInto(lds, 'resources: [ {');
    await strait.waitStat('listener_manager.lds.update_failure', (v) => v === failed + 1);
    expect(await via('l1')).toEqual({ status: 200, tag: 'b' });
    expect(await via('l2')).toEqual({ status: 200, tag: 'a' });
    expect(await strait.stat('listener_manager.lds.update_success')).toBe(2);
  });

  it('closes a listener the next file no longer has (state of the world)', async () => {
    const port = await strait.port('l2');
    mvInto(lds, discovery('4', [listener('l1', 'b'), rdsListener('r', rds), listener('le', 'e')]));
    await eventually(listenerNames, (n) => !n.includes('l2'), 10_000, 'l2 gone from /listeners');
    // Nothing accepts on its port any more (after the drain, which closes the socket first).
    await eventually(
      () =>
        new Promise<string>((resolve) => {
          const s = net.connect(port, '127.0.0.1');
          s.once('connect', () => (s.destroy(), resolve('connected')));
          s.once('error', (err: NodeJS.ErrnoException) => resolve(String(err.code)));
        }),
      (r) => r === 'ECONNREFUSED',
      10_000,
      'l2 port refusing connections',
    );
    expect(await via('l1')).toEqual({ status: 200, tag: 'b' });
  });

  it('re-reads cds.yaml on any move into its watched directory; a cluster removed from it goes', async () => {
    // A ConfigMap-style swap: the file changes, then something else is moved into the directory.
    fs.writeFileSync(cds, discovery('2', [staticCluster('a', c.port), staticCluster('b', b.port), edsCluster('e', eds)]));
    mvInto(path.join(dir, 'unrelated'), 'x');
    await eventually(() => via('l1'), (r) => r.tag === 'b', 5_000, 'l1 still served');
    mvInto(lds, discovery('5', [listener('l1', 'a'), rdsListener('r', rds), listener('le', 'e')]));
    await eventually(() => via('l1'), (r) => r.tag === 'c', 10_000, 'cluster a now pointing at c');
    mvInto(cds, discovery('3', [staticCluster('b', b.port), edsCluster('e', eds)]));
    await eventually(() => via('l1'), (r) => r.status === 503, 10_000, 'cluster a removed: 503');
    expect(await strait.stat('cluster_manager.cds.update_success')).toBe(3);
  });
});
