// The Dubbo peers the rpc_proxy tests use, proven against each other with no proxy between:
// dubbo_client.cjs (Apache dubbo-js in its own process) and dubbo_provider.cjs (hessian.js).
// If these disagree, a proxy test failing says nothing about the proxy.
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const require = createRequire(import.meta.url);
const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/rpc');
const { startDubboProvider } = require(path.join(FIXTURES, 'dubbo_provider.cjs'));

type Provider = {
  port: number;
  requests: { id: number; group: string; method: string; args: unknown[]; attachments: Record<string, string>; dubboVersion: string; paramTypes: string }[];
  heartbeats: { received: number; sent: number; acked: number };
  connections: number;
  close(): Promise<void>;
};
type Result = { ok: true; value: unknown } | { ok: false; error: string; name?: string };

const IFACE = 'com.example.UserService';

function dubboClient(port: number, iface: string, version: string, group: string, method: string, count: number, arg: string): Promise<Result[]> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [path.join(FIXTURES, 'dubbo_client.cjs'), String(port), iface, version, group || '-', method, String(count), arg], { timeout: 20_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`dubbo_client failed: ${err.message}\n${stderr}`));
      else resolve(JSON.parse(stdout));
    });
  });
}

/** Reads whole Dubbo frames from a raw socket. */
function frameReader(s: net.Socket) {
  let buf = Buffer.alloc(0);
  const frames: Buffer[] = [];
  const waiters: (() => void)[] = [];
  s.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 16 && buf.length >= 16 + buf.readInt32BE(12)) {
      const n = 16 + buf.readInt32BE(12);
      frames.push(buf.subarray(0, n));
      buf = buf.subarray(n);
    }
    for (const w of waiters.splice(0)) w();
  });
  return async function next(): Promise<Buffer> {
    while (!frames.length) await new Promise<void>((r) => waiters.push(r));
    return frames.shift()!;
  };
}

function heartbeatFrame(flags: number, status: number, id: bigint): Buffer {
  const f = Buffer.alloc(17);
  f.writeUInt16BE(0xdabb, 0);
  f[2] = flags;
  f[3] = status;
  f.writeBigInt64BE(id, 4);
  f.writeInt32BE(1, 12);
  f[16] = 0x4e; // hessian null
  return f;
}

describe('Dubbo test peers (apache-dubbo-js client <-> hessian.js provider), direct', () => {
  let provider: Provider;
  let reversed: Provider;

  beforeAll(async () => {
    provider = await startDubboProvider({ interface: IFACE, version: '1.0.0', group: 'g1', name: 'p1', methods: ['hello', 'bye'] });
    // Holds every call until `n` have arrived, then answers them in reverse arrival order.
    const held: (() => void)[] = [];
    reversed = await startDubboProvider({
      interface: IFACE,
      version: '1.0.0',
      name: 'rev',
      methods: {
        hello: (args: string[]) =>
          new Promise((resolve) => {
            held.push(() => resolve(`rev:hello:${args[0]}`));
            if (held.length === 8) for (const f of held.splice(0).reverse()) f();
          }),
      },
    });
  });

  afterAll(async () => {
    await provider?.close();
    await reversed?.close();
  });

  it('concurrent calls each get their own answer; ids, group and version travel as Dubbo puts them', async () => {
    const before = provider.requests.length;
    const res = await dubboClient(provider.port, IFACE, '1.0.0', 'g1', 'hello', 20, 'a');
    expect(res).toEqual(Array.from({ length: 20 }, (_, i) => ({ ok: true, value: `p1:hello:a-${i}` })));
    const reqs = provider.requests.slice(before);
    expect(reqs.map((r) => r.id).sort((x, y) => x - y)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    for (const r of reqs) {
      expect(r.method).toBe('hello');
      expect(r.dubboVersion).toBe('2.0.2');
      expect(r.paramTypes).toBe('Ljava/lang/String;');
      // The group exists only in the attachments, after the arguments.
      expect(r.group).toBe('g1');
      expect(r.attachments).toMatchObject({ group: 'g1', path: IFACE, interface: IFACE, version: '1.0.0' });
    }
  });

  it('responses that leave out of order still reach the right call', async () => {
    const res = await dubboClient(reversed.port, IFACE, '1.0.0', '', 'hello', 8, 'r');
    expect(res).toEqual(Array.from({ length: 8 }, (_, i) => ({ ok: true, value: `rev:hello:r-${i}` })));
  });

  it('two client processes number their calls alike (ids collide across connections)', async () => {
    const before = provider.requests.length;
    const [a, b] = await Promise.all([
      dubboClient(provider.port, IFACE, '1.0.0', 'g1', 'hello', 5, 'x'),
      dubboClient(provider.port, IFACE, '1.0.0', 'g1', 'bye', 5, 'y'),
    ]);
    expect(a.map((r) => r.ok && r.value)).toEqual([0, 1, 2, 3, 4].map((i) => `p1:hello:x-${i}`));
    expect(b.map((r) => r.ok && r.value)).toEqual([0, 1, 2, 3, 4].map((i) => `p1:bye:y-${i}`));
    const ids = provider.requests.slice(before).map((r) => r.id);
    expect(ids.filter((id) => id === 1)).toHaveLength(2);
  });

  it('a call to another group or version, or an unknown method, fails with Dubbo errors', async () => {
    const [wrongGroup, wrongVersion, noMethod] = await Promise.all([
      dubboClient(provider.port, IFACE, '1.0.0', 'g2', 'hello', 1, 'z'),
      dubboClient(provider.port, IFACE, '2.0.0', 'g1', 'hello', 1, 'z'),
      dubboClient(provider.port, IFACE, '1.0.0', 'g1', 'nope', 1, 'z'),
    ]);
    expect(wrongGroup[0]).toMatchObject({ ok: false });
    expect((wrongGroup[0] as { error: string }).error).toContain(`Not found exported service: g2/${IFACE}:1.0.0`);
    expect((wrongVersion[0] as { error: string }).error).toContain(`Not found exported service: g1/${IFACE}:2.0.0`);
    expect(noMethod[0]).toMatchObject({ ok: false });
    expect((noMethod[0] as { error: string }).error).toContain('No such method nope');
  });

  it('answers a heartbeat event with the same id', async () => {
    const s = net.connect(provider.port, '127.0.0.1');
    const next = frameReader(s);
    // Request, two-way, event, hessian2 — what Java and dubbo-js clients send on idle links.
    s.write(heartbeatFrame(0xe2, 0, 7n));
    const f = await next();
    s.destroy();
    expect(f[2]).toBe(0x22); // response + event + hessian2
    expect(f[3]).toBe(20);
    expect(f.readBigInt64BE(4)).toBe(7n);
    expect(provider.heartbeats.received).toBeGreaterThanOrEqual(1);
  });

  it('sends its own heartbeats on an idle connection (frames that match no request)', async () => {
    const p: Provider = await startDubboProvider({ interface: IFACE, version: '1.0.0', name: 'hb', heartbeatIntervalMs: 20 });
    try {
      const s = net.connect(p.port, '127.0.0.1');
      const next = frameReader(s);
      const f = await next();
      expect(f[2]).toBe(0xe2);
      expect(f[16]).toBe(0x4e);
      s.write(heartbeatFrame(0x22, 20, f.readBigInt64BE(4)));
      while (p.heartbeats.acked < 1) await new Promise((r) => setTimeout(r, 10));
      s.destroy();
      expect(p.heartbeats.sent).toBeGreaterThanOrEqual(1);
      // A client that ignores provider heartbeats (dubbo-js does) still gets its answers.
      expect(await dubboClient(p.port, IFACE, '1.0.0', '', 'hello', 3, 'h')).toEqual([0, 1, 2].map((i) => ({ ok: true, value: `hb:hello:h-${i}` })));
    } finally {
      await p.close();
    }
  });
});
