import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdsServer } from '../../src/xds/server/ads_server.js';
import { loadResourceDir } from '../../src/xds/server/resource_dir.js';
import { deadPort } from '../helpers/net.js';
import { REPO, startStrait, tmpDir, type StraitProcess } from '../helpers/strait.js';
import { adsBootstrap, eventually, writeResources } from '../helpers/xds.js';

// Clusters replaced by CDS or removed drain their pooled upstream connections (Envoy's
// behaviour): idle ones close at once, busy ones after their request; EDS host removal drains
// only that host. Every check counts connections on the upstream server's side.

const require = createRequire(import.meta.url);
const { RpcServer } = require('sofa-rpc-node').server;
const run = promisify(execFile);
const BOLT_CLIENT = path.join(REPO, 'test/fixtures/rpc/bolt_client.cjs');
const quiet = { info() {}, warn() {}, debug() {}, error() {} };

/** Server-side view of the connections an upstream accepted: id, and whether it has closed. */
class ConnTracker {
  readonly conns: Array<{ id: number; closed: boolean }> = [];

  track(socket: net.Socket): number {
    const rec = { id: this.conns.length + 1, closed: false };
    this.conns.push(rec);
    socket.on('close', () => (rec.closed = true));
    return rec.id;
  }

  get open(): number[] {
    return this.conns.filter((c) => !c.closed).map((c) => c.id);
  }

  isClosed(id: number): boolean {
    return this.conns[id - 1]!.closed;
  }
}

/** An HTTP/1.1 upstream answering `<tag> <conn id>`; `x-delay-ms` holds the answer back. */
async function h1Upstream(tag: string) {
  const t = new ConnTracker();
  let inflight = 0;
  const server = http.createServer((req, res) => {
    const id = (req.socket as net.Socket & { connId: number }).connId;
    inflight++;
    const answer = () => {
      inflight--;
      res.setHeader('x-conn', String(id));
      res.end(`${tag} ${id}`);
    };
    const delay = Number(req.headers['x-delay-ms'] ?? 0);
    if (delay > 0) setTimeout(answer, delay);
    else answer();
  });
  // The upstream must not close idle connections itself: only Strait's drain may.
  server.keepAliveTimeout = 0;
  server.on('connection', (s: net.Socket & { connId?: number }) => (s.connId = t.track(s)));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    tracker: t,
    get inflight() {
      return inflight;
    },
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** An h2c upstream; the tracker counts TCP connections (one per HTTP/2 session). */
async function h2Upstream(tag: string) {
  const t = new ConnTracker();
  let inflight = 0;
  const server = http2.createServer();
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket & { connId?: number }) => {
    s.connId = t.track(s);
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('stream', (stream, headers) => {
    const id = (stream.session!.socket as net.Socket & { connId: number }).connId;
    inflight++;
    const answer = () => {
      inflight--;
      if (stream.destroyed) return;
      stream.respond({ ':status': 200, 'x-conn': String(id) });
      stream.end(`${tag} ${id}`);
    };
    const delay = Number(headers['x-delay-ms'] ?? 0);
    if (delay > 0) setTimeout(answer, delay);
    else answer();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    tracker: t,
    get inflight() {
      return inflight;
    },
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A SOFARPC Bolt provider whose `slow` method answers after 1.5 s. */
async function boltUpstream(tag: string) {
  const t = new ConnTracker();
  let inflight = 0;
  const server = new RpcServer({ logger: quiet, port: await deadPort() });
  server.addService({ interfaceName: 'com.example.UserService', version: '1.0' }, {
    async hello(name: string) {
      return `${tag} hello ${name}`;
    },
    async slow(name: string) {
      inflight++;
      await new Promise((r) => setTimeout(r, 1500));
      inflight--;
      return `${tag} slow ${name}`;
    },
  });
  await server.start();
  const netServer = server._servers[0] as net.Server;
  netServer.on('connection', (s) => t.track(s));
  return {
    port: (netServer.address() as net.AddressInfo).port,
    tracker: t,
    get inflight() {
      return inflight;
    },
    close: () => server.close() as Promise<void>,
  };
}

type BoltResult = { ok: true; value: string } | { ok: false; error: string };

/** One Bolt call through Strait from a separate client process (sofa-rpc-node). */
async function boltCall(port: number, method: string, arg: string): Promise<BoltResult> {
  const { stdout } = await run(process.execPath, [BOLT_CLIENT, String(port), 'com.example.UserService', '1.0', method, '1', arg], { cwd: REPO, timeout: 20_000 });
  return (JSON.parse(stdout) as BoltResult[])[0]!;
}

/** A request on a fresh downstream connection: upstream pooling is all that is under test. */
function get(port: number, p: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; conn: number }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, headers, agent: false }, (r) => {
      let body = '';
      r.setEncoding('utf8');
      r.on('data', (d: string) => (body += d));
      r.on('end', () => resolve({ status: r.statusCode!, body, conn: Number(r.headers['x-conn'] ?? 0) }));
    });
    req.on('error', reject);
  });
}

const listener = `- "@type": type.googleapis.com/envoy.config.listener.v3.Listener
  name: web
  address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
  filter_chains:
  - filters:
    - name: envoy.filters.network.http_connection_manager
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
        stat_prefix: web
        rds: { route_config_name: web-routes, config_source: { ads: {}, resource_api_version: V3 } }
        http_filters:
        - name: envoy.filters.http.router
          typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
- "@type": type.googleapis.com/envoy.config.listener.v3.Listener
  name: rpc
  address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
  filter_chains:
  - filters:
    - name: strait.filters.network.rpc_proxy
      typed_config:
        "@type": type.googleapis.com/strait.rpc_proxy.v1.RpcProxy
        stat_prefix: rpc
        protocol: BOLT
        route_config:
        - interface: com.example.UserService
          version: "1.0"
          routes: [ { match: {}, route: { cluster: rpc-svc } } ]
`;

const routes = (withB: boolean) => `- "@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
  name: web-routes
  virtual_hosts:
  - name: all
    domains: ["*"]
    routes:
    - { match: { prefix: "/a" }, route: { cluster: svc-a } }
${withB ? '    - { match: { prefix: "/b" }, route: { cluster: svc-b } }\n' : ''}    - { match: { prefix: "/c" }, route: { cluster: svc-c } }
    - { match: { prefix: "/h2" }, route: { cluster: svc-h2 } }
`;

const edsCluster = (name: string, connectTimeout: string, extra = '') => `- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: ${name}
  type: EDS
  connect_timeout: ${connectTimeout}
  eds_cluster_config: { service_name: ${name}, eds_config: { ads: {}, resource_api_version: V3 } }
${extra}`;

const H2_OPTIONS = `  typed_extension_protocol_options:
    envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
      "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
      explicit_http_config: { http2_protocol_options: {} }
`;

/** `extra`: more fields of every lb_endpoint (flow style), e.g. a weight and metadata. */
const assignment = (service: string, ports: number[], extra = '') => `- "@type": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment
  cluster_name: ${service}
  endpoints:
  - lb_endpoints:
${ports.map((p) => `    - { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${p} } } }${extra ? `, ${extra}` : ''} }`).join('\n')}
`;

describe('clusters replaced or removed over ADS drain their pooled upstream connections', () => {
  let dir: string;
  let server: AdsServer;
  let strait: StraitProcess;
  let web: number;
  let rpc: number;
  let a: Awaited<ReturnType<typeof h1Upstream>>;
  let b: Awaited<ReturnType<typeof h1Upstream>>;
  let c1: Awaited<ReturnType<typeof h1Upstream>>;
  let c2: Awaited<ReturnType<typeof h1Upstream>>;
  let h2: Awaited<ReturnType<typeof h2Upstream>>;
  let bolt: Awaited<ReturnType<typeof boltUpstream>>;
  let bolt2: Awaited<ReturnType<typeof boltUpstream>>;
  let generation = 0;
  // What the control plane currently serves; each test changes one part and pushes.
  const state = { aTimeout: '1s', h2Timeout: '1s', rpcTimeout: '1s', withB: true, cPorts: [] as number[], cExtra: '', rpcPorts: [] as number[] };

  const push = () => {
    writeResources(dir, 'listeners.yaml', [listener]);
    writeResources(dir, 'routes.yaml', [routes(state.withB)]);
    const clusters = [
      edsCluster('svc-a', state.aTimeout),
      edsCluster('svc-c', '1s'),
      edsCluster('svc-h2', state.h2Timeout, H2_OPTIONS),
      edsCluster('rpc-svc', state.rpcTimeout),
    ];
    if (state.withB) clusters.push(edsCluster('svc-b', '1s'));
    writeResources(dir, 'clusters.yaml', clusters);
    const eps = [assignment('svc-a', [a.port]), assignment('svc-c', state.cPorts, state.cExtra), assignment('svc-h2', [h2.port]), assignment('rpc-svc', state.rpcPorts)];
    if (state.withB) eps.push(assignment('svc-b', [b.port]));
    writeResources(dir, 'endpoints.yaml', eps);
    server.update({ version: String(++generation), resources: loadResourceDir(dir).resources });
  };
  const stat = async (name: string) => (await strait.stat(name)) ?? 0;

  beforeAll(async () => {
    [a, b, c1, c2, h2, bolt, bolt2] = await Promise.all([
      h1Upstream('A'),
      h1Upstream('B'),
      h1Upstream('C1'),
      h1Upstream('C2'),
      h2Upstream('H2'),
      boltUpstream('R'),
      boltUpstream('R2'),
    ]);
    state.cPorts = [c1.port, c2.port];
    state.rpcPorts = [bolt.port];
    dir = tmpDir('strait-drain-');
    server = new AdsServer();
    push();
    const port = await server.listen('127.0.0.1', 0);
    strait = await startStrait(adsBootstrap(port, 'DELTA_GRPC', 'drain-node'));
    web = await eventually(() => strait.port('web'), (p) => p > 0, 15_000, 'listener web active');
    rpc = await eventually(() => strait.port('rpc'), (p) => p > 0, 15_000, 'listener rpc active');
    await eventually(() => get(web, '/a'), (r) => r.status === 200, 10_000, 'route to svc-a');
  });

  afterAll(async () => {
    await strait?.stop();
    await server?.close();
    await Promise.all([a?.close(), b?.close(), c1?.close(), c2?.close(), h2?.close(), bolt?.close(), bolt2?.close()]);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a CDS update of an HTTP/1.1 cluster: the in-flight request finishes, then its old connection closes; new requests use a new one', async () => {
    const first = await get(web, '/a');
    expect(first.status).toBe(200);
    const old = first.conn;
    expect(a.tracker.open).toEqual([old]);
    // A slow request on the pooled connection, in flight across the update.
    const slow = get(web, '/a', { 'x-delay-ms': '1500' });
    await eventually(async () => a.inflight, (n) => n === 1, 10_000, 'slow request at the upstream');
    const modified = await stat('cluster_manager.cluster_modified');
    state.aTimeout = '2s';
    push();
    await strait.waitStat('cluster_manager.cluster_modified', (v) => v > modified);
    const during = await get(web, '/a');
    expect(during.status).toBe(200);
    expect(during.conn).not.toBe(old);
    const s = await slow;
    expect(s).toMatchObject({ status: 200, conn: old });
    // Back from its request, the old connection is not pooled again: the proxy closes it.
    await eventually(async () => a.tracker.isClosed(old), (x) => x, 10_000, 'old connection closed');
    const after = await get(web, '/a');
    expect(after.conn).toBe(during.conn);
    expect(a.tracker.open).toEqual([during.conn]);
    expect(await stat('cluster.svc-a.upstream_cx_destroy_local')).toBeGreaterThanOrEqual(1);
  });

  it('a cluster removed by CDS (with its route) closes its idle upstream connections at once', async () => {
    const r = await get(web, '/b');
    expect(r).toMatchObject({ status: 200, body: `B ${r.conn}` });
    expect(b.tracker.open).toEqual([r.conn]);
    const removed = await stat('cluster_manager.cluster_removed');
    state.withB = false;
    push();
    await strait.waitStat('cluster_manager.cluster_removed', (v) => v > removed);
    await eventually(async () => b.tracker.open.length, (n) => n === 0, 10_000, 'svc-b connections closed');
    expect((await get(web, '/b')).status).toBe(404);
  });

  it('an EDS update removing one host closes only that host\'s pooled connections', async () => {
    // Round robin over C1 and C2: sequential requests leave one pooled connection on each.
    const seen = new Map<string, number>();
    for (let i = 0; i < 4; i++) {
      const r = await get(web, '/c');
      expect(r.status).toBe(200);
      seen.set(r.body.split(' ')[0]!, r.conn);
    }
    expect([...seen.keys()].sort()).toEqual(['C1', 'C2']);
    expect(c1.tracker.open).toHaveLength(1);
    expect(c2.tracker.open).toHaveLength(1);
    const kept = c1.tracker.open[0]!;
    const modified = await stat('cluster_manager.cluster_modified');
    state.cPorts = [c1.port];
    push();
    await eventually(async () => c2.tracker.open.length, (n) => n === 0, 10_000, 'C2 connection closed');
    // The cluster itself was not replaced, and C1's connection still serves.
    expect(c1.tracker.isClosed(kept)).toBe(false);
    for (let i = 0; i < 2; i++) expect(await get(web, '/c')).toMatchObject({ status: 200, body: `C1 ${kept}`, conn: kept });
    expect(c1.tracker.conns).toHaveLength(1);
    expect(await stat('cluster_manager.cluster_modified')).toBe(modified);
  });

  it('an EDS update changing only a host\'s weight and metadata keeps its pooled connection', async () => {
    const r = await get(web, '/c');
    expect(r.body).toBe(`C1 ${r.conn}`);
    const label = `svc-c::127.0.0.1:${c1.port}::`;
    expect((await strait.get('/clusters')).text).toContain(`${label}weight::1\n`);
    const changes = await stat('cluster.svc-c.membership_change');
    state.cExtra = 'load_balancing_weight: 7, metadata: { filter_metadata: { envoy.lb: { version: v2 } } }';
    push();
    await strait.waitStat('cluster.svc-c.membership_change', (v) => v > changes);
    const clusters = (await strait.get('/clusters')).text;
    expect(clusters).toContain(`${label}weight::7\n`);
    // The same Host carried over: its request counter kept counting from before the update.
    expect(clusters).toMatch(new RegExp(`${label.replaceAll('.', '\\.')}rq_total::[1-9]`));
    expect(await get(web, '/c')).toMatchObject({ status: 200, body: `C1 ${r.conn}`, conn: r.conn });
    expect(c1.tracker.isClosed(r.conn)).toBe(false);
    expect(c1.tracker.conns).toHaveLength(1);
    const dump = JSON.parse((await strait.get('/config_dump?resource=dynamic_endpoint_configs')).text);
    expect(JSON.stringify(dump)).toContain('"v2"');
  });

  it('a CDS update of an HTTP/2 cluster: the stream in flight finishes, then the old connection closes', async () => {
    const first = await get(web, '/h2');
    expect(first.status).toBe(200);
    const old = first.conn;
    expect(h2.tracker.open).toEqual([old]);
    const slow = get(web, '/h2', { 'x-delay-ms': '1500' });
    await eventually(async () => h2.inflight, (n) => n === 1, 10_000, 'slow stream at the upstream');
    const modified = await stat('cluster_manager.cluster_modified');
    state.h2Timeout = '2s';
    push();
    await strait.waitStat('cluster_manager.cluster_modified', (v) => v > modified);
    const during = await get(web, '/h2');
    expect(during.status).toBe(200);
    expect(during.conn).not.toBe(old);
    expect(await slow).toMatchObject({ status: 200, conn: old });
    await eventually(async () => h2.tracker.isClosed(old), (x) => x, 10_000, 'old HTTP/2 connection closed');
    expect(h2.tracker.open).toEqual([during.conn]);
  });

  it('a CDS update of an rpc_proxy (Bolt) cluster: the call in flight gets its answer, then the old multiplexed connection closes', async () => {
    expect(await boltCall(rpc, 'hello', 'x')).toEqual({ ok: true, value: 'R hello x-0' });
    expect(bolt.tracker.open).toHaveLength(1);
    const old = bolt.tracker.open[0]!;
    const slow = boltCall(rpc, 'slow', 'y');
    await eventually(async () => bolt.inflight, (n) => n === 1, 10_000, 'slow call at the provider');
    const modified = await stat('cluster_manager.cluster_modified');
    state.rpcTimeout = '2s';
    push();
    await strait.waitStat('cluster_manager.cluster_modified', (v) => v > modified);
    expect(await boltCall(rpc, 'hello', 'z')).toEqual({ ok: true, value: 'R hello z-0' });
    expect(await slow).toEqual({ ok: true, value: 'R slow y-0' });
    await eventually(async () => bolt.tracker.isClosed(old), (x) => x, 10_000, 'old Bolt connection closed');
    expect(bolt.tracker.open).toHaveLength(1);
    expect(bolt.tracker.open[0]).not.toBe(old);
  });

  it('an EDS update removing one rpc_proxy host closes only that host\'s multiplexed connection', async () => {
    state.rpcPorts = [bolt.port, bolt2.port];
    push();
    // Round robin over both providers once the second has arrived.
    await eventually(() => boltCall(rpc, 'hello', 'w'), (r) => r.ok && r.value.startsWith('R2 '), 10_000, 'second provider in rotation');
    await boltCall(rpc, 'hello', 'w');
    expect(bolt.tracker.open).toHaveLength(1);
    expect(bolt2.tracker.open).toHaveLength(1);
    const kept = bolt2.tracker.open[0]!;
    state.rpcPorts = [bolt2.port];
    push();
    await eventually(async () => bolt.tracker.open.length, (n) => n === 0, 10_000, 'removed provider connection closed');
    for (let i = 0; i < 2; i++) expect(await boltCall(rpc, 'hello', 'v')).toEqual({ ok: true, value: 'R2 hello v-0' });
    expect(bolt2.tracker.open).toEqual([kept]);
  });
});
