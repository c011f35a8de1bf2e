// Apache Thrift (framed, binary protocol) through rpc_proxy, driven by the real `thrift` library
// on both sides: the third protocol, added as one codec file (src/protocols/thrift/codec.ts).
import { createRequire } from 'node:module';
import type net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, ENGINES, REPO, startStrait, staticCluster, type StraitProcess, rpcProxyListener } from '../helpers/strait.js';

const require = createRequire(import.meta.url);
const thrift = require('thrift');
const { Client, Processor } = require(path.join(REPO, 'test/fixtures/rpc/thrift_calculator.cjs'));
const OPTS = { transport: thrift.TFramedTransport, protocol: thrift.TBinaryProtocol };

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return (server.address() as net.AddressInfo).port;
}

/** A multiplexed server exporting Calculator, or a plain one; `tag` tells them apart. */
function calculator(tag: string, offset: number) {
  return {
    add: async (a: number, b: number) => a + b + offset,
    echo: async (m: string) => {
      // Out of order on purpose: later calls may answer first.
      await new Promise((r) => setTimeout(r, m.length % 3));
      return `${tag}:${m}`;
    },
  };
}

function connectTo(port: number) {
  const c = thrift.createConnection('127.0.0.1', port, OPTS);
  c.on('error', () => {});
  return c;
}

describe.each(ENGINES)('rpc_proxy with Apache Thrift on the %s engine', (engine) => {
  const servers: net.Server[] = [];
  let strait: StraitProcess;
  let port: number;

  beforeAll(async () => {
    const ports: number[] = [];
    for (const [tag, offset] of [['a', 1000], ['b', 2000]] as const) {
      const mp = new thrift.MultiplexedProcessor();
      mp.registerProcessor('Calculator', new Processor(calculator(tag, offset)));
      const s = thrift.createMultiplexServer(mp, OPTS);
      servers.push(s);
      ports.push(await listen(s));
    }
    const plain = thrift.createServer(Processor, calculator('c', 3000), OPTS);
    servers.push(plain);
    ports.push(await listen(plain));
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${rpcProxyListener('rpc', `          protocol: AUTO
          route_config:
          - interface: Calculator
            routes:
            - match: { method: { name: { exact: add } } }
              route: { cluster: mux_a }
            - match: {}
              route: { cluster: mux_b }
          - routes:
            - match: { method: { name: { exact: echo } } }
              route: { cluster: plain }`)}
  clusters:
${staticCluster('mux_a', [ports[0]!])}${staticCluster('mux_b', [ports[1]!])}${staticCluster('plain', [ports[2]!])}`,
      { engine },
    );
    port = await strait.port('rpc');
  });

  afterAll(async () => {
    await strait?.stop();
    for (const s of servers) s.close();
  });

  it('routes multiplexed calls by service and method, detected from the first bytes', async () => {
    const conn = connectTo(port);
    const client = new thrift.Multiplexer().createClient('Calculator', Client, conn);
    expect(await client.add(2, 3)).toBe(1005);
    expect(await client.echo('hi')).toBe('b:hi');
    conn.end();
  });

  it('maps colliding seqids of two connections back to the right caller', async () => {
    const c1 = connectTo(port);
    const c2 = connectTo(port);
    const one = new thrift.Multiplexer().createClient('Calculator', Client, c1);
    const two = new thrift.Multiplexer().createClient('Calculator', Client, c2);
    const calls: Promise<string>[] = [];
    for (let i = 0; i < 30; i++) calls.push(one.echo(`one-${i}`), two.echo(`two-${i}`));
    const got = await Promise.all(calls);
    for (let i = 0; i < 30; i++) {
      expect(got[2 * i]).toBe(`b:one-${i}`);
      expect(got[2 * i + 1]).toBe(`b:two-${i}`);
    }
    // Both client connections shared one upstream connection.
    expect(await strait.stat('cluster.mux_b.upstream_cx_total')).toBe(1);
    c1.end();
    c2.end();
  });

  it('routes plain calls by method and answers an unrouted one with a TApplicationException', async () => {
    const conn = connectTo(port);
    const client = thrift.createClient(Client, conn);
    expect(await client.echo('plain')).toBe('c:plain');
    const err = await client.add(1, 1).then(
      () => null,
      (e: Error & { type?: number }) => e,
    );
    expect(err).toBeInstanceOf(thrift.Thrift.TApplicationException);
    expect(err!.message).toContain('no route');
    expect(err!.type).toBe(thrift.Thrift.TApplicationExceptionType.UNKNOWN_METHOD);
    expect(await strait.stat('rpc.rpc.local_response_no_route')).toBeGreaterThanOrEqual(1);
    conn.end();
  });
});
