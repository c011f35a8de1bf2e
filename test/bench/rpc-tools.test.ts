// The bench's RPC tools against real peers, no proxy: rpcload and rpc-echo-server (C, compiled
// as the bench compiles them) and the pre-encoded frames. rpcload must speak to real providers
// (sofa-rpc-node's RpcServer, the hessian.js Dubbo provider) without a single error, and must
// flag a response it did not expect. Nothing here asserts a rate or a timing.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error plain ESM JavaScript without type declarations
import { rpcFrames, rpcPayload, rpcPreflight, RPC_SERVICE } from '../../bench/lib/rpc.js';
// @ts-expect-error plain ESM JavaScript without type declarations
import { cTool } from '../../bench/lib/tools.js';
import { deadPort } from '../helpers/net.js';

const require = createRequire(import.meta.url);
const { RpcServer } = require('sofa-rpc-node').server;
const { startDubboProvider } = require('../fixtures/rpc/dubbo_provider.cjs');
const run = promisify(execFile);
const quiet = { info() {}, warn() {}, debug() {}, error() {} };

type Load = { requests: number; sent: number; error_total: number; errors: Record<string, number>; p99_us: number };

async function rpcload(protocol: string, port: number, size: number, { respLen, seconds = 0.3 }: { respLen?: number; seconds?: number } = {}): Promise<Load> {
  const f = rpcFrames(protocol, size);
  const args = [protocol, String(port), '4', '8', String(seconds), f.request.toString('hex'), String(respLen ?? f.response.length)];
  const { stdout } = await run(cTool('rpcload').path, args, { timeout: 30_000 });
  return JSON.parse(stdout);
}

describe('bench RPC tools', () => {
  let echo: ChildProcess;
  let echoPort: number;

  beforeAll(async () => {
    for (const t of ['rpcload', 'rpc-echo-server']) expect(cTool(t).ok, cTool(t).reason).toBe(true);
    echo = spawn(cTool('rpc-echo-server').path, [rpcFrames('bolt', 64).response.toString('hex'), rpcFrames('dubbo', 64).response.toString('hex')], { stdio: ['ignore', 'pipe', 'inherit'] });
    echoPort = await new Promise<number>((resolve, reject) => {
      let out = '';
      echo.stdout!.on('data', (d) => {
        out += d;
        const m = out.match(/^port (\d+)$/m);
        if (m) resolve(Number(m[1]));
      });
      echo.once('exit', (code) => reject(new Error(`rpc-echo-server exited ${code}`)));
    });
  });

  afterAll(() => {
    echo?.kill();
  });

  it.each(['bolt', 'dubbo'])('%s: the echo server answers calls the client library decodes, on colliding ids', async (protocol) => {
    await expect(rpcPreflight(echoPort, protocol, 64, { conns: 3, ids: [1, 2, 3, 4] })).resolves.toMatchObject({ responseBytes: rpcFrames(protocol, 64).response.length });
  });

  it.each(['bolt', 'dubbo'])('%s: rpcload through the echo server: every call answered once, no errors', async (protocol) => {
    const r = await rpcload(protocol, echoPort, 64);
    expect(r.errors).toEqual({ connect: 0, closed: 0, bad_frame: 0, bad_status: 0, bad_length: 0, unknown_id: 0, lost: 0 });
    expect(r.requests).toBeGreaterThan(0);
    expect(r.sent).toBeGreaterThanOrEqual(r.requests);
  });

  it('rpcload flags responses of the wrong size', async () => {
    const r = await rpcload('dubbo', echoPort, 64, { respLen: rpcFrames('dubbo', 64).response.length + 1 });
    expect(r.errors.bad_length).toBeGreaterThan(0);
    expect(r.error_total).toBeGreaterThan(0);
  });

  it('rpcload flags a peer that is not listening', async () => {
    const r = await rpcload('bolt', await deadPort(), 64, { seconds: 0.1 });
    expect(r.errors.connect).toBe(4);
  });

  it('Dubbo: rpcload against the hessian.js provider, which answers byte for byte like the echo server', async () => {
    const provider = await startDubboProvider({ interface: RPC_SERVICE, version: '1.0.0', name: 'bench', methods: { echo: (args: string[]) => args[0] } });
    try {
      const r = await rpcload('dubbo', provider.port, 1024);
      expect(r.error_total).toBe(0);
      expect(r.requests).toBeGreaterThan(0);
      const first = provider.requests[0];
      expect(first).toMatchObject({ method: 'echo', path: RPC_SERVICE, version: '1.0.0', args: [rpcPayload(1024)], dubboVersion: '2.0.2' });
      // Ids are numbered from 1 on each of rpcload's 4 connections.
      expect(provider.requests.filter((q: { id: number }) => q.id === 1)).toHaveLength(4);
    } finally {
      await provider.close();
    }
  });

  it("Bolt: rpcload against sofa-rpc-node's RpcServer, which answers byte for byte like the echo server", async () => {
    const server = new RpcServer({ logger: quiet, port: await deadPort() });
    const seen: string[] = [];
    server.addService({ interfaceName: RPC_SERVICE, version: '1.0.0' }, {
      async echo(s: string) {
        seen.push(s);
        return s;
      },
    });
    await server.start();
    try {
      const r = await rpcload('bolt', server._servers[0].address().port, 64);
      expect(r.error_total).toBe(0);
      expect(r.requests).toBeGreaterThan(0);
      expect(seen[0]).toBe(rpcPayload(64));
    } finally {
      await server.close();
    }
  });
});
