// A draining Strait (SIGTERM) tells its Dubbo clients to go elsewhere with Dubbo's READONLY
// event, as a Java provider that shuts down does; Bolt has no such event, so Bolt clients get
// nothing and simply keep their connection until the drain ends.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deadPort } from '../helpers/net.js';
import { ADMIN, REPO, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';
import { eventually } from '../helpers/xds.js';

const require = createRequire(import.meta.url);
const FIXTURES = path.join(REPO, 'test/fixtures/rpc');
const { startDubboProvider } = require(path.join(FIXTURES, 'dubbo_provider.cjs'));

const IFACE = 'com.example.UserService';

/** Dubbo 2 READONLY: request|event, hessian2, status 0, id 0, body length 2, hessian2 "R". */
const READONLY = Buffer.from([0xda, 0xbb, 0xa2, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x01, 0x52]);

/** A two-way heartbeat event (id 7, hessian null body): the proxy answers it itself. */
const HEARTBEAT = Buffer.from([0xda, 0xbb, 0xe2, 0x00, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0x01, 0x4e]);

/** A raw client connection that records every byte it receives. */
async function rawClient(port: number): Promise<{ socket: net.Socket; received: () => Buffer }> {
  const socket = net.connect(port, '127.0.0.1');
  const chunks: Buffer[] = [];
  socket.on('data', (d: Buffer) => chunks.push(d));
  socket.on('error', () => {});
  await new Promise<void>((r, j) => socket.once('connect', r).once('error', j));
  return { socket, received: () => Buffer.concat(chunks) };
}

/** A dubbo-js consumer that calls once per `call()`, on the one connection it keeps. */
function stepwiseClient(port: number) {
  const child: ChildProcessWithoutNullStreams = spawn(process.execPath, [path.join(FIXTURES, 'dubbo_stepwise_client.cjs'), String(port), IFACE, '1.0.0', 'hello'], { cwd: REPO });
  const lines = readline.createInterface({ input: child.stdout });
  const waiting: Array<(v: unknown) => void> = [];
  lines.on('line', (l) => waiting.shift()?.(JSON.parse(l)));
  return {
    call(arg: string): Promise<unknown> {
      return new Promise((resolve) => {
        waiting.push(resolve);
        child.stdin.write(`${arg}\n`);
      });
    },
    close: () => child.kill('SIGKILL'),
  };
}

describe('graceful drain of rpc_proxy connections', () => {
  let provider: { port: number; connections: number; close(): Promise<void> };
  let strait: StraitProcess;
  let dubboPort: number;
  let boltPort: number;

  beforeAll(async () => {
    provider = await startDubboProvider({ interface: IFACE, version: '1.0.0', name: 'live', methods: ['hello'] });
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
            routes: [ { match: {}, route: { cluster: live } } ]
  - name: bolt
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: strait.filters.network.rpc_proxy
        typed_config:
          "@type": type.googleapis.com/strait.rpc_proxy.v1.RpcProxy
          stat_prefix: bolt
          protocol: BOLT
          route_config:
          - interface: ${IFACE}
            routes: [ { match: {}, route: { cluster: nobody } } ]
  clusters:
${staticCluster('live', [provider.port])}${staticCluster('nobody', [await deadPort()])}`,
      // Long enough that the clients below are still connected when the checks run.
      { args: ['--drain-time-s', '20'] },
    );
    dubboPort = await strait.port('dubbo');
    boltPort = await strait.port('bolt');
  });

  afterAll(async () => {
    await strait?.stop();
    await provider?.close();
  });

  it('sends READONLY to Dubbo clients when the drain starts, and nothing to Bolt clients', async () => {
    const dubbo = await rawClient(dubboPort);
    dubbo.socket.write(HEARTBEAT);
    // The heartbeat's answer (17 bytes) shows the session is up before the drain starts.
    await eventually(async () => dubbo.received().length, (n) => n >= 17, 10_000, 'heartbeat answer');
    const bolt = await rawClient(boltPort);
    const consumer = stepwiseClient(dubboPort);
    try {
      expect(await consumer.call('before')).toEqual({ ok: true, value: 'live:hello:before' });
      await strait.waitStat('listener_manager.total_listeners_active', (v) => v === 2);
      process.kill(strait.pid, 'SIGTERM');
      await eventually(async () => dubbo.received().length, (n) => n >= 17 + READONLY.length, 10_000, 'READONLY event');
      expect(dubbo.received().subarray(17)).toEqual(READONLY);
      // The raw client and the dubbo-js one each got one.
      expect(await strait.waitStat('dubbo.dubbo.drain_readonly_sent', (v) => v === 2)).toBe(2);
      // dubbo-js takes any event frame for a heartbeat and keeps the connection; the draining
      // proxy still serves it (the drain time has not run out), so the event breaks nothing.
      expect(await consumer.call('during')).toEqual({ ok: true, value: 'live:hello:during' });
      // Bolt has no READONLY: its client receives nothing and keeps its connection.
      expect(bolt.received().length).toBe(0);
      expect(bolt.socket.destroyed).toBe(false);
      expect(await strait.stat('rpc.bolt.drain_readonly_sent')).toBe(0);
    } finally {
      consumer.close();
      dubbo.socket.destroy();
      bolt.socket.destroy();
    }
  });
});
