import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import { BoltStatus } from '../../src/protocols/bolt/codec.js';
import { getCodec } from '../../src/protocols/index.js';
import { FrameKind, H } from '../../src/protocols/types.js';
import { connect, deadPort } from '../helpers/net.js';
import { ADMIN, ENGINES, REPO, startStrait, staticCluster, type StraitProcess, rpcProxyListener } from '../helpers/strait.js';

const require = createRequire(import.meta.url);
const { RpcServer } = require('sofa-rpc-node').server;
const boltV1 = require('sofa-bolt-node/lib/protocol/v1.js');
const RpcRequestCommand = require('sofa-bolt-node/lib/protocol/rpc_req_cmd.js');
const run = promisify(execFile);
const CLIENT = path.join(REPO, 'test/fixtures/rpc/bolt_client.cjs');
const quiet = { info() {}, warn() {}, debug() {}, error() {} };

type Result = { ok: true; value: string } | { ok: false; error: string; name: string };

async function sofaServer(tag: string): Promise<{ port: number; close(): Promise<void> }> {
  const server = new RpcServer({ logger: quiet, port: await deadPort() });
  server.addService({ interfaceName: 'com.example.UserService', version: '1.0' }, {
    async hello(name: string) {
      return `${tag} hello ${name}`;
    },
    async bye(name: string) {
      return `${tag} bye ${name}`;
    },
    async slow(name: string) {
      await new Promise((r) => setTimeout(r, 2000));
      return `${tag} slow ${name}`;
    },
  });
  await server.start();
  return { port: server._servers[0].address().port, close: () => server.close() };
}

async function callThrough(port: number, iface: string, version: string, method: string, count: number, arg: string): Promise<Result[]> {
  const { stdout } = await run(process.execPath, [CLIENT, String(port), iface, version, method, String(count), arg], { cwd: REPO, timeout: 20_000 });
  return JSON.parse(stdout) as Result[];
}

describe.each(ENGINES)('rpc_proxy with SOFARPC Bolt (sofa-rpc-node) on the %s engine', (engine) => {
  let v1: Awaited<ReturnType<typeof sofaServer>>;
  let v2: Awaited<ReturnType<typeof sofaServer>>;
  let strait: StraitProcess;
  let port: number;

  let silent: { port: number; close(): void };

  beforeAll(async () => {
    // A provider that reads calls and never answers.
    const mute = net.createServer((s) => s.on('data', () => {}));
    await new Promise<void>((r) => mute.listen(0, '127.0.0.1', () => r()));
    silent = { port: (mute.address() as net.AddressInfo).port, close: () => mute.close() };
    v1 = await sofaServer('v1');
    v2 = await sofaServer('v2');
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${rpcProxyListener('rpc', `          protocol: bolt
          route_config:
          - interface: com.example.Silent
            routes: [ { match: {}, route: { cluster: silent } } ]
          - interface: com.example.UserService
            version: "1.0"
            routes:
            - match: { method: { name: { exact: hello } } }
              route: { cluster: user_v1 }
            - match: { method: { name: { exact: slow } } }
              route: { cluster: user_v1, timeout: 0.3s }
            - match: {}
              route: { cluster: user_v2 }`)}
  clusters:
${staticCluster('user_v1', [v1.port])}${staticCluster('user_v2', [v2.port])}${staticCluster('silent', [silent.port])}`,
      { engine },
    );
    port = await strait.port('rpc');
  });

  afterAll(async () => {
    silent?.close();
    await strait?.stop();
    await v1?.close();
    await v2?.close();
  });

  it('routes by method to different clusters', async () => {
    expect(await callThrough(port, 'com.example.UserService', '1.0', 'hello', 1, 'ann')).toEqual([{ ok: true, value: 'v1 hello ann-0' }]);
    expect(await callThrough(port, 'com.example.UserService', '1.0', 'bye', 1, 'ann')).toEqual([{ ok: true, value: 'v2 bye ann-0' }]);
  });

  it('maps colliding request ids from two client processes back to the right caller', async () => {
    // Both processes number their calls 1..50; through one multiplexed upstream connection
    // every answer must still reach the caller that asked.
    const [a, b] = await Promise.all([
      callThrough(port, 'com.example.UserService', '1.0', 'hello', 50, 'alice'),
      callThrough(port, 'com.example.UserService', '1.0', 'hello', 50, 'bob'),
    ]);
    expect(a).toEqual(Array.from({ length: 50 }, (_, i) => ({ ok: true, value: `v1 hello alice-${i}` })));
    expect(b).toEqual(Array.from({ length: 50 }, (_, i) => ({ ok: true, value: `v1 hello bob-${i}` })));
    // One upstream connection to v1 carried both clients' calls.
    expect(await strait.stat('cluster.user_v1.upstream_cx_total')).toBe(1);
  });

  it('answers an unrouted call locally with a Bolt error, before the client times out', async () => {
    const t0 = Date.now();
    const [r] = await callThrough(port, 'com.example.Unknown', '1.0', 'hello', 1, 'x');
    expect(r!.ok).toBe(false);
    expect(Date.now() - t0).toBeLessThan(2500);
    expect(await strait.stat('rpc.rpc.local_response_no_route')).toBeGreaterThanOrEqual(1);
  });

  it('replies a timeout in protocol format when the route timeout passes', async () => {
    const [r] = await callThrough(port, 'com.example.UserService', '1.0', 'slow', 1, 'x');
    expect(r!.ok).toBe(false);
    expect(await strait.stat('rpc.rpc.local_response_timeout')).toBeGreaterThanOrEqual(1);
  });

  it("honours the frame's own timeout when the route sets none", async () => {
    // A raw SOFARPC request carrying timeout 300 ms, to a provider that never answers.
    const cmd = new RpcRequestCommand({ serverSignature: 'com.example.Silent:1.0', methodName: 'x', args: [], timeout: 300 }, { codecType: 'hessian2' });
    const frame = Buffer.from(boltV1.encode(cmd, { rpcType: 1, cmdCode: 1, id: 77, codecType: 'hessian2' }));
    const s = await connect(port);
    const t0 = Date.now();
    const got = new Promise<Buffer>((r) => s.once('data', r));
    s.write(frame);
    const reply = await got;
    const hdr = new Int32Array(H.SIZE);
    getCodec('bolt')!.decodeHeader(reply, 0, reply.length, 1 << 20, hdr);
    expect([hdr[H.KIND], hdr[H.ID_LO], hdr[H.STATUS]]).toEqual([FrameKind.RESPONSE, 77, BoltStatus.TIMEOUT]);
    expect(Date.now() - t0).toBeLessThan(2500);
    s.destroy();
  });

  it('closes a connection that sends an unknown frame type, with a counter', async () => {
    const before = (await strait.stat('rpc.rpc.request_decoding_error')) ?? 0;
    const bad = await connect(port);
    const ended = new Promise<void>((r) => {
      bad.on('end', () => r());
      bad.on('close', () => r());
    });
    bad.on('error', () => {});
    bad.write(Buffer.from([0x01, 0x07, 0x00, 0x01, 0x01, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
    await ended;
    expect(await strait.stat('rpc.rpc.request_decoding_error')).toBe(before + 1);
  });

  it('answers a Bolt heartbeat locally with the same id', async () => {
    const bolt = getCodec('bolt')!;
    const s = await connect(port);
    const got = new Promise<Buffer>((r) => s.once('data', r));
    s.write(bolt.heartbeatRequest(0, 4242));
    const reply = await got;
    const hdr = new Int32Array(H.SIZE);
    bolt.decodeHeader(reply, 0, reply.length, 1 << 20, hdr);
    expect(hdr[H.STATE]).toBe(1);
    expect(hdr[H.KIND]).toBe(FrameKind.HEARTBEAT_RESPONSE);
    expect(hdr[H.ID_LO]).toBe(4242);
    s.destroy();
    expect(await strait.stat('rpc.rpc.request_heartbeat')).toBeGreaterThanOrEqual(1);
  });

  it('closes only the connection that sends garbage, with a counter', async () => {
    const bad = await connect(port);
    // The proxy ends the connection (the test socket is half-open capable, so wait for the FIN).
    const closed = new Promise<void>((r) => {
      bad.on('end', () => r());
      bad.on('close', () => r());
    });
    bad.on('error', () => {});
    bad.write(Buffer.from([0x01, 0x01, 0x00, 0x01, 0x01, 0, 0, 0, 1, 1, 0, 0, 0x0b, 0xb8, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff]));
    await closed;
    expect(await strait.stat('rpc.rpc.request_decoding_error')).toBeGreaterThanOrEqual(1);
    // Everyone else keeps working.
    expect(await callThrough(port, 'com.example.UserService', '1.0', 'hello', 1, 'after')).toEqual([{ ok: true, value: 'v1 hello after-0' }]);
  });
});
