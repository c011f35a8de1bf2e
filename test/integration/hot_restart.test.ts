// Hot restart under load: a SOFARPC client calls through Strait at a steady rate while three new
// processes take over one after another. Listeners and the client's connection move between
// processes; the client must see no failed call and no reconnect, and counters must carry over.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import { Client } from 'undici';
import { createRequire } from 'node:module';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { native } from '../../src/native.js';
import { channelPath } from '../../src/upgrade/hot_restart.js';
import { deadPort } from '../helpers/net.js';
import { ADMIN, ENGINES, REPO, runCli, startStraitFile, staticCluster, tmpDir, type StraitProcess, rpcProxyListener, httpListener } from '../helpers/strait.js';

const require = createRequire(import.meta.url);
const { RpcServer } = require('sofa-rpc-node').server;
const { RpcClient } = require('sofa-rpc-node').client;
const { startDubboProvider } = require('../fixtures/rpc/dubbo_provider.cjs');
const quiet = { info() {}, warn() {}, debug() {}, error() {} };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function config(upstreamPort: number, dubboPort = 0, httpPort = 0): string {
  return `${ADMIN}static_resources:
  listeners:
${rpcProxyListener('rpc', `          protocol: BOLT
          route_config: [ { interface: "*", routes: [ { match: {}, route: { cluster: users } } ] } ]`)}
  - name: dubbo
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.dubbo_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.dubbo_proxy.v3.DubboProxy
          stat_prefix: dubbo
          route_config: [ { interface: "*", routes: [ { match: {}, route: { cluster: orders } } ] } ]
${httpListener('web', 'web')}
  clusters:
${staticCluster('users', [upstreamPort])}${staticCluster('orders', [dubboPort || upstreamPort])}${staticCluster('web', [httpPort || upstreamPort])}`;
}

describe.each(ENGINES)('hot restart on the %s engine', (engine) => {
  let server: any;
  let provider: any;
  let web: http.Server;
  let upstreamPort: number;
  const procs: StraitProcess[] = [];
  const baseId = 1000 + Math.floor(Math.random() * 100000);

  beforeAll(async () => {
    server = new RpcServer({ logger: quiet, port: await deadPort() });
    server.addService({ interfaceName: 'com.example.UserService', version: '1.0' }, { hello: async (n: string) => `hello ${n}` });
    await server.start();
    upstreamPort = server._servers[0].address().port;
    provider = await startDubboProvider({ interface: 'com.example.OrderService', version: '1.0.0', name: 'orders', methods: ['get'] });
    web = http.createServer((req, res) => res.end(`web ${req.url}`));
    await new Promise<void>((r) => web.listen(0, '127.0.0.1', () => r()));
  });

  afterAll(async () => {
    for (const p of procs) await p.stop();
    await server?.close();
    await provider?.close();
    web?.close();
  });

  it('moves listeners and live Bolt, Dubbo and HTTP keep-alive connections through three upgrades without a failed call', async () => {
    const cfg = config(upstreamPort, provider.port, (web.address() as net.AddressInfo).port);
    const start = (epoch: number) => startStraitFile('strait.yaml', cfg, { engine, args: ['--base-id', String(baseId), '--restart-epoch', String(epoch)], waitReady: epoch === 0 });
    let current = await start(0);
    procs.push(current);
    const port = await current.port('rpc');

    const client = new RpcClient({ logger: quiet });
    const consumer = client.createConsumer({ interfaceName: 'com.example.UserService', version: '1.0', serverHost: `127.0.0.1:${port}` });
    await consumer.ready();
    // A Dubbo client in its own process, calling at a steady rate until its stdin closes.
    const dubboPort = await current.port('dubbo');
    const dubbo = spawn(process.execPath, [path.join(REPO, 'test/fixtures/rpc/dubbo_steady.cjs'), String(dubboPort), 'com.example.OrderService', '1.0.0', 'get'], { stdio: ['pipe', 'pipe', 'inherit'] });
    let dubboOut = '';
    dubbo.stdout!.on('data', (d) => (dubboOut += d));
    const dubboDone = new Promise((r) => dubbo.on('exit', r));
    // An undici keep-alive client: one connection, requests at a steady rate.
    const webPort = await current.port('web');
    const httpClient = new Client(`http://127.0.0.1:${webPort}`, { pipelining: 1, keepAliveTimeout: 60_000 });
    let httpOk = 0;
    const httpFailures: string[] = [];
    let ok = 0;
    const failures: string[] = [];
    let running = true;
    const load = (async () => {
      let i = 0;
      while (running) {
        // A steady stream with a few calls in flight at any moment.
        const batch = [0, 1, 2].map(() => consumer.invoke('hello', [`c${i++}`], { responseTimeout: 3000 }));
        for (const r of await Promise.allSettled(batch)) {
          if (r.status === 'fulfilled' && String(r.value).startsWith('hello c')) ok++;
          else failures.push(String((r as PromiseRejectedResult).reason?.message ?? r));
        }
        await sleep(5);
      }
    })();
    const httpLoad = (async () => {
      let i = 0;
      while (running) {
        try {
          const r = await httpClient.request({ path: `/r${i++}`, method: 'GET' });
          const body = await r.body.text();
          if (r.statusCode === 200 && body.startsWith('web /r')) httpOk++;
          else httpFailures.push(`${r.statusCode} ${body}`);
        } catch (e) {
          httpFailures.push(String((e as Error).message));
        }
        await sleep(5);
      }
    })();

    for (let epoch = 1; epoch <= 3; epoch++) {
      await sleep(300);
      const before = ok;
      const next = await start(epoch);
      procs.push(next);
      // The previous process exits once it has handed everything over.
      expect(await current.wait()).toBe(0);
      await next.waitReady();
      current = next;
      expect(await current.port('rpc')).toBe(port);
      await sleep(200);
      expect(ok).toBeGreaterThan(before);
    }
    running = false;
    await load;
    await httpLoad;
    await httpClient.close();
    expect(httpFailures).toEqual([]);
    expect(httpOk).toBeGreaterThan(50);
    expect(await current.stat('listener.127.0.0.1_' + webPort + '.downstream_cx_total')).toBe(1);
    await client.close();
    dubbo.stdin!.end();
    await dubboDone;
    const d = JSON.parse(dubboOut) as { ok: number; failed: number; errors: string[] };
    expect(d.errors).toEqual([]);
    expect(d.failed).toBe(0);
    expect(d.ok).toBeGreaterThan(50);
    expect(await current.stat('listener.127.0.0.1_' + dubboPort + '.downstream_cx_total')).toBe(1);

    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(100);
    // One client connection, accepted once by epoch 0 and carried through every upgrade.
    expect(await current.stat('listener.127.0.0.1_' + port + '.downstream_cx_total')).toBe(1);
    // Counters continue across processes instead of resetting.
    expect(await current.stat('rpc.rpc.request')).toBeGreaterThanOrEqual(ok);
  }, 60_000);

  it('refuses a second upgrade while one is under way, and the running process keeps serving', async () => {
    const id = baseId + 1;
    const cfg = config(upstreamPort);
    const running = await startStraitFile('strait.yaml', cfg, { engine, args: ['--base-id', String(id)] });
    procs.push(running);
    // A stuck new process: connected and said hello, never became ready.
    const b = native();
    const stuck = b.upgrade.connect(channelPath(id, 0));
    expect(stuck).toBeGreaterThanOrEqual(0);
    b.upgrade.send(stuck, Buffer.from(JSON.stringify({ type: 'hello', epoch: 1, pid: process.pid })), []);
    const answer = b.upgrade.recv(stuck, 5000);
    expect(answer && 'fds' in answer && answer.fds.length).toBeGreaterThanOrEqual(2); // the listener and admin
    if (answer && 'fds' in answer) for (const fd of answer.fds) b.closeFd(fd);

    const dir = tmpDir();
    const file = path.join(dir, 'strait.yaml');
    fs.writeFileSync(file, cfg);
    const second = await runCli(['--config', file, '--base-id', String(id), '--restart-epoch', '1', '--log-level', 'error']);
    expect(second.code).toBe(1);
    expect(second.stderr).toContain('upgrade refused');

    // The stuck one goes away: the old process was never told to stop, so it still serves.
    b.closeFd(stuck);
    await sleep(200);
    expect((await running.get('/ready')).status).toBe(200);
    const client = new RpcClient({ logger: quiet });
    const consumer = client.createConsumer({ interfaceName: 'com.example.UserService', version: '1.0', serverHost: `127.0.0.1:${await running.port('rpc')}` });
    await consumer.ready();
    expect(await consumer.invoke('hello', ['still'], { responseTimeout: 3000 })).toBe('hello still');
    await client.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  it('hands over an idle process cleanly: the old one exits at once, without a channel error', async () => {
    const id = baseId + 2;
    const cfg = config(upstreamPort);
    const old = await startStraitFile('strait.yaml', cfg, { engine, args: ['--base-id', String(id), '--log-level', 'info'] });
    procs.push(old);
    const next = await startStraitFile('strait.yaml', cfg, { engine, args: ['--base-id', String(id), '--restart-epoch', '1'], waitReady: false });
    procs.push(next);
    // With no connection to move, the handover ends with the 'ready' message itself.
    expect(await old.wait()).toBe(0);
    expect(old.stderr).toContain('hot restart: handover done; exiting');
    expect(old.stderr).not.toContain('channel error');
    await next.waitReady();
  }, 30_000);
});
