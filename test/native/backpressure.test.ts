// 1 GiB through a native Pipe whose final reader stalls for a while: the proxy must stop reading
// at its high-water mark instead of buffering, and deliver every byte once the reader resumes.
//
// What is measured: the producer and the stalling sink run in a child process
// (fixtures/bulk-peer.mjs); this process runs only the proxy (native listener, Acceptor, Pipe).
// Its RSS growth is therefore the proxy's own (plus vitest's background noise); kernel socket
// buffers, which hold the in-flight bytes during the stall, are not part of any process's RSS.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { NATIVE_CHUNK_SIZE, PipeCloseReason } from '../../src/native.js';
import { b, MiB, sleep, startProxy } from './helpers.js';

const TOTAL = 1024 * MiB;
const HWM = 1 * MiB;
const STALL_AT = 256 * MiB;
const STALL_MS = 2500;

type Msg =
  | { type: 'listening'; port: number }
  | { type: 'stalled' | 'resuming'; received: number; producerQueued: number }
  | { type: 'done'; received: number; corrupt: boolean; activeMs: number }
  | { type: 'producer-closed' }
  | { type: 'error'; message: string };

let child: ChildProcess | undefined;
afterAll(() => {
  child?.kill('SIGKILL');
});

function nextMessage(c: ChildProcess, type: Msg['type']): Promise<Msg> {
  return new Promise((resolve, reject) => {
    const on = (m: Msg) => {
      if (m.type === 'error') reject(new Error(m.message));
      if (m.type !== type) return;
      c.off('message', on);
      resolve(m);
    };
    c.on('message', on);
    c.once('exit', (code) => reject(new Error(`bulk peer exited with ${code}`)));
  });
}

describe('Pipe backpressure', () => {
  it('1 GiB with a reader stalled mid-way: bounded buffering, every byte delivered', async () => {
    child = fork(fileURLToPath(new URL('./fixtures/bulk-peer.mjs', import.meta.url)), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const { port } = (await nextMessage(child, 'listening')) as { port: number };
    const proxy = startProxy({ host: '127.0.0.1' }, { kind: 'tcp', host: '127.0.0.1', port }, { highWaterMark: HWM });
    const s0 = b.stats();
    const rss0 = process.memoryUsage.rss();
    let rssMax = rss0;
    const sampler = setInterval(() => (rssMax = Math.max(rssMax, process.memoryUsage.rss())), 25);

    const stalled = nextMessage(child, 'stalled');
    const resuming = nextMessage(child, 'resuming');
    const done = nextMessage(child, 'done');
    child.send({ type: 'go', port: (proxy.endpoint as { port: number }).port, total: TOTAL, stallAt: STALL_AT, stallMs: STALL_MS });
    const run = await proxy.nextPipe();

    const atStall = (await stalled) as { producerQueued: number };
    // Let the kernel buffers between proxy and sink fill up, then watch the proxy sit still.
    await sleep(600);
    const a2bStart = run.pipe.bytesAtoB;
    let inUseMax = 0;
    let inUseMin = Infinity;
    for (let i = 0; i < 30; i++) {
      const u = b.stats().poolChunksInUse;
      inUseMax = Math.max(inUseMax, u);
      inUseMin = Math.min(inUseMin, u);
      await sleep(40);
    }
    const a2bEnd = run.pipe.bytesAtoB;
    const atResume = (await resuming) as { producerQueued: number };
    const fin = (await done) as { received: number; corrupt: boolean; activeMs: number };
    const closed = await run.closed;
    clearInterval(sampler);
    proxy.close();
    child.send({ type: 'exit' });
    const s1 = b.stats();

    // During the stall the pipe moved nothing and held (exactly) its high-water mark, no more.
    expect(a2bEnd).toBe(a2bStart);
    expect(inUseMax * NATIVE_CHUNK_SIZE).toBeLessThanOrEqual(HWM + NATIVE_CHUNK_SIZE);
    expect(inUseMin * NATIVE_CHUNK_SIZE).toBeGreaterThanOrEqual(HWM); // the stall reached the proxy
    // ...and the producer was held back too (TCP flow control through the proxy), far from done.
    expect(atResume.producerQueued - atStall.producerQueued).toBeLessThan(64 * MiB);
    expect(atResume.producerQueued).toBeLessThan(TOTAL);
    // After the stall: every byte, in order, and a clean end.
    expect(fin).toMatchObject({ received: TOTAL, corrupt: false });
    expect(closed).toEqual({ reason: PipeCloseReason.DONE, a2b: TOTAL, b2a: 0 });
    expect(s1.poolChunksInUse).toBe(0);
    const growthMiB = (rssMax - rss0) / MiB;
    expect(growthMiB).toBeLessThan(150);

    const reads = s1.readCalls - s0.readCalls;
    const writes = s1.writevCalls - s0.writevCalls;
    console.log(
      `[backpressure] 1 GiB in ${fin.activeMs.toFixed(0)} ms excluding the stall (${((TOTAL / MiB / fin.activeMs) * 1000).toFixed(0)} MiB/s); ` +
        `proxy RSS growth ${growthMiB.toFixed(1)} MiB; ${reads} reads, ${writes} writes (${(TOTAL / writes / 1024).toFixed(0)} KiB/write); ` +
        `pool ${s1.poolChunks} chunks`,
    );
  });
});
