// The gRPC unary workload's pieces, against each other with no proxy in between: the
// @grpc/grpc-js upstream (bench/tools/grpc-server.js), the preflight call, its call counter, and
// the length-prefixed request h2load posts. Nothing is timed.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error plain ESM JavaScript without type declarations
import { GRPC_PATH, grpcFrame, grpcMessages, grpcUnaryCall } from '../../bench/lib/grpc.js';
// @ts-expect-error plain ESM JavaScript without type declarations
import { findTool } from '../../bench/lib/tools.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const { request, reply } = grpcMessages(64) as { request: Buffer; reply: Buffer };
let server: ChildProcess;
let port = 0;
let out = '';

async function counter(): Promise<{ ok: number; bad: number }> {
  const before = out.length;
  server.stdin!.write('count\n');
  for (let i = 0; i < 500; i++) {
    const m = out.slice(before).match(/calls ok=(\d+) bad=(\d+)/);
    if (m) return { ok: Number(m[1]), bad: Number(m[2]) };
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('no counter from grpc-server.js');
}

beforeAll(async () => {
  server = spawn(process.execPath, [path.join(REPO, 'bench/tools/grpc-server.js'), request.toString('hex'), reply.toString('hex')], { stdio: ['pipe', 'pipe', 'inherit'] });
  server.stdout!.setEncoding('utf8');
  server.stdout!.on('data', (d: string) => (out += d));
  for (let i = 0; i < 1000 && !port; i++) {
    const m = out.match(/^port (\d+)$/m);
    if (m) port = Number(m[1]);
    else await new Promise((r) => setTimeout(r, 10));
  }
  expect(port).toBeGreaterThan(0);
});
afterAll(() => {
  server?.stdin?.end();
  server?.kill();
});

describe('bench gRPC unary tools', () => {
  it('messages are 64-byte protobuf strings; the frame carries the 5-byte gRPC prefix', () => {
    expect(request.length).toBe(64);
    expect(reply.length).toBe(64);
    expect(request[0]).toBe(0x0a);
    expect(request[1]).toBe(62);
    expect(request.equals(reply)).toBe(false);
    const f = grpcFrame(request) as Buffer;
    expect(f.length).toBe(69);
    expect([...f.subarray(0, 5)]).toEqual([0, 0, 0, 0, 64]);
  });

  it('the preflight call gets the exact reply; a wrong request is rejected and counted', async () => {
    const c0 = await counter();
    expect((reply as Buffer).equals(await grpcUnaryCall(port, request))).toBe(true);
    await expect(grpcUnaryCall(port, Buffer.from('nope'))).rejects.toThrow(/INVALID_ARGUMENT/);
    const c1 = await counter();
    expect(c1).toEqual({ ok: c0.ok + 1, bad: c0.bad + 1 });
  });

  it.skipIf(!findTool('h2load').ok)('h2load posting the frame gets 2xx for every call, each answered OK by the server', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strait-grpc-'));
    try {
      const body = path.join(dir, 'request.bin');
      fs.writeFileSync(body, grpcFrame(request));
      const c0 = await counter();
      const r = spawnSync(findTool('h2load').path, ['-n200', '-c2', '-m4', '-d', body, '-H', 'content-type: application/grpc', '-H', 'te: trailers', `http://127.0.0.1:${port}${GRPC_PATH}`], {
        encoding: 'utf8',
        timeout: 30_000,
      });
      expect(r.stdout).toMatch(/requests: 200 total, 200 started, 200 done, 200 succeeded, 0 failed/);
      expect(r.stdout).toMatch(/status codes: 200 2xx, 0 3xx, 0 4xx, 0 5xx/);
      const c1 = await counter();
      expect(c1).toEqual({ ok: c0.ok + 200, bad: c0.bad });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
