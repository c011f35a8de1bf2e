// An idle sidecar should sleep: thousands of them share a host. The hot-restart channel is
// watched by the loop (an upgrade still works: hot_restart.test.ts), so an idle proxy's main
// thread no longer wakes every 50 ms to poll it. Counted with the kernel's per-thread voluntary
// context switches (a wake-up from epoll_wait is one), not with a clock.
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, startStrait, staticCluster, tcpListener, type StraitProcess } from '../helpers/strait.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function mainThreadSwitches(pid: number): number {
  const m = /^voluntary_ctxt_switches:\s+(\d+)$/m.exec(fs.readFileSync(`/proc/${pid}/task/${pid}/status`, 'utf8'));
  return Number(m![1]);
}

describe('an idle proxy', () => {
  let strait: StraitProcess;
  beforeAll(async () => {
    strait = await startStrait(
      `${ADMIN}static_resources:
  listeners:
${tcpListener('tcp', 'up')}
  clusters:
${staticCluster('up', [9])}`,
      { args: ['--base-id', String((process.pid % 40_000) + 7_000)] },
    );
  });
  afterAll(async () => {
    await strait?.stop();
  });

  it('serves the hot-restart channel without waking its main thread to poll it', async () => {
    expect(strait.stderr).not.toContain('hot restart');
    await sleep(1500); // start-up work (LIVE, compilers back on) settles
    const before = mainThreadSwitches(strait.pid);
    await sleep(2000);
    // A 50 ms poll made ~40 here; what remains are rare timers of the runtime.
    expect(mainThreadSwitches(strait.pid) - before).toBeLessThan(15);
  });
});
