// The per-batch clock (src/protocols/http1/clock.ts): fixed while a batch is handled, the live
// monotonic clock outside one, and never stuck at an old batch's reading afterwards.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { enterBatch, leaveBatch, now } from '../../../src/protocols/http1/clock.js';

describe('HTTP/1 batch clock', () => {
  it('reads one value for a whole batch and the live clock after it', async () => {
    const prev = enterBatch();
    const a = now();
    await sleep(20);
    // Inside the batch the reading does not move, however long the batch takes.
    expect(now()).toBe(a);
    leaveBatch(prev);
    // Outside it, the live clock: at least the 20 ms slept later than the batch's reading.
    expect(now() - a).toBeGreaterThanOrEqual(19);
    expect(now()).toBeLessThanOrEqual(performance.now());
  });

  it('keeps the outer reading when a batch is re-entered (a flush inside a batch)', async () => {
    const outer = enterBatch();
    const a = now();
    await sleep(5);
    const inner = enterBatch();
    expect(now()).toBe(a);
    leaveBatch(inner);
    expect(now()).toBe(a);
    leaveBatch(outer);
    await sleep(5);
    expect(now()).toBeGreaterThan(a);
  });
});
