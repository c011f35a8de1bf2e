// The "one codec file" promise: the example codec (src/protocols/example/codec.ts) gets routing,
// multiplexing, local replies and protocol detection from rpc_proxy with no other change. The
// same AUTO listener also carries Bolt and Dubbo.
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exampleCodec, exampleFrame, ExampleStatus, ExampleType } from '../../src/protocols/example/codec.js';
import { FrameKind, H } from '../../src/protocols/types.js';
import { connect, deadPort } from '../helpers/net.js';
import { ADMIN, ENGINES, REPO, startStrait, staticCluster, type StraitProcess, rpcProxyListener } from '../helpers/strait.js';

const require = createRequire(import.meta.url);
const { RpcServer } = require('sofa-rpc-node').server;
const { startDubboProvider } = require(path.join(REPO, 'test/fixtures/rpc/dubbo_provider.cjs'));
const quiet = { info() {}, warn() {}, debug() {}, error() {} };

/** Reads whole example frames from a socket, handing each to `onFrame` with its header. */
function reader(s: net.Socket, onFrame: (f: Buffer, h: Int32Array) => void): void {
  let buf = Buffer.alloc(0);
  s.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      const h = new Int32Array(H.SIZE);
      exampleCodec.decodeHeader(buf, 0, buf.length, 1 << 20, h);
      if (h[H.STATE] !== 1) return;
      const n = h[H.FRAME_LEN]!;
      onFrame(buf.subarray(0, n), h);
      buf = buf.subarray(n);
    }
  });
}

/** An example-protocol provider answering `<name>:<method>:<body>`, out of order on purpose. */
async function exampleServer(name: string): Promise<{ port: number; close(): void }> {
  const server = net.createServer((s) => {
    s.on('error', () => {});
    reader(s, (f, h) => {
      if (h[H.KIND] === FrameKind.HEARTBEAT) return void s.write(exampleCodec.heartbeatResponse(f, 0));
      const method = f.toString('utf8', h[H.METHOD_OFF]!, h[H.METHOD_OFF]! + h[H.METHOD_LEN]!);
      const body = f.subarray(h[H.BODY_OFF]!).toString();
      const reply = exampleFrame(ExampleType.RESPONSE, h[H.ID_LO]!, 0, '', Buffer.from(`${name}:${method}:${body}`));
      setTimeout(() => s.write(reply), Number(body.split('-')[1] ?? 0) % 3);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, close: () => server.close() };
}

/** A client connection that sends requests with its own ids and resolves replies by id. */
async function exampleClient(port: number) {
  const s = await connect(port);
  const waiting = new Map<number, (r: { status: number; body: string }) => void>();
  reader(s, (f, h) => waiting.get(h[H.ID_LO]!)?.({ status: h[H.STATUS]!, body: f.subarray(h[H.BODY_OFF]!).toString() }));
  return {
    call(id: number, meta: string, body: string) {
      return new Promise<{ status: number; body: string }>((resolve) => {
        waiting.set(id, resolve);
        s.write(exampleFrame(ExampleType.REQUEST, id, 0, meta, Buffer.from(body)));
      });
    },
    close: () => s.destroy(),
  };
}

describe.each(ENGINES)('rpc_proxy with the example codec and AUTO detection on the %s engine', (engine) => {
  let a: Awaited<ReturnType<typeof exampleServer>>;
  let b: Awaited<ReturnType<typeof exampleServer>>;
  let sofa: any;
  let dubbo: any;
  let strait: StraitProcess;
  let port: number;

  beforeAll(async () => {
    a = await exampleServer('a');
    b = await exampleServer('b');
    sofa = new RpcServer({ logger: quiet, port: await deadPort() });
    sofa.addService({ interfaceName: 'com.example.Bolt', version: '1.0' }, { hello: async (n: string) => `bolt ${n}` });
    await sofa.start();
    dubbo = await startDubboProvider({ interface: 'com.example.Dubbo', version: '1.0.0', name: 'dubbo', methods: ['hello'] });
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${rpcProxyListener('rpc', `          protocol: AUTO
          route_config:
          - interface: com.example.Echo
            routes:
            - match: { headers: [ { name: tenant, string_match: { exact: blue } } ] }
              route: { cluster: b }
            - match: { method: { name: { exact: ping } } }
              route: { cluster: a }
          - interface: com.example.Bolt
            routes: [ { match: {}, route: { cluster: bolt } } ]
          - interface: com.example.Dubbo
            routes: [ { match: {}, route: { cluster: dubbo } } ]`)}
  clusters:
${staticCluster('a', [a.port])}${staticCluster('b', [b.port])}${staticCluster('bolt', [sofa._servers[0].address().port])}${staticCluster('dubbo', [dubbo.port])}`,
      { engine },
    );
    port = await strait.port('rpc');
  });

  afterAll(async () => {
    await strait?.stop();
    a?.close();
    b?.close();
    await sofa?.close();
    await dubbo?.close();
  });

  it('routes by method and by a metadata entry, mapping colliding ids of two clients back', async () => {
    const c1 = await exampleClient(port);
    const c2 = await exampleClient(port);
    const calls = [];
    for (let i = 1; i <= 20; i++) {
      calls.push(c1.call(i, 'service=com.example.Echo\nmethod=ping\n', `one-${i}`));
      calls.push(c2.call(i, 'service=com.example.Echo\nmethod=ping\ntenant=blue\n', `two-${i}`));
    }
    const got = await Promise.all(calls);
    for (let i = 1; i <= 20; i++) {
      expect(got[2 * (i - 1)]).toEqual({ status: 0, body: `a:ping:one-${i}` });
      expect(got[2 * (i - 1) + 1]).toEqual({ status: 0, body: `b:ping:two-${i}` });
    }
    c1.close();
    c2.close();
  });

  it('answers an unrouted call locally in the example format', async () => {
    const c = await exampleClient(port);
    const r = await c.call(5, 'service=com.example.Echo\nmethod=other\n', 'x');
    expect(r.status).toBe(ExampleStatus.no_route);
    expect(r.body).toContain('no route');
    c.close();
  });

  it('detects Bolt and Dubbo on the same listener', async () => {
    const run = (file: string, args: string[]) =>
      new Promise<unknown>((resolve, reject) =>
        execFile(process.execPath, [path.join(REPO, 'test/fixtures/rpc', file), ...args], { timeout: 20_000 }, (err, out, stderr) => (err ? reject(new Error(stderr)) : resolve(JSON.parse(out)))),
      );
    expect(await run('bolt_client.cjs', [String(port), 'com.example.Bolt', '1.0', 'hello', '2', 'n'])).toEqual([
      { ok: true, value: 'bolt n-0' },
      { ok: true, value: 'bolt n-1' },
    ]);
    expect(await run('dubbo_client.cjs', [String(port), 'com.example.Dubbo', '1.0.0', '-', 'hello', '1', 'd'])).toEqual([{ ok: true, value: 'dubbo:hello:d-0' }]);
  });

  it('closes a connection whose first bytes are no known protocol', async () => {
    const s = await connect(port);
    const ended = new Promise<void>((r) => {
      s.on('end', () => r());
      s.on('close', () => r());
    });
    s.on('error', () => {});
    s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await ended;
    expect(await strait.stat('rpc.rpc.request_decoding_error')).toBeGreaterThanOrEqual(1);
  });
});

/** A provider that answers after `delayMs` and records the bodies in the order they arrived. */
async function recordingServer(delayMs: number): Promise<{ port: number; seen: string[]; close(): void }> {
  const seen: string[] = [];
  const server = net.createServer((s) => {
    s.on('error', () => {});
    reader(s, (f, h) => {
      const body = f.subarray(h[H.BODY_OFF]!).toString();
      seen.push(body);
      const reply = exampleFrame(ExampleType.RESPONSE, h[H.ID_LO]!, 0, '', Buffer.from(`ok:${body}`));
      setTimeout(() => s.write(reply), delayMs);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, seen, close: () => server.close() };
}

describe('rpc_proxy rate_limit: priority queues', () => {
  let slow: Awaited<ReturnType<typeof recordingServer>>;
  let slower: Awaited<ReturnType<typeof recordingServer>>;
  let strait: StraitProcess;

  beforeAll(async () => {
    slow = await recordingServer(60);
    slower = await recordingServer(400);
    const limited = (name: string, cluster: string, wait: string) =>
      rpcProxyListener(
        name,
        `          codec: example
          rate_limit: { max_concurrent: 1, levels: 2, priority_key: prio, max_queue_per_level: 16, max_wait: ${wait} }
          route_config: [ { routes: [ { match: {}, route: { cluster: ${cluster} } } ] } ]`,
        name,
      );
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${limited('queued', 'slow', '5s')}${limited('impatient', 'slower', '0.15s')}  clusters:
${staticCluster('slow', [slow.port])}${staticCluster('slower', [slower.port])}`,
      { engine: ENGINES[0] },
    );
  });

  afterAll(async () => {
    await strait?.stop();
    slow?.close();
    slower?.close();
  });

  it('serves waiting high-priority calls before low-priority ones that came first', async () => {
    const c = await exampleClient(await strait.port('queued'));
    const first = c.call(1, 'service=s\nmethod=m\nprio=1\n', 'low-0');
    const calls = [first];
    for (let i = 1; i <= 4; i++) calls.push(c.call(1 + i, 'service=s\nmethod=m\nprio=1\n', `low-${i}`));
    for (let i = 1; i <= 4; i++) calls.push(c.call(10 + i, 'service=s\nmethod=m\nprio=0\n', `high-${i}`));
    const got = await Promise.all(calls);
    expect(got.every((r) => r.status === 0)).toBe(true);
    // One at a time (max_concurrent 1): the first low call was already in flight, then every
    // queued high-priority call, then the low ones in their order.
    expect(slow.seen).toEqual(['low-0', 'high-1', 'high-2', 'high-3', 'high-4', 'low-1', 'low-2', 'low-3', 'low-4']);
    expect(await strait.stat('rpc.queued.priority_ratelimit.granted_after_wait')).toBe(8);
    c.close();
  });

  it('answers calls that wait longer than max_wait locally, in protocol format', async () => {
    const c = await exampleClient(await strait.port('impatient'));
    const got = await Promise.all([1, 2, 3].map((i) => c.call(i, 'service=s\nmethod=m\n', `x-${i}`)));
    expect(got[0]).toEqual({ status: 0, body: 'ok:x-1' });
    for (const r of got.slice(1)) {
      expect(r.status).toBe(ExampleStatus.overflow);
      expect(r.body).toContain('rate limited');
    }
    expect(slower.seen).toEqual(['x-1']);
    expect(await strait.stat('rpc.impatient.request_rate_limited')).toBe(2);
    c.close();
  });
});
