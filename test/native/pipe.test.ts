// The L4 splice: node net client -> native listener/Acceptor -> native Pipe -> node net upstream.
import crypto from 'node:crypto';
import fs from 'node:fs';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { afterEach, describe, expect, it } from 'vitest';
import { NATIVE_CHUNK_SIZE, PipeCloseReason } from '../../src/native.js';
import { b, closeOutcome, connectClient, digestUntilEnd, hasIPv6, KiB, MiB, nodeServer, sha256, sleep, startProxy } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'strait-pipe-'));
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  // Every pipe of the test has ended and handed its chunks back.
  expect(b.stats().pipesActive).toBe(0);
  expect(b.stats().poolChunksInUse).toBe(0);
});

/** upstream server + native proxy in front of it, torn down after the test. */
async function setup(
  kind: 'IPv4' | 'IPv6' | 'unix',
  onUpstream: (s: net.Socket) => void,
  opts: { idleTimeoutMs?: number; highWaterMark?: number } = {},
): Promise<ReturnType<typeof startProxy>> {
  const at = (tag: string) => (kind === 'unix' ? { path: path.join(tmp, `${tag}-${crypto.randomUUID().slice(0, 8)}.sock`) } : { host: kind === 'IPv4' ? '127.0.0.1' : '::1' });
  const up = await nodeServer(at('up'), onUpstream);
  const proxy = startProxy(at('proxy'), up.endpoint, opts);
  cleanups.push(() => up.close(), () => proxy.close());
  return proxy;
}

describe('Pipe: byte-exact forwarding', () => {
  const cases: [kind: 'IPv4' | 'IPv6' | 'unix', size: number][] = [
    ['IPv4', 64 * MiB],
    ['IPv6', 8 * MiB],
    ['unix', 8 * MiB],
  ];
  for (const [kind, size] of cases) {
    it.skipIf(kind === 'IPv6' && !hasIPv6)(`${kind}: ${size / MiB} MiB of random bytes each way at once, hashes equal`, async () => {
      const up2down = crypto.randomBytes(size);
      const down2up = crypto.randomBytes(size);
      let upstreamGot!: Promise<{ sha: string; bytes: number }>;
      const proxy = await setup(kind, (s) => {
        upstreamGot = digestUntilEnd(s);
        s.end(up2down); // upstream sends and half-closes while the client is still sending
      });
      const r0 = b.stats();
      const c = await connectClient(proxy.endpoint);
      const clientGot = digestUntilEnd(c);
      c.end(down2up);
      const run = await proxy.nextPipe();
      const [down, up, closed] = await Promise.all([clientGot, upstreamGot, run.closed]);
      c.destroy();
      expect(down).toEqual({ sha: sha256(up2down), bytes: size });
      expect(up).toEqual({ sha: sha256(down2up), bytes: size });
      expect(closed).toEqual({ reason: PipeCloseReason.DONE, a2b: size, b2a: size });
      expect(run.pipe.bytesAtoB).toBe(size);
      expect(run.pipe.bytesBtoA).toBe(size);
      const r1 = b.stats();
      // Batching works: far fewer syscalls than 64 KiB pieces would need one by one.
      expect(r1.writevCalls - r0.writevCalls).toBeGreaterThan(0);
      expect(r1.writevCalls - r0.writevCalls).toBeLessThan((2 * size) / NATIVE_CHUNK_SIZE);
    });
  }

  it('an idle pipe between messages holds no pooled buffer', async () => {
    const proxy = await setup('IPv4', (s) => s.pipe(s));
    const c = await connectClient(proxy.endpoint);
    const run = await proxy.nextPipe();
    for (const n of [1, 1000, 3 * NATIVE_CHUNK_SIZE + 17]) {
      const msg = crypto.randomBytes(n);
      let got = Buffer.alloc(0);
      await new Promise<void>((r) => {
        const on = (d: Buffer) => {
          got = Buffer.concat([got, d]);
          if (got.length === n) {
            c.off('data', on);
            r();
          }
        };
        c.on('data', on);
        c.write(msg);
      });
      expect(got.equals(msg)).toBe(true);
      expect(b.stats().poolChunksInUse).toBe(0);
    }
    expect(b.stats().poolChunks).toBeGreaterThan(0); // chunks were used, and are back in the pool
    c.end();
    expect((await run.closed).reason).toBe(PipeCloseReason.DONE);
  });
});

describe('Pipe: half-close', () => {
  it('client ends first; upstream answers after seeing EOF, then ends', async () => {
    const request = crypto.randomBytes(300 * KiB);
    const response = crypto.randomBytes(700 * KiB);
    let upstreamSaw = '';
    const proxy = await setup('IPv4', (s) => {
      void digestUntilEnd(s).then(async (got) => {
        upstreamSaw = got.sha;
        await sleep(50); // B -> A stays open after A's EOF
        s.write(response.subarray(0, 1000));
        await sleep(20);
        s.end(response.subarray(1000));
      });
    });
    const c = await connectClient(proxy.endpoint);
    const got = digestUntilEnd(c);
    c.end(request);
    const run = await proxy.nextPipe();
    expect(await got).toEqual({ sha: sha256(response), bytes: response.length });
    expect(upstreamSaw).toBe(sha256(request));
    expect(await run.closed).toEqual({ reason: PipeCloseReason.DONE, a2b: request.length, b2a: response.length });
    c.destroy();
  });

  it('upstream ends first; the client keeps sending, then ends', async () => {
    const greeting = crypto.randomBytes(200 * KiB);
    const upload = crypto.randomBytes(2 * MiB);
    let upstreamGot!: Promise<{ sha: string; bytes: number }>;
    const proxy = await setup('IPv4', (s) => {
      upstreamGot = digestUntilEnd(s);
      s.end(greeting);
    });
    const c = await connectClient(proxy.endpoint);
    const got = digestUntilEnd(c);
    expect(await got).toEqual({ sha: sha256(greeting), bytes: greeting.length }); // client saw EOF
    await sleep(30);
    c.write(upload.subarray(0, MiB));
    await sleep(30);
    c.end(upload.subarray(MiB));
    const run = await proxy.nextPipe();
    expect(await upstreamGot).toEqual({ sha: sha256(upload), bytes: upload.length });
    expect(await run.closed).toEqual({ reason: PipeCloseReason.DONE, a2b: upload.length, b2a: greeting.length });
    c.destroy();
  });
});

describe('Pipe: resets and close()', () => {
  it('an upstream reset closes the pipe with RESET_B and resets the client', async () => {
    const proxy = await setup('IPv4', (s) => s.once('data', () => s.resetAndDestroy()));
    const c = await connectClient(proxy.endpoint);
    const outcome = closeOutcome(c);
    c.write('x');
    const run = await proxy.nextPipe();
    expect((await run.closed).reason).toBe(PipeCloseReason.RESET_B);
    expect(await outcome).toBe('ECONNRESET');
  });

  it('a client reset closes the pipe with RESET_A and resets the upstream', async () => {
    let upOutcome!: Promise<string>;
    const proxy = await setup('IPv4', (s) => {
      upOutcome = closeOutcome(s);
      s.write('hello');
    });
    const c = await connectClient(proxy.endpoint);
    await new Promise((r) => c.once('data', r));
    c.resetAndDestroy();
    const run = await proxy.nextPipe();
    expect(await run.closed).toMatchObject({ reason: PipeCloseReason.RESET_A, b2a: 5 });
    expect(await upOutcome).toBe('ECONNRESET');
  });

  it('close() is synchronous, abortive, idempotent and reports LOCAL once', async () => {
    let upOutcome!: Promise<string>;
    const proxy = await setup('IPv4', (s) => (upOutcome = closeOutcome(s)));
    const c = await connectClient(proxy.endpoint);
    const outcome = closeOutcome(c);
    const run = await proxy.nextPipe();
    const seen: number[] = [];
    void run.closed.then((r) => seen.push(r.reason));
    const active = b.stats().pipesActive;
    run.pipe.close();
    expect(b.stats().pipesActive).toBe(active - 1); // done before close() returned
    run.pipe.close();
    await sleep(20);
    expect(seen).toEqual([PipeCloseReason.LOCAL]);
    expect(await outcome).toBe('ECONNRESET');
    expect(await upOutcome).toBe('ECONNRESET');
  });

  it('an exception thrown by onClose inside close() reaches close()\'s caller', async () => {
    const peer = await nodeServer({ host: '127.0.0.1' }, () => {});
    cleanups.push(() => peer.close());
    const lfd = b.listenTcp('127.0.0.1', 0, 4, false);
    const pair = await new Promise<[number, number]>((resolve) => {
      const acc = new b.Acceptor(lfd, (fd) => {
        acc.close();
        resolve([fd, -1]);
      }, () => {});
      b.connect('127.0.0.1', b.localAddress(lfd).port, 0, () => {});
    });
    const ep = peer.endpoint as { host: string; port: number };
    const ufd = await new Promise<number>((r) => b.connect(ep.host, ep.port, 0, (_s, fd) => r(fd)));
    const p = new b.Pipe(pair[0], ufd, { idleTimeoutMs: 0, highWaterMark: MiB }, () => {
      throw new Error('from onClose');
    });
    expect(() => p.close()).toThrow('from onClose');
    expect(() => p.close()).not.toThrow(); // and it stays closed
  });
});

describe('Pipe: idle timeout', () => {
  it('fires when no byte moves', async () => {
    const proxy = await setup('IPv4', () => {}, { idleTimeoutMs: 150 });
    const t0 = performance.now();
    const c = await connectClient(proxy.endpoint);
    const outcome = closeOutcome(c);
    const run = await proxy.nextPipe();
    expect((await run.closed).reason).toBe(PipeCloseReason.IDLE_TIMEOUT);
    const ms = performance.now() - t0;
    expect(ms).toBeGreaterThanOrEqual(140);
    expect(ms).toBeLessThan(1000);
    expect(await outcome).toBe('closed'); // a FIN, not a reset: nothing was in flight
  });

  it('traffic either way defers it; it fires one timeout after the last byte', async () => {
    let upSock!: net.Socket;
    const proxy = await setup('IPv4', (s) => {
      upSock = s;
      s.resume();
    }, { idleTimeoutMs: 150 });
    const c = await connectClient(proxy.endpoint);
    c.resume();
    const run = await proxy.nextPipe();
    let closedAt = 0;
    void run.closed.then(() => (closedAt = performance.now()));
    let last = 0;
    for (let i = 0; i < 10; i++) {
      // alternate directions: either counts as activity
      (i % 2 ? upSock : c).write('tick');
      last = performance.now();
      await sleep(60);
      expect(closedAt).toBe(0);
    }
    const r = await run.closed;
    expect(r.reason).toBe(PipeCloseReason.IDLE_TIMEOUT);
    expect(r.a2b + r.b2a).toBe(40);
    expect(closedAt - last).toBeGreaterThanOrEqual(140);
    expect(closedAt - last).toBeLessThan(600);
  });
});

describe('Pipe: lifetime', () => {
  it('keeps running when JavaScript drops the object and the GC runs', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const payload = crypto.randomBytes(2 * MiB);
    const proxy = await setup('IPv4', (s) => {
      void digestUntilEnd(s).then(() => s.end());
    });
    const c = await connectClient(proxy.endpoint);
    // Keep only the closed promise; the NativePipe object becomes garbage.
    const { closed } = await proxy.nextPipe();
    for (let i = 0; i < 5; i++) {
      gc();
      await sleep(10);
    }
    const ends = digestUntilEnd(c);
    c.end(payload);
    await ends;
    expect(await closed).toEqual({ reason: PipeCloseReason.DONE, a2b: payload.length, b2a: 0 });
    gc(); // and a finished, unreferenced pipe may now be collected without harm
  }, 15_000);

  it('owns its fds: a failed construction closes them', async () => {
    const lfd = b.listenTcp('127.0.0.1', 0, 4, false);
    const fd = await new Promise<number>((r) => b.connect('127.0.0.1', b.localAddress(lfd).port, 0, (_s, f) => r(f)));
    // lfd is a listening socket that the Acceptor below polls: uv_poll_init(EEXIST) fails.
    const acc = new b.Acceptor(lfd, () => {}, () => {});
    expect(() => new b.Pipe(fd, lfd, { idleTimeoutMs: 0, highWaterMark: MiB }, () => {})).toThrow(/uv_poll_init: EEXIST/);
    expect(() => b.localAddress(fd)).toThrow(/EBADF/);
    acc.close();
  });
});
