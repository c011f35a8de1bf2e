import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { deadPort } from '../helpers/net.js';
import { ADMIN, REPO, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

const require = createRequire(import.meta.url);
const { RpcServer } = require('sofa-rpc-node').server;
const quiet = { info() {}, warn() {}, debug() {}, error() {} };

const FAST = `    health_checks:
    - timeout: 0.3s
      interval: 0.1s
      no_traffic_interval: 0.1s
      unhealthy_threshold: 2
      healthy_threshold: 2
`;

/** A gRPC server with grpc.health.v1.Health/Check answering what the test sets. */
async function grpcHealthServer(): Promise<{ port: number; serving: Map<string, number>; seen: string[]; close(): Promise<void> }> {
  const serving = new Map<string, number>();
  const seen: string[] = [];
  const server = new grpc.Server();
  const service = {
    Check: {
      path: '/grpc.health.v1.Health/Check',
      requestStream: false,
      responseStream: false,
      // HealthCheckRequest { string service = 1 }: tag, length, bytes.
      requestDeserialize: (b: Buffer) => (b.length > 2 ? b.subarray(2).toString() : ''),
      requestSerialize: (s: string) => Buffer.from(s),
      responseSerialize: (status: number) => Buffer.from([0x08, status]),
      responseDeserialize: (b: Buffer) => b[1]!,
    },
  };
  server.addService(service as unknown as grpc.ServiceDefinition, {
    Check: (call: grpc.ServerUnaryCall<string, number>, cb: grpc.sendUnaryData<number>) => {
      seen.push(`${call.request}@${call.getPath()}`);
      const s = serving.get(call.request);
      if (s === undefined) cb({ code: grpc.status.NOT_FOUND, details: 'unknown service' });
      else cb(null, s);
    },
  });
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  return { port, serving, seen, close: () => new Promise((r) => server.tryShutdown(() => r())) };
}

describe('active health checks: gRPC', () => {
  let g: Awaited<ReturnType<typeof grpcHealthServer>>;
  let p: StraitProcess;
  beforeAll(async () => {
    g = await grpcHealthServer();
    g.serving.set('users', 1);
    p = await startStrait(`${ADMIN}static_resources:
  clusters:
${staticCluster('g', [g.port], `${FAST}      grpc_health_check: { service_name: users }\n`)}`);
  });
  afterAll(async () => {
    await p?.stop();
    await g?.close();
  });

  it('passes on SERVING for the named service, fails at once on NOT_SERVING, and recovers', async () => {
    expect(await p.stat('cluster.g.health_check.healthy')).toBe(1);
    expect(g.seen[0]).toBe('users@/grpc.health.v1.Health/Check');
    g.serving.set('users', 2); // NOT_SERVING
    await p.waitStat('cluster.g.health_check.healthy', (v) => v === 0);
    expect(await p.stat('cluster.g.health_check.network_failure')).toBe(0);
    expect((await p.get('/clusters')).text).toContain(`g::127.0.0.1:${g.port}::health_flags::/failed_active_hc`);
    g.serving.set('users', 1);
    await p.waitStat('cluster.g.health_check.healthy', (v) => v === 1);
  });
});

async function sofaServer(): Promise<{ port: number; close(): Promise<void> }> {
  const server = new RpcServer({ logger: quiet, port: await deadPort() });
  server.addService({ interfaceName: 'com.example.UserService', version: '1.0' }, { async hello(n: string) { return n; } });
  await server.start();
  return { port: server._servers[0].address().port, close: () => server.close() };
}

/** A Dubbo provider in its own process, so the test can freeze it (SIGSTOP) like a hung JVM. */
async function dubboProcess(): Promise<{ proc: ChildProcess; port: number }> {
  const fixture = path.join(REPO, 'test/fixtures/rpc/dubbo_provider.cjs');
  const code = `require(${JSON.stringify(fixture)}).startDubboProvider({ interface: 'com.example.Echo', version: '1.0.0', methods: ['echo'] }).then((p) => console.log('PORT', p.port))`;
  const proc = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    proc.stdout!.on('data', (d) => {
      out += d;
      const m = out.match(/PORT (\d+)/);
      if (m) resolve(Number(m[1]));
    });
    proc.on('exit', (c) => reject(new Error(`provider exited with ${c}`)));
  });
  return { proc, port };
}

describe('active health checks: RPC heartbeats (strait.health_checkers.rpc_heartbeat)', () => {
  const rpcCheck = (protocol: string) =>
    `${FAST}      custom_health_check:\n        name: strait.health_checkers.rpc_heartbeat\n        typed_config: { "@type": type.googleapis.com/strait.health_checkers.v1.RpcHeartbeat, protocol: ${protocol} }\n`;

  it('Bolt: a SOFARPC provider answering heartbeats is healthy; a stopped one is not', async () => {
    const s = await sofaServer();
    const dead = await deadPort();
    const p = await startStrait(`${ADMIN}static_resources:
  clusters:
${staticCluster('bolt', [s.port, dead], rpcCheck('bolt'))}`);
    try {
      expect(await p.stat('cluster.bolt.health_check.healthy')).toBe(1);
      expect(await p.stat('cluster.bolt.health_check.success')).toBeGreaterThanOrEqual(1);
      const text = (await p.get('/clusters')).text;
      expect(text).toContain(`bolt::127.0.0.1:${s.port}::health_flags::healthy`);
      expect(text).toContain(`bolt::127.0.0.1:${dead}::health_flags::/failed_active_hc`);
      await s.close();
      await p.waitStat('cluster.bolt.health_check.healthy', (v) => v === 0);
    } finally {
      await p.stop();
    }
  });

  it('Dubbo: a provider process that hangs (SIGSTOP) fails on heartbeat timeouts and comes back on SIGCONT', async () => {
    const { proc, port } = await dubboProcess();
    const p = await startStrait(`${ADMIN}static_resources:
  clusters:
${staticCluster('dubbo', [port], rpcCheck('dubbo'))}`);
    try {
      expect(await p.stat('cluster.dubbo.health_check.healthy')).toBe(1);
      // The kernel still accepts connections for a stopped process: only the heartbeat tells.
      proc.kill('SIGSTOP');
      await p.waitStat('cluster.dubbo.health_check.healthy', (v) => v === 0);
      expect(await p.stat('cluster.dubbo.health_check.network_failure')).toBeGreaterThanOrEqual(2);
      proc.kill('SIGCONT');
      await p.waitStat('cluster.dubbo.health_check.healthy', (v) => v === 1);
    } finally {
      proc.kill('SIGKILL');
      await p.stop();
    }
  });

  it('refuses an RPC checker naming no codec, with the field path', async () => {
    const { runCli } = await import('../helpers/strait.js');
    const { tmpDir } = await import('../helpers/strait.js');
    const fs = await import('node:fs');
    const dir = tmpDir();
    const cfg = path.join(dir, 'bad.yaml');
    fs.writeFileSync(cfg, `static_resources:\n  clusters:\n${staticCluster('x', [1234], rpcCheck('nosuch'))}`);
    const r = await runCli(['--config', cfg, '--mode', 'validate']);
    fs.rmSync(dir, { recursive: true, force: true });
    expect(r.code).not.toBe(0);
    expect(r.stderr + r.stdout).toContain('static_resources.clusters[0].health_checks[0].custom_health_check.typed_config.protocol');
  });
});
