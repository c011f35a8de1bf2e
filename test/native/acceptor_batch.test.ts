// An Acceptor given a `batch` array hands a wake-up's connections to JavaScript in one call: fds
// and ports in the array, families and addresses in `peers` only where they do not repeat. Real
// TCP connections waiting in a paused listener's backlog, then one wake-up.
import net from 'node:net';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { b } from './helpers.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/**
 * The local ports of `n` clients of 127.0.0.1:`port` from `from`, connected (waiting in the
 * backlog); read at once, since a client closed by the other side forgets its port.
 */
async function clients(port: number, n: number, from = '127.0.0.1'): Promise<number[]> {
  const out = await Promise.all(
    Array.from({ length: n }, () => new Promise<net.Socket>((resolve, reject) => {
      const c = net.connect({ host: '127.0.0.1', port, localAddress: from }, () => resolve(c));
      c.on('error', reject);
    })),
  );
  cleanups.push(() => out.forEach((c) => c.destroy()));
  return out.map((c) => c.localPort!);
}

interface Call {
  count: number;
  peers: (string | undefined)[] | undefined;
  fds: number[];
  ports: number[];
}

/** A paused batch Acceptor on a fresh listener; `calls` records each onAccept. */
function batchAcceptor(slots: number, repeatPeer = true) {
  const lfd = b.listenTcp('127.0.0.1', 0, 64, false);
  const port = b.localAddress(lfd).port;
  const batch = new Int32Array(slots);
  const calls: Call[] = [];
  let wake: (() => void) | null = null;
  const acc = new b.Acceptor(
    lfd,
    (count, peers) => {
      const fds: number[] = [];
      const ports: number[] = [];
      for (let i = 0; i < count; i++) {
        fds.push(batch[2 * i]!);
        ports.push(batch[2 * i + 1]!);
      }
      calls.push({ count, peers: peers && [...peers], fds, ports });
      for (const fd of fds) b.closeFd(fd);
      wake?.();
    },
    () => {},
    repeatPeer,
    batch,
  );
  cleanups.push(() => acc.close());
  acc.pause();
  const accepted = (total: number) =>
    new Promise<void>((resolve) => {
      const check = () => calls.reduce((s, c) => s + c.count, 0) >= total && resolve();
      wake = check;
      check();
    });
  return { acc, port, calls, accepted };
}

describe('Acceptor batch', () => {
  it('hands the connections of a wake-up over in one call, peers only where they change', async () => {
    const { acc, port, calls, accepted } = batchAcceptor(128);
    const first = await clients(port, 20);
    acc.resume();
    await accepted(20);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.count).toBe(20);
    expect(new Set(calls[0]!.fds).size).toBe(20);
    expect(calls[0]!.fds.every((fd) => fd > 2)).toBe(true);
    expect(new Set(calls[0]!.ports)).toEqual(new Set(first));
    // The first connection's peer is new; the rest repeat it.
    const want: (string | undefined)[] = new Array(2 * 64).fill(undefined);
    want[0] = 'IPv4';
    want[1] = '127.0.0.1';
    expect(calls[0]!.peers).toEqual(want);

    // A later wake-up from the same peer makes no strings at all; another peer gets its own.
    acc.pause();
    await clients(port, 3);
    const other = await clients(port, 1, '127.0.0.2');
    acc.resume();
    await accepted(24);
    expect(calls).toHaveLength(2);
    expect(calls[1]!.count).toBe(4);
    const i = calls[1]!.ports.indexOf(other[0]!);
    expect(i).toBeGreaterThanOrEqual(0);
    expect(calls[1]!.peers?.[2 * i + 1]).toBe('127.0.0.2');
    expect(calls[1]!.peers?.filter((p) => p !== undefined)).toEqual(
      i === 3 ? ['IPv4', '127.0.0.2'] : ['IPv4', '127.0.0.2', 'IPv4', '127.0.0.1'],
    );
  });

  it('without repeatPeer every connection comes with its peer', async () => {
    const { acc, port, calls, accepted } = batchAcceptor(16, false);
    await clients(port, 5);
    acc.resume();
    await accepted(5);
    expect(calls.map((c) => c.count)).toEqual([5]);
    expect(calls[0]!.peers!.slice(0, 10)).toEqual(Array.from({ length: 10 }, (_, k) => (k % 2 ? '127.0.0.1' : 'IPv4')));
  });

  it('hands over at most half the array at once; the rest follow on the next turns', async () => {
    const { acc, port, calls, accepted } = batchAcceptor(6);
    const sent = await clients(port, 7);
    acc.resume();
    await accepted(7);
    expect(calls.map((c) => c.count)).toEqual([3, 3, 1]);
    expect(new Set(calls.flatMap((c) => c.ports))).toEqual(new Set(sent));
  });

  it('refuses a batch that is not an Int32Array of 2 slots or more', () => {
    const lfd = b.listenTcp('127.0.0.1', 0, 4, false);
    cleanups.push(() => b.closeFd(lfd));
    for (const bad of [new Int32Array(1), new Uint32Array(8), [0, 0]])
      expect(() => new b.Acceptor(lfd, () => {}, () => {}, true, bad as Int32Array)).toThrow(/batch must be an Int32Array of 2 slots or more/);
  });

  it('the native engine: a throw for one connection of a batch reaches uncaughtException and the rest still arrive', async () => {
    // A child, so that the uncaught exceptions are its own; see fixtures/engine_accept_batch.mjs.
    const fixture = fileURLToPath(new URL('./fixtures/engine_accept_batch.mjs', import.meta.url));
    const child = spawn(process.execPath, [fixture], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    const code = await new Promise<number | null>((r) => child.once('exit', r));
    expect(code).toBe(0);
    const report = JSON.parse(out) as { accepted: number; peersMatch: boolean; order: string[] };
    expect([report.accepted, report.peersMatch]).toEqual([20, true]);
    // Both throws are reported, in order, once the whole wake-up was handed over.
    expect(report.order.filter((t) => t.startsWith('uncaught-'))).toEqual(['uncaught-boom-2', 'uncaught-boom-5']);
    expect(report.order.indexOf('uncaught-boom-2')).toBeGreaterThan(report.order.indexOf('accept-19'));
  });
});
