import fs from 'node:fs';
import path from 'node:path';
import grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLUSTER_TYPE, DELTA_METHOD, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, SOTW_METHOD, type DeltaDiscoveryResponse, type DiscoveryResponse } from '../../src/xds/proto.js';
import { decodeAny } from '../../src/xds/resources.js';
import { AdsServer } from '../../src/xds/server/ads_server.js';
import { runXdsServer } from '../../src/xds/server/index.js';
import { IstioState } from '../../src/xds/server/istio/index.js';
import { loadResourceDir } from '../../src/xds/server/resource_dir.js';
import { tmpDir } from '../helpers/strait.js';
import { eventually } from '../helpers/xds.js';

const HOST = 'reviews.default.svc.cluster.local';
const SE = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: reviews }
spec:
  hosts: [${HOST}]
  ports: [{ number: 9080, name: http }]
  resolution: STATIC
  endpoints:
  - { address: 127.0.0.1, ports: { http: 1001 }, labels: { version: v1 } }
  - { address: 127.0.0.1, ports: { http: 1002 }, labels: { version: v2 } }
`;
const dr = (subsets: string[]) => `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews }
spec:
  host: reviews
  subsets: [${subsets.map((s) => `{ name: ${s}, labels: { version: ${s} } }`).join(', ')}]
`;
const vs = (subset: string) => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews }
spec:
  hosts: [reviews]
  http: [{ route: [{ destination: { host: reviews, subset: ${subset} } }] }]
`;
const v = (s: string) => `outbound|9080|${s}|${HOST}`;

/** A raw ADS stream: every response in arrival order, so the test sees the server's order. */
class Stream<Res extends { type_url?: string; nonce?: string }> {
  readonly responses: Res[] = [];
  private waiters: Array<() => void> = [];
  private readonly call: grpc.ClientDuplexStream<any, Res>;

  constructor(client: grpc.Client, method: typeof SOTW_METHOD | typeof DELTA_METHOD) {
    this.call = client.makeBidiStreamRequest(method.path, method.requestSerialize as any, method.responseDeserialize as any) as any;
    this.call.on('data', (r: Res) => {
      this.responses.push(r);
      for (const w of this.waiters.splice(0)) w();
    });
    this.call.on('error', () => {});
  }

  async next(seen: number): Promise<Res> {
    const deadline = Date.now() + 10_000;
    while (this.responses.length <= seen) {
      if (Date.now() > deadline) throw new Error(`no response #${seen + 1}; got ${this.responses.map((r) => r.type_url?.split('.').pop()).join(', ')}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 100);
      });
    }
    return this.responses[seen]!;
  }

  send(m: unknown): void {
    this.call.write(m);
  }

  close(): void {
    this.call.cancel();
  }
}

const short = (t?: string) => t?.slice(t.lastIndexOf('.') + 1);

describe('make-before-break pushes of the embedded control plane', () => {
  let dir: string;
  let server: AdsServer;
  let client: grpc.Client;
  let generation = 0;
  const istio = new IstioState({ outboundBind: '127.0.0.1' });
  const reload = () => server.update({ version: String(++generation), resources: loadResourceDir(dir, { istio }).resources });

  beforeAll(async () => {
    dir = tmpDir('strait-push-order-');
    fs.writeFileSync(path.join(dir, 'se.yaml'), SE);
    fs.writeFileSync(path.join(dir, 'dr.yaml'), dr(['v1']));
    fs.writeFileSync(path.join(dir, 'vs.yaml'), vs('v1'));
    server = new AdsServer();
    // Never let the fallback decide a step in these tests: only the client's answers do.
    server.confirmMs = 600_000;
    reload();
    const port = await server.listen('127.0.0.1', 0);
    client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  });

  afterAll(async () => {
    client?.close();
    await server?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('state of the world: a new subset cluster and its endpoints before the route naming it; the old cluster only after the route left it', async () => {
    const s = new Stream<DiscoveryResponse>(client, SOTW_METHOD);
    const node = { id: 'order-sotw' };
    const names = (r: DiscoveryResponse) => (r.resources ?? []).map((a) => decodeAny(a, r.type_url!).value?.[r.type_url === ENDPOINT_TYPE ? 'cluster_name' : 'name']).sort();
    const ack = (r: DiscoveryResponse, resource_names: string[] = []) => s.send({ type_url: r.type_url, version_info: r.version_info, response_nonce: r.nonce, resource_names });
    try {
      // Initial state, as a client asks for it: clusters, endpoints, listeners, routes.
      s.send({ node, type_url: CLUSTER_TYPE, resource_names: [] });
      const c0 = await s.next(0);
      ack(c0);
      s.send({ type_url: ENDPOINT_TYPE, resource_names: [v(''), v('v1')] });
      ack(await s.next(1), [v(''), v('v1')]);
      s.send({ type_url: LISTENER_TYPE, resource_names: [] });
      ack(await s.next(2));
      s.send({ type_url: ROUTE_TYPE, resource_names: ['9080'] });
      const r0 = await s.next(3);
      ack(r0, ['9080']);
      expect(JSON.stringify(decodeAny(r0.resources![0]!, ROUTE_TYPE).value)).toContain(v('v1'));

      // One change: subset v2 added, the route moved to it, subset v1 removed.
      fs.writeFileSync(path.join(dir, 'dr.yaml'), dr(['v2']));
      fs.writeFileSync(path.join(dir, 'vs.yaml'), vs('v2'));
      reload();
      const c1 = await s.next(4);
      expect(short(c1.type_url)).toBe('Cluster');
      // v2 is in, and v1 is still there: a route in the client names it.
      expect(names(c1)).toEqual([v(''), v('v1'), v('v2')].sort());
      // The cluster is not answered yet; a request of another type is answered meanwhile,
      // and had the routes been pushed with the clusters they would have come before it.
      s.send({ type_url: ENDPOINT_TYPE, version_info: '', resource_names: [v(''), v('v1'), v('v2')] });
      const e1 = await s.next(5);
      expect(short(e1.type_url)).toBe('ClusterLoadAssignment');
      expect(names(e1)).toContain(v('v2'));
      expect(s.responses.map((r) => short(r.type_url)).slice(4)).toEqual(['Cluster', 'ClusterLoadAssignment']);

      // Clusters and endpoints answered: now the routes, still before any removal.
      ack(c1);
      ack(e1, [v(''), v('v1'), v('v2')]);
      const r1 = await s.next(6);
      expect(short(r1.type_url)).toBe('RouteConfiguration');
      const routes = JSON.stringify(decodeAny(r1.resources![0]!, ROUTE_TYPE).value);
      expect(routes).toContain(v('v2'));
      expect(routes).not.toContain(v('v1'));
      expect(s.responses.length).toBe(7);

      // Routes answered: the cluster nothing names any more goes.
      ack(r1, ['9080']);
      const c2 = await s.next(7);
      expect(short(c2.type_url)).toBe('Cluster');
      expect(names(c2)).toEqual([v(''), v('v2')].sort());
    } finally {
      s.close();
    }
  });

  it('delta: the same order, with the removal sent by name last', async () => {
    fs.writeFileSync(path.join(dir, 'dr.yaml'), dr(['v1']));
    fs.writeFileSync(path.join(dir, 'vs.yaml'), vs('v1'));
    reload();
    const s = new Stream<DeltaDiscoveryResponse>(client, DELTA_METHOD);
    const ack = (r: DeltaDiscoveryResponse) => s.send({ type_url: r.type_url, response_nonce: r.nonce });
    try {
      s.send({ node: { id: 'order-delta' }, type_url: CLUSTER_TYPE, resource_names_subscribe: [] });
      ack(await s.next(0));
      s.send({ type_url: ENDPOINT_TYPE, resource_names_subscribe: [v(''), v('v1')] });
      ack(await s.next(1));
      s.send({ type_url: LISTENER_TYPE, resource_names_subscribe: [] });
      ack(await s.next(2));
      s.send({ type_url: ROUTE_TYPE, resource_names_subscribe: ['9080'] });
      ack(await s.next(3));

      fs.writeFileSync(path.join(dir, 'dr.yaml'), dr(['v2']));
      fs.writeFileSync(path.join(dir, 'vs.yaml'), vs('v2'));
      reload();
      const c1 = await s.next(4);
      expect(short(c1.type_url)).toBe('Cluster');
      expect((c1.resources ?? []).map((r) => r.name)).toEqual([v('v2')]);
      expect(c1.removed_resources ?? []).toEqual([]);
      // The new cluster's endpoints, asked for as a client does once it sees the cluster.
      s.send({ type_url: ENDPOINT_TYPE, resource_names_subscribe: [v('v2')] });
      const e1 = await s.next(5);
      expect(short(e1.type_url)).toBe('ClusterLoadAssignment');
      expect((e1.resources ?? []).map((r) => r.name)).toEqual([v('v2')]);
      ack(c1);
      // The cluster is answered but its endpoints are not: still no routes. Asking again for
      // an assignment gets an answer, which the routes would have preceded.
      s.send({ type_url: ENDPOINT_TYPE, resource_names_subscribe: [v('')] });
      const e1b = await s.next(6);
      expect(short(e1b.type_url)).toBe('ClusterLoadAssignment');
      expect(s.responses.map((r) => short(r.type_url)).slice(4)).toEqual(['Cluster', 'ClusterLoadAssignment', 'ClusterLoadAssignment']);
      ack(e1);
      ack(e1b);
      const r1 = await s.next(7);
      expect(short(r1.type_url)).toBe('RouteConfiguration');
      expect(JSON.stringify(decodeAny(r1.resources![0]!.resource!, ROUTE_TYPE).value)).toContain(v('v2'));
      ack(r1);
      const c2 = await s.next(8);
      expect(short(c2.type_url)).toBe('Cluster');
      expect(c2.removed_resources).toEqual([v('v1')]);
      const e2 = await s.next(9);
      expect(short(e2.type_url)).toBe('ClusterLoadAssignment');
      expect(e2.removed_resources).toEqual([v('v1')]);
    } finally {
      s.close();
    }
  });
});

describe('debounced directory pushes', () => {
  const clusterFile = (n: number) => `resources:
- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: c${n}
  type: STATIC
  connect_timeout: 1s
  load_assignment: { cluster_name: c${n}, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${1000 + n} } } } }] }] }
`;

  it('coalesces a burst of changes into one version', async () => {
    const dir = tmpDir('strait-debounce-');
    const h = await runXdsServer({ dir, host: '127.0.0.1', port: 0, debounceMs: 100, debounceMaxMs: 1000 });
    try {
      const before = Number(h.server.snapshot.version);
      // Ten files in one go (a `kubectl apply -f dir/`, a git checkout): one push, not ten.
      for (let i = 0; i < 10; i++) fs.writeFileSync(path.join(dir, `c${i}.yaml`), clusterFile(i));
      await eventually(async () => h.server.snapshot.resources.get(CLUSTER_TYPE)?.size ?? 0, (n) => n === 10, 10_000, 'all ten clusters served');
      expect(Number(h.server.snapshot.version)).toBe(before + 1);
    } finally {
      await h.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('pushes within the maximum wait even when the quiet period is longer', async () => {
    const dir = tmpDir('strait-debounce-max-');
    // A quiet period far beyond the wait below: only the maximum can make this push happen in time.
    const h = await runXdsServer({ dir, host: '127.0.0.1', port: 0, debounceMs: 60_000, debounceMaxMs: 200 });
    try {
      fs.writeFileSync(path.join(dir, 'c1.yaml'), clusterFile(1));
      await eventually(async () => h.server.snapshot.resources.get(CLUSTER_TYPE)?.size ?? 0, (n) => n === 1, 15_000, 'cluster served');
    } finally {
      await h.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
