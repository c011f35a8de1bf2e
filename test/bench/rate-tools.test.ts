// The bench's fixed-rate HTTP/1.1 generator (bench/tools/rateload.c, compiled as the bench
// compiles it) against a real keep-alive server, no proxy: it must keep to its schedule's count
// (open loop: never more requests than the schedule holds, one in flight per connection), check
// each response's status and exact size, and report a peer that is not there. Nothing here
// asserts a rate or a latency.
import { execFile } from 'node:child_process';
import net from 'node:net';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error plain ESM JavaScript without type declarations
import { cTool } from '../../bench/lib/tools.js';
import { deadPort } from '../helpers/net.js';

const run = promisify(execFile);
const REQUEST = Buffer.from('GET /64 HTTP/1.1\r\nHost: bench\r\n\r\n', 'latin1');
const body = 'x'.repeat(64);
const OK = `HTTP/1.1 200 OK\r\nContent-Length: 64\r\n\r\n${body}`;
const BAD = `HTTP/1.1 503 NO\r\nContent-Length: 64\r\n\r\n${body}`;

type Load = { requests: number; sent: number; late: number; latency_us: Record<string, number>; errors: Record<string, number> };

async function rateload(port: number, { conns = 4, rate = 2000, seconds = 0.5, respLen = OK.length } = {}): Promise<Load> {
  const args = [String(port), String(conns), String(rate), String(seconds), REQUEST.toString('hex'), String(respLen)];
  const { stdout } = await run(cTool('rateload').path, args, { timeout: 30_000 });
  return JSON.parse(stdout);
}

/** Answers every request head with `reply`, on keep-alive connections; counts the heads. */
async function server(reply: string): Promise<{ port: number; heads: () => number; maxInFlight: () => number; close: () => void }> {
  let heads = 0;
  let maxInFlight = 0;
  const s = net.createServer((sock) => {
    let pending = '';
    sock.on('data', (d) => {
      pending += d.toString('latin1');
      let n = 0;
      for (let i = pending.indexOf('\r\n\r\n'); i >= 0; i = pending.indexOf('\r\n\r\n')) {
        pending = pending.slice(i + 4);
        n++;
      }
      heads += n;
      maxInFlight = Math.max(maxInFlight, n);
      for (let k = 0; k < n; k++) sock.write(reply);
    });
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return { port: (s.address() as net.AddressInfo).port, heads: () => heads, maxInFlight: () => maxInFlight, close: () => s.close() };
}

describe('bench rateload', () => {
  let ok: Awaited<ReturnType<typeof server>>;
  let bad: Awaited<ReturnType<typeof server>>;

  beforeAll(async () => {
    expect(cTool('rateload').ok, cTool('rateload').reason).toBe(true);
    ok = await server(OK);
    bad = await server(BAD);
  });

  afterAll(() => {
    ok?.close();
    bad?.close();
  });

  it('answers every request it sends, one in flight per connection, never more than the schedule holds', async () => {
    const r = await rateload(ok.port, { conns: 4, rate: 2000, seconds: 0.5 });
    expect(r.errors).toEqual({ connect: 0, closed: 0, bad_status: 0, bad_length: 0, lost: 0, short_send: 0 });
    expect(r.requests).toBeGreaterThan(0);
    expect(r.requests).toBe(r.sent);
    // 2000/s for 0.5 s over 4 staggered schedules: at most 1000 due, plus one per connection at the edge.
    expect(r.sent).toBeLessThanOrEqual(1004);
    expect(ok.heads()).toBe(r.sent);
    expect(ok.maxInFlight()).toBe(1);
    expect(r.latency_us.p50).toBeGreaterThan(0);
    expect(r.latency_us.p99).toBeGreaterThanOrEqual(r.latency_us.p50);
  });

  it('flags responses whose status is not 200', async () => {
    const r = await rateload(bad.port, { seconds: 0.2 });
    expect(r.errors.bad_status).toBeGreaterThan(0);
  });

  it('flags responses of the wrong size', async () => {
    const r = await rateload(ok.port, { seconds: 0.2, respLen: OK.length + 1 });
    // One byte short of what it expects: every connection waits for a byte that never comes.
    expect(r.requests).toBe(0);
    expect(r.errors.lost).toBe(4);
    const r2 = await rateload(ok.port, { seconds: 0.2, respLen: OK.length - 1 });
    expect(r2.errors.bad_length).toBeGreaterThan(0);
  });

  it('flags a peer that is not listening', async () => {
    const r = await rateload(await deadPort(), { seconds: 0.1 });
    expect(r.errors.connect).toBe(4);
  });
});
