import fs from 'node:fs';
import path from 'node:path';
import type net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, echoServer, fetchTag, tagServer } from '../helpers/net.js';
import { startStrait, tmpDir, type StraitProcess } from '../helpers/strait.js';
import { adsBootstrap, eventually, res, startXdsServer, writeResources, type XdsServerProcess } from '../helpers/xds.js';

type Obj = Record<string, any>;

async function configDump(s: StraitProcess): Promise<Obj[]> {
  return (JSON.parse((await s.get('/config_dump')).text) as { configs: Obj[] }).configs;
}

function section(configs: Obj[], kind: string): Obj {
  return configs.find((c) => String(c['@type']).endsWith(kind)) ?? {};
}

/** Sends a line and reads the echo back on a connection that stays open. */
function roundTrip(s: net.Socket, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const onData = (d: Buffer) => {
      got += d;
      if (got.length >= text.length) {
        s.off('data', onData);
        resolve(got);
      }
    };
    s.on('data', onData);
    s.once('error', reject);
    s.write(text);
  });
}

describe.each(['DELTA_GRPC', 'GRPC'] as const)('ADS client (%s) against strait xds-server', (apiType) => {
  let dir: string;
  let work: string;
  let xs: XdsServerProcess;
  let strait: StraitProcess;
  let a: Awaited<ReturnType<typeof tagServer>>;
  let b: Awaited<ReturnType<typeof tagServer>>;
  let echo: Awaited<ReturnType<typeof echoServer>>;
  let snapshot: string;

  beforeAll(async () => {
    a = await tagServer('A');
    b = await tagServer('B');
    echo = await echoServer();
    dir = tmpDir('strait-xds-dir-');
    work = tmpDir('strait-xds-work-');
    snapshot = path.join(work, 'snapshot.json');
    // Listeners first in the directory: warming, not file order, makes them wait for their clusters.
    writeResources(dir, '0-listeners.yaml', [res.tcpListener('front', 'svc'), res.tcpListener('echo', 'echo')]);
    writeResources(dir, '1-clusters.yaml', [res.edsCluster('svc', 'svc-endpoints'), res.staticCluster('echo', echo.port)]);
    writeResources(dir, '2-endpoints.yaml', [res.assignment('svc-endpoints', [a.port])]);
    xs = await startXdsServer(dir);
    strait = await startStrait(adsBootstrap(xs.port, apiType), { args: ['--xds-snapshot', snapshot, '--log-level', 'info'] });
  });

  afterAll(async () => {
    await strait?.stop();
    await xs?.stop();
    await Promise.all([a?.close(), b?.close(), echo?.close()]);
    for (const d of [dir, work]) if (d) fs.rmSync(d, { recursive: true, force: true });
  });

  it('starts with listeners, clusters and endpoints from ADS, node identity sent', async () => {
    expect(await fetchTag(await strait.port('front'))).toBe('A');
    const connected = await xs.waitLog((l) => /xds client connected/.test(l.msg));
    expect(connected).toMatchObject({ node: 'test-node', cluster: 'test-cluster' });
    expect(connected.msg).toContain(apiType === 'DELTA_GRPC' ? 'delta' : 'state of the world');
    const dump = await configDump(strait);
    const clusters = section(dump, 'ClustersConfigDump');
    expect(clusters.dynamic_active_clusters.map((c: Obj) => c.cluster.name).sort()).toEqual(['echo', 'svc']);
    expect(section(dump, 'EndpointsConfigDump').dynamic_endpoint_configs.map((e: Obj) => e.endpoint_config.cluster_name)).toEqual(['svc-endpoints']);
    expect(section(dump, 'ListenersConfigDump').dynamic_listeners.map((l: Obj) => l.name).sort()).toEqual(['echo', 'front']);
    // Every update was accepted.
    expect(xs.logs.filter((l) => l.msg === 'xds NACK')).toEqual([]);
    expect(await strait.stat('cluster_manager.active_clusters')).toBe(3); // xds-grpc, svc, echo
  });

  it('applies an EDS update to new connections while an open one stays on its upstream', async () => {
    const port = await strait.port('echo');
    const open = await connect(port);
    expect(await roundTrip(open, 'before')).toBe('before');
    writeResources(dir, '2-endpoints.yaml', [res.assignment('svc-endpoints', [b.port])]);
    await eventually(async () => fetchTag(await strait.port('front')), (t) => t === 'B', 15_000, 'EDS update reaches new connections');
    // The echo connection crossed the update untouched.
    expect(await roundTrip(open, 'after')).toBe('after');
    open.destroy();
  });

  it('swaps a listener in place (same address) and drains a removed one', async () => {
    const echoPort = await strait.port('echo');
    const open = await connect(echoPort);
    expect(await roundTrip(open, 'x')).toBe('x');
    const frontPort = await strait.port('front');
    // front now goes to a static cluster on A: same name and address, new chains.
    writeResources(dir, '1-clusters.yaml', [res.edsCluster('svc', 'svc-endpoints'), res.staticCluster('echo', echo.port), res.staticCluster('a-only', a.port)]);
    writeResources(dir, '0-listeners.yaml', [res.tcpListener('front', 'a-only', 0, 'front_v2')]);
    await eventually(async () => fetchTag(frontPort), (t) => t === 'A', 15_000, 'front swapped to a-only');
    expect(await strait.port('front')).toBe(frontPort);
    // 'echo' was removed: it stops accepting, but the open connection carries on until it ends.
    await eventually(async () => (await strait.get('/listeners')).text, (t) => !/^echo::127/m.test(t), 15_000, 'echo listener gone');
    await expect(connect(echoPort)).rejects.toThrow(/ECONNREFUSED/);
    expect(await roundTrip(open, 'still here')).toBe('still here');
    open.destroy();
    await strait.waitStat('listener_manager.listener_removed', (v) => v >= 1);
  });

  it('NACKs an invalid resource with its field path, keeps the rest, and does not crash on an unknown cluster', async () => {
    const from = xs.logs.length;
    writeResources(dir, '3-more.yaml', [
      `- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: bad
  connect_timeout: 1s
  type: STATIC
  load_assignment: { cluster_name: bad, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: not-an-ip, port_value: 1 } } } }] }] }
`,
      res.staticCluster('good', b.port),
    ]);
    const nack = await xs.waitLog((l) => l.msg === 'xds NACK' && l.type === 'Cluster', from);
    expect(nack.error).toBe('Cluster "bad": load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address: "not-an-ip" is not an IP address (a STATIC cluster needs IP literals; use STRICT_DNS for names)');
    // The valid cluster of the same update is in use, and the dump says why "bad" is not.
    const dump = await eventually(() => configDump(strait), (d) => section(d, 'ClustersConfigDump').dynamic_active_clusters.some((c: Obj) => c.cluster?.name === 'good'));
    const bad = section(dump, 'ClustersConfigDump').dynamic_active_clusters.find((c: Obj) => !c.cluster);
    expect(bad.client_status).toBe('NACKED');
    expect(bad.error_state.details).toMatch(/^load_assignment\.endpoints\[0\]/);

    // A listener naming a cluster nobody defines: it warms, then (initial_fetch_timeout) serves
    // with tcp_proxy's no-cluster behaviour: the connection is closed and counted.
    writeResources(dir, '4-orphan.yaml', [res.tcpListener('orphan', 'missing')]);
    const port = await eventually(() => strait.port('orphan'), (p) => p > 0, 15_000, 'orphan listener active');
    expect(await fetchTag(port)).toBe('');
    await strait.waitStat('tcp.orphan.downstream_cx_no_route', (v) => v === 1);
    expect((await strait.get('/ready')).status).toBe(200);
  });

  it('persists the last accepted configuration and serves it after a restart while the control plane is down', async () => {
    await eventually(async () => JSON.parse(fs.readFileSync(snapshot, 'utf8')) as Obj, (s) => s.types?.['type.googleapis.com/envoy.config.listener.v3.Listener']?.resources.some((r: Obj) => r.name === 'orphan'), 15_000, 'snapshot written');
    const port = xs.port;
    await xs.stop();
    await strait.stop();
    strait = await startStrait(adsBootstrap(port, apiType), { args: ['--xds-snapshot', snapshot, '--log-level', 'info'] });
    const ready = await strait.get('/ready');
    expect(ready.status).toBe(200);
    expect(ready.text).toContain(`xds: serving the persisted snapshot ${snapshot}`);
    expect(section(await configDump(strait), 'ListenersConfigDump').version_info).toContain('from persisted snapshot');
    expect(await fetchTag(await strait.port('front'))).toBe('A');

    // The control plane comes back on the same port: the client reconnects on its own and the
    // configuration is live again.
    xs = await startXdsServer(dir, { port });
    await eventually(async () => (await strait.get('/ready')).text, (t) => t === 'LIVE\n', 20_000, 'snapshot no longer in use');
    expect(section(await configDump(strait), 'ListenersConfigDump').version_info).not.toContain('snapshot');
    writeResources(dir, '0-listeners.yaml', [res.tcpListener('front', 'good', 0, 'front_v3'), res.tcpListener('orphan', 'missing')]);
    await eventually(async () => fetchTag(await strait.port('front')), (t) => t === 'B', 15_000, 'update after reconnect');
  });
});
