// disableLoopIdleTime: libuv's idle-time metrics (on in every Node process, for
// performance.eventLoopUtilization) cost an extra non-blocking epoll_pwait before each blocking
// one. The addon turns them off; Node's own idle-time counter then stops growing while the loop
// sleeps, which is how this test sees that the libuv flag really changed. In a child process, so
// this worker's loop keeps its metrics.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from '../helpers/strait.js';

const CHILD = `
const b = require(${JSON.stringify(path.join(REPO, 'build/Release/strait_native.node'))});
const { performance } = require('node:perf_hooks');
setTimeout(() => {
  const before = performance.eventLoopUtilization().idle;
  const first = b.disableLoopIdleTime();
  const second = b.disableLoopIdleTime();
  setTimeout(() => {
    const grew = performance.eventLoopUtilization().idle - before;
    process.stdout.write(JSON.stringify({ before, first, second, grew }));
  }, 200);
}, 200);
`;

describe('disableLoopIdleTime', () => {
  it('turns off the idle-time metrics Node turned on, once; the loop still sleeps and wakes for timers', async () => {
    const out = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, ['-e', CHILD], { timeout: 10_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout))),
    );
    const r = JSON.parse(out) as { before: number; first: boolean; second: boolean; grew: number };
    // 200 ms asleep before the call were counted as idle; the 200 ms after it are not.
    expect(r.before).toBeGreaterThan(100);
    expect([r.first, r.second]).toEqual([true, false]);
    expect(r.grew).toBeLessThan(20);
  });
});
