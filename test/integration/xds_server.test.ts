import fs from 'node:fs';
import path from 'node:path';
import grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLUSTER_TYPE, DELTA_METHOD, ENDPOINT_TYPE, LISTENER_TYPE, SOTW_METHOD, type DeltaDiscoveryResponse, type DiscoveryResponse } from '../../src/xds/proto.js';
import { decodeAny } from '../../src/xds/resources.js';
import { tmpDir } from '../helpers/strait.js';
import { res, startXdsServer, writeResources, type XdsServerProcess } from '../helpers/xds.js';

/** A raw ADS stream from the test, to check the server's side of the protocol message by message. */
class Stream<Res> {
  readonly responses: Res[] = [];
  private waiters: Array<() => void> = [];
  readonly call: grpc.ClientDuplexStream<any, Res>;

  constructor(client: grpc.Client, method: typeof SOTW_METHOD | typeof DELTA_METHOD) {
    this.call = client.makeBidiStreamRequest(method.path, method.requestSerialize as any, method.responseDeserialize as any) as any;
    this.call.on('data', (r: Res) => {
      this.responses.push(r);
      for (const w of this.waiters.splice(0)) w();
    });
    this.call.on('error', () => {});
  }

  /** The next response after `seen` of them, or a failure after `ms`. */
  async next(seen: number, ms = 10_000): Promise<Res> {
    const deadline = Date.now() + ms;
    while (this.responses.length <= seen) {
      if (Date.now() > deadline) throw new Error(`no response #${seen + 1}`);
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

const NODE = { id: 'raw-client', cluster: 'c' };
const names = (r: DiscoveryResponse, type: string) => (r.resources ?? []).map((a) => decodeAny(a, type).value?.[type === ENDPOINT_TYPE ? 'cluster_name' : 'name']).sort();

describe('strait xds-server', () => {
  let dir: string;
  let xs: XdsServerProcess;
  let client: grpc.Client;

  beforeAll(async () => {
    dir = tmpDir('strait-xds-dir-');
    writeResources(dir, 'a.yaml', [res.staticCluster('a', 1001), res.edsCluster('e'), res.assignment('e', [2001]), res.assignment('other', [2002])]);
    // One resource with its own @type, as a single-resource file (JSON).
    fs.writeFileSync(path.join(dir, 'l.json'), JSON.stringify({ '@type': LISTENER_TYPE, name: 'l1', address: { socket_address: { address: '127.0.0.1', port_value: 0 } }, filter_chains: [{ filters: [{ name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', stat_prefix: 'l1', cluster: 'a' } }] }] }));
    // Neither kind: reported and skipped, the rest still served.
    fs.writeFileSync(path.join(dir, 'crd.yaml'), 'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: { name: x }\n');
    fs.writeFileSync(path.join(dir, 'broken.yaml'), 'resources:\n- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster\n  name: broken\n  connect_timeout: soon\n');
    xs = await startXdsServer(dir);
    client = new grpc.Client(`127.0.0.1:${xs.port}`, grpc.credentials.createInsecure());
  });

  afterAll(async () => {
    client?.close();
    await xs?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('reports what each file was read as, and why files or resources were skipped', async () => {
    const read = (file: string) => xs.logs.find((l) => l.msg === 'xds-server: read file' && l.file === file);
    // The log lines travel through a pipe and may trail the bound address: wait for them, bounded.
    for (let i = 0; i < 200 && !['a.yaml', 'l.json', 'crd.yaml', 'broken.yaml'].every((f) => read(f) || xs.logs.some((l) => l.level === 40 && l.file === f)); i++) {
      await new Promise((r) => setTimeout(r, 25));
    }
    expect(read('a.yaml')).toMatchObject({ kind: 'resource list', resources: 4 });
    expect(read('l.json')).toMatchObject({ kind: 'resource', resources: 1 });
    // An Istio object is translated; one without a spec is refused with the field's path.
    expect(read('crd.yaml')).toMatchObject({ kind: 'istio', resources: 0 });
    const warn = (file: string) => xs.logs.filter((l) => l.level === 40 && l.file === file).map((l) => `${l.path}: ${l.msg}`);
    expect(warn('crd.yaml')[0]).toBe('spec: is required and must be a mapping');
    expect(warn('broken.yaml')).toContain('resources[0].connect_timeout: invalid duration string "soon": write it like "1s", "0.25s" or "1.5s"');
  });

  it('state of the world: full CDS/LDS sets, EDS by name, ACK, NACK logged, and a push on change', async () => {
    const s = new Stream<DiscoveryResponse>(client, SOTW_METHOD);
    let pushed = 0;
    try {
      s.send({ node: NODE, type_url: CLUSTER_TYPE, resource_names: [] });
      const r1 = await s.next(0);
      expect(r1.type_url).toBe(CLUSTER_TYPE);
      expect(names(r1, CLUSTER_TYPE)).toEqual(['a', 'e']);
      const v1 = r1.version_info!;
      // ACK, then ask for one assignment by name: only that one comes back.
      s.send({ type_url: CLUSTER_TYPE, version_info: v1, response_nonce: r1.nonce, resource_names: [] });
      s.send({ type_url: ENDPOINT_TYPE, resource_names: ['e'] });
      const r2 = await s.next(1);
      expect(r2.type_url).toBe(ENDPOINT_TYPE);
      expect(names(r2, ENDPOINT_TYPE)).toEqual(['e']);
      // NACK the endpoints: the server logs the client's error_detail.
      const from = xs.logs.length;
      s.send({ type_url: ENDPOINT_TYPE, version_info: '', response_nonce: r2.nonce, resource_names: ['e'], error_detail: { code: 3, message: 'ClusterLoadAssignment "e": endpoints[0]: no thanks' } });
      const nack = await xs.waitLog((l) => l.msg === 'xds NACK', from);
      expect(nack).toMatchObject({ nodeId: 'raw-client', type: 'ClusterLoadAssignment', error: 'ClusterLoadAssignment "e": endpoints[0]: no thanks' });

      // A change on disk: a new version with the whole cluster set, pushed unasked.
      writeResources(dir, 'b.yaml', [res.staticCluster('b', 1002)]);
      const r3 = await s.next(2);
      pushed = Number(r3.version_info);
      expect(r3.type_url).toBe(CLUSTER_TYPE);
      expect(names(r3, CLUSTER_TYPE)).toEqual(['a', 'b', 'e']);
      expect(Number(r3.version_info)).toBeGreaterThan(Number(v1));
      expect(r3.nonce).not.toBe(r1.nonce);
      // The endpoints did not change, so none were pushed: the next response answers the next request.
      s.send({ type_url: CLUSTER_TYPE, version_info: r3.version_info, response_nonce: r3.nonce, resource_names: [] });
      s.send({ type_url: LISTENER_TYPE, resource_names: [] });
      const r4 = await s.next(3);
      expect(r4.type_url).toBe(LISTENER_TYPE);
      expect(names(r4, LISTENER_TYPE)).toEqual(['l1']);
    } finally {
      s.close();
      const from = xs.logs.length;
      fs.rmSync(path.join(dir, 'b.yaml'), { force: true });
      // A version after the one this test saw: the log of that one may be read only now.
      await xs.waitLog((l) => l.msg === 'xds-server: pushing a new version' && l.version > pushed, from);
    }
  });

  it('delta: only changes and removals, versions per resource, and a reconnect that resends nothing it holds', async () => {
    const s = new Stream<DeltaDiscoveryResponse>(client, DELTA_METHOD);
    let held: Record<string, string> = {};
    try {
      s.send({ node: NODE, type_url: CLUSTER_TYPE, resource_names_subscribe: [] });
      let r = await s.next(0);
      held = Object.fromEntries((r.resources ?? []).map((x) => [x.name, x.version]));
      expect(Object.keys(held).sort()).toEqual(['a', 'e']);
      s.send({ type_url: CLUSTER_TYPE, response_nonce: r.nonce });

      // Change one cluster, add another: exactly those two come, with new versions.
      writeResources(dir, 'a.yaml', [res.staticCluster('a', 1111), res.edsCluster('e'), res.assignment('e', [2001]), res.assignment('other', [2002])]);
      writeResources(dir, 'c.yaml', [res.staticCluster('c', 1003)]);
      r = await s.next(1);
      let got = new Map((r.resources ?? []).map((x) => [x.name, x.version]));
      // The debounce may split the two writes into two pushes.
      if (got.size < 2) {
        s.send({ type_url: CLUSTER_TYPE, response_nonce: r.nonce });
        const r2 = await s.next(2);
        for (const x of r2.resources ?? []) got.set(x.name, x.version);
        r = r2;
      }
      expect([...got.keys()].sort()).toEqual(['a', 'c']);
      expect(got.get('a')).not.toBe(held.a);
      expect(decodeAny((r.resources ?? []).find((x) => x.name === got.keys().next().value)!.resource!, CLUSTER_TYPE).errors).toEqual([]);
      held = { ...held, ...Object.fromEntries(got) };
      s.send({ type_url: CLUSTER_TYPE, response_nonce: r.nonce });

      // Deleting a file removes its resources by name.
      const seen = s.responses.length;
      fs.rmSync(path.join(dir, 'c.yaml'));
      r = await s.next(seen);
      expect(r.resources ?? []).toEqual([]);
      expect(r.removed_resources).toEqual(['c']);
      delete held.c;
    } finally {
      s.close();
    }

    // A new stream that already holds everything gets an empty first response, not the set again.
    const again = new Stream<DeltaDiscoveryResponse>(client, DELTA_METHOD);
    try {
      again.send({ node: NODE, type_url: CLUSTER_TYPE, resource_names_subscribe: [], initial_resource_versions: { ...held, gone: 'x' } });
      const r = await again.next(0);
      expect(r.resources ?? []).toEqual([]);
      expect(r.removed_resources).toEqual(['gone']);
      // Explicit names for a non-wildcard type.
      again.send({ type_url: ENDPOINT_TYPE, resource_names_subscribe: ['other'] });
      const e = await again.next(1);
      expect((e.resources ?? []).map((x) => x.name)).toEqual(['other']);
    } finally {
      again.close();
    }
  });
});
