// HTTP/2 route timeouts on shared per-length lists (src/filters/network/http_connection_manager/deadlines.ts):
// owners are told in order, not before their time, and never once disarmed.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { armDeadline, deadlineLengths, disarmDeadline, type DeadlineList, type DeadlineOwner } from '../../../src/filters/network/http_connection_manager/deadlines.js';

/** Waits for `cond` (up to 5 s): a loaded machine may run timers late, never early. */
async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await sleep(10);
}

class Owner implements DeadlineOwner {
  dlPrev: DeadlineOwner | null = null;
  dlNext: DeadlineOwner | null = null;
  dlDue = 0;
  dlList: DeadlineList | null = null;
  firedAt = -1;
  constructor(
    private readonly log: string[],
    readonly name: string,
  ) {}
  onDeadline(): void {
    this.firedAt = performance.now();
    this.log.push(this.name);
  }
}

describe('HTTP/2 route deadlines', () => {
  it('tells each armed owner once, in order, no earlier than its timeout', async () => {
    const log: string[] = [];
    const t0 = performance.now();
    const a = new Owner(log, 'a');
    const b = new Owner(log, 'b');
    const c = new Owner(log, 'c');
    armDeadline(a, 30);
    await sleep(10);
    armDeadline(b, 30);
    armDeadline(c, 30);
    disarmDeadline(b);
    disarmDeadline(b); // twice is harmless
    await until(() => log.length >= 2);
    await sleep(50); // b, disarmed, must stay silent past its own deadline
    expect(log).toEqual(['a', 'c']);
    expect(a.firedAt - t0).toBeGreaterThanOrEqual(29);
    expect(c.firedAt - t0).toBeGreaterThanOrEqual(39);
    expect(a.dlList).toBeNull();
  });

  it('keeps lists of different lengths apart and re-arming replaces the deadline', async () => {
    const log: string[] = [];
    const long = new Owner(log, 'long');
    const short = new Owner(log, 'short');
    armDeadline(long, 10);
    armDeadline(long, 60);
    armDeadline(short, 20);
    await sleep(40);
    expect(log).toEqual(['short']);
    await until(() => log.length >= 2);
    expect(log).toEqual(['short', 'long']);
  });

  it('does not keep a list per length when every request brings its own (grpc-timeout)', async () => {
    const log: string[] = [];
    const owners = Array.from({ length: 200 }, (_, i) => new Owner(log, String(i)));
    owners.forEach((o, i) => armDeadline(o, 1000 + i));
    expect(deadlineLengths()).toBeGreaterThanOrEqual(200);
    for (const o of owners) disarmDeadline(o);
    expect(deadlineLengths()).toBeLessThanOrEqual(8);
    // A kept length still times out its next owner.
    const again = new Owner(log, 'again');
    armDeadline(again, 15);
    await until(() => log.length > 0);
    expect(log).toEqual(['again']);
  });
});
