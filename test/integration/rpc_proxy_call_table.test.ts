import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deadPort } from '../helpers/net.js';
import { ADMIN, ENGINES, startStrait, staticCluster, type StraitProcess, rpcProxyListener } from '../helpers/strait.js';

const require = createRequire(import.meta.url);
const { RpcServer } = require('sofa-rpc-node').server;
const { RpcClient } = require('sofa-rpc-node').client;
const quiet = { info() {}, warn() {}, debug() {}, error() {} };

/** Quick calls made while the first one is held: several times the call table's 64 slots. */
const QUICK = 300;

// The upstream connection keeps its calls in a table indexed by request id modulo its size, and
// its ids keep counting: a call held while hundreds of others pass must keep its slot and its id
// (the proxy skips ids whose slot is taken), or its answer would be lost or go to another call.
describe.each(ENGINES)('rpc_proxy upstream call table on the %s engine', (engine) => {
  let provider: { close(): Promise<void> };
  let strait: StraitProcess;
  let port: number;
  let release: () => void = () => {};
  let quickSeen = 0;

  beforeAll(async () => {
    const gate = new Promise<void>((r) => (release = r));
    const server = new RpcServer({ logger: quiet, port: await deadPort() });
    server.addService({ interfaceName: 'com.example.Table', version: '1.0' }, {
      async hold(name: string) {
        await gate;
        return `held ${name}`;
      },
      async quick(name: string) {
        if (++quickSeen === QUICK) release();
        return `quick ${name}`;
      },
    });
    await server.start();
    provider = { close: () => server.close() };
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${rpcProxyListener('rpc', `          protocol: bolt
          route_config:
          - interface: com.example.Table
            routes: [ { match: {}, route: { cluster: table } } ]`)}
  clusters:
${staticCluster('table', [server._servers[0].address().port])}`,
      { engine },
    );
    port = await strait.port('rpc');
  });

  afterAll(async () => {
    release();
    await strait?.stop();
    await provider?.close();
  });

  it('answers a call held while hundreds of later calls reuse its slot, each to its own caller', async () => {
    const client = new RpcClient({ logger: quiet });
    try {
      const consumer = client.createConsumer({ interfaceName: 'com.example.Table', version: '1.0', serverHost: `127.0.0.1:${port}` });
      await consumer.ready();
      const held = consumer.invoke('hold', ['first'], { responseTimeout: 15_000 });
      // A few at a time, so the table stays small and the ids wrap around it many times.
      const quick: string[] = [];
      for (let i = 0; i < QUICK; i += 10) {
        const batch = Array.from({ length: 10 }, (_, j) => consumer.invoke('quick', [`q${i + j}`], { responseTimeout: 5000 }));
        quick.push(...(await Promise.all(batch)));
      }
      expect(quick).toEqual(Array.from({ length: QUICK }, (_, i) => `quick q${i}`));
      expect(await held).toBe('held first');
      expect(await strait.stat('cluster.table.upstream_cx_total')).toBe(1);
      expect((await strait.stat('rpc.rpc.response_unmatched')) ?? 0).toBe(0);
    } finally {
      await client.close();
    }
  });
});
