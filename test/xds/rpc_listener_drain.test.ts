import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdsServer } from '../../src/xds/server/ads_server.js';
import { loadResourceDir } from '../../src/xds/server/resource_dir.js';
import { deadPort } from '../helpers/net.js';
import { REPO, startStrait, tmpDir, type StraitProcess } from '../helpers/strait.js';
import { adsBootstrap, eventually, res, writeResources } from '../helpers/xds.js';

// A listener with rpc_proxy removed by LDS takes its upstream pools with it: once its client
// connections are gone, idle provider connections close and busy ones close after their last
// call (the same drain a removed cluster gets). Dubbo clients are told READONLY at once.
// Every check counts connections on the provider's side.

const require = createRequire(import.meta.url);
const { RpcServer } = require('sofa-rpc-node').server;
const run = promisify(execFile);
const BOLT_CLIENT = path.join(REPO, 'test/fixtures/rpc/bolt_client.cjs');
const quiet = { info() {}, warn() {}, debug() {}, error() {} };
const IFACE = 'com.example.UserService';

/** A SOFARPC Bolt provider whose `slow` method answers after 1 s; counts its open connections. */
async function boltProvider() {
  const conns = new Set<net.Socket>();
  let accepted = 0;
  let inflight = 0;
  const server = new RpcServer({ logger: quiet, port: await deadPort() });
  server.addService({ interfaceName: IFACE, version: '1.0' }, {
    async hello(name: string) {
      return `hello ${name}`;
    },
    async slow(name: string) {
      inflight++;
      await new Promise((r) => setTimeout(r, 1000));
      inflight--;
      return `slow ${name}`;
    },
  });
  await server.start();
  (server._servers[0] as net.Server).on('connection', (s: net.Socket) => {
    accepted++;
    conns.add(s);
    s.on('close', () => conns.delete(s));
  });
  return {
    port: ((server._servers[0] as net.Server).address() as net.AddressInfo).port,
    get open() {
      return conns.size;
    },
    get accepted() {
      return accepted;
    },
    get inflight() {
      return inflight;
    },
    close: () => server.close() as Promise<void>,
  };
}

async function boltCall(port: number, method: string, arg: string): Promise<unknown> {
  const { stdout } = await run(process.execPath, [BOLT_CLIENT, String(port), IFACE, '1.0', method, '1', arg], { cwd: REPO, timeout: 20_000 });
  return JSON.parse(stdout)[0];
}

const rpcListener = (name: string, filter: string, typeUrl: string, extra: string, statPrefix = name) => `- "@type": type.googleapis.com/envoy.config.listener.v3.Listener
  name: ${name}
  address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
  filter_chains:
  - filters:
    - name: ${filter}
      typed_config:
        "@type": ${typeUrl}
        stat_prefix: ${statPrefix}
${extra}        route_config:
        - interface: ${IFACE}
          routes: [ { match: {}, route: { cluster: provider } } ]
`;

const BOLT = rpcListener('rpc', 'strait.filters.network.rpc_proxy', 'type.googleapis.com/strait.rpc_proxy.v1.RpcProxy', '        protocol: BOLT\n');
const BOLT_V2 = rpcListener('rpc', 'strait.filters.network.rpc_proxy', 'type.googleapis.com/strait.rpc_proxy.v1.RpcProxy', '        protocol: BOLT\n', 'rpc_v2');
const DUBBO = rpcListener('dubbo', 'envoy.filters.network.dubbo_proxy', 'type.googleapis.com/envoy.extensions.filters.network.dubbo_proxy.v3.DubboProxy', '');
const READONLY = Buffer.from([0xda, 0xbb, 0xa2, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x01, 0x52]);

describe('an rpc_proxy listener removed over LDS drains its upstream connections', () => {
  let dir: string;
  let server: AdsServer;
  let strait: StraitProcess;
  let provider: Awaited<ReturnType<typeof boltProvider>>;
  let generation = 0;

  const push = (listeners: string[]) => {
    writeResources(dir, 'listeners.yaml', [res.tcpListener('keep', 'provider'), ...listeners]);
    writeResources(dir, 'clusters.yaml', [res.staticCluster('provider', provider.port)]);
    server.update({ version: String(++generation), resources: loadResourceDir(dir).resources });
  };

  beforeAll(async () => {
    provider = await boltProvider();
    dir = tmpDir('strait-rpc-lds-');
    server = new AdsServer();
    push([BOLT, DUBBO]);
    const port = await server.listen('127.0.0.1', 0);
    strait = await startStrait(adsBootstrap(port, 'DELTA_GRPC', 'rpc-drain-node'));
    await eventually(() => strait.port('rpc'), (p) => p > 0, 15_000, 'listener rpc active');
    await eventually(() => strait.port('dubbo'), (p) => p > 0, 15_000, 'listener dubbo active');
  });

  afterAll(async () => {
    await strait?.stop();
    await server?.close();
    await provider?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('the call in flight finishes, then the provider connection closes; a Dubbo client gets READONLY', async () => {
    const rpc = await strait.port('rpc');
    expect(await boltCall(rpc, 'hello', 'a')).toEqual({ ok: true, value: 'hello a-0' });
    // The pooled connection outlives the client that made it.
    expect(provider.open).toBe(1);
    const dubbo = net.connect(await strait.port('dubbo'), '127.0.0.1');
    const got: Buffer[] = [];
    dubbo.on('data', (d: Buffer) => got.push(d));
    dubbo.on('error', () => {});
    await new Promise((r) => dubbo.once('connect', r));
    await eventually(async () => strait.stat('listener_manager.total_listeners_active'), (v) => v === 3, 5_000, 'listeners');
    await eventually(async () => (await strait.get('/stats')).text.includes('dubbo.dubbo.cx_active: 1'), (x) => x, 5_000, 'dubbo session up');
    try {
      // A slow call on that same upstream connection, in flight across the removal.
      const slow = boltCall(rpc, 'slow', 's');
      await eventually(async () => provider.inflight, (n) => n === 1, 10_000, 'slow call at the provider');
      const removed = (await strait.stat('listener_manager.listener_removed')) ?? 0;
      push([]);
      await strait.waitStat('listener_manager.listener_removed', (v) => v >= removed + 2);
      await eventually(async () => Buffer.concat(got).length, (n) => n >= READONLY.length, 10_000, 'READONLY');
      expect(Buffer.concat(got)).toEqual(READONLY);
      expect(await slow).toEqual({ ok: true, value: 'slow s-0' });
      // Its client gone, the removed listener is done: its pool drains and the connection closes.
      await eventually(async () => provider.open, (n) => n === 0, 10_000, 'provider connection closed');
      expect(provider.accepted).toBe(1);
      expect(await strait.stat('cluster.provider.upstream_cx_destroy_local')).toBeGreaterThanOrEqual(1);
    } finally {
      dubbo.destroy();
    }
  });

  it('an LDS update replacing the chain drains the old chain\'s provider connection once its clients are gone', async () => {
    push([BOLT]);
    const rpc = await eventually(() => strait.port('rpc'), (p) => p > 0, 15_000, 'listener rpc back');
    expect(await boltCall(rpc, 'hello', 'b')).toEqual({ ok: true, value: 'hello b-0' });
    await eventually(async () => provider.open, (n) => n === 1, 10_000, 'one pooled provider connection');
    const accepted = provider.accepted;
    // Same name and address, another stat_prefix: the chain is rebuilt on the bound socket.
    push([BOLT_V2]);
    await eventually(async () => (await strait.get('/stats')).text.includes('rpc.rpc_v2.cx_total'), (x) => x, 10_000, 'new chain installed');
    // The old chain has no client left: its pool drains and the provider connection closes.
    await eventually(async () => provider.open, (n) => n === 0, 10_000, 'old chain connection closed');
    expect(await strait.port('rpc')).toBe(rpc);
    expect(await boltCall(rpc, 'hello', 'c')).toEqual({ ok: true, value: 'hello c-0' });
    expect(provider.accepted).toBe(accepted + 1);
  });
});
