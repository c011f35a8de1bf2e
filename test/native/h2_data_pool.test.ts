// A native HTTP/2 client session's DATA handed on without a view: each batch names the addon's
// data pool its bytes are in (the batch's sixth argument), a stream user with h2DataAt gets the
// chunk as an offset and length there, and a server stream's writeAt (dataArgs with
// DATA_FROM_POOL) copies the bytes from that pool while it is still the addon's. Real sockets:
// a node:http2 upstream, the addon's client session, the addon's server session, a node:http2
// client.
import crypto from 'node:crypto';
import http2 from 'node:http2';
import { afterEach, describe, expect, it } from 'vitest';
import { CALL_ARGS, DATA_FROM_POOL, DATA_NOT_IN_POOL } from '../../src/native.js';
import { NativeH2ClientConnection, type H2Headers, type NativeH2ClientStreamUser, type NativeH2Stream } from '../../src/protocols/http2/native_session.js';
import { b, DownRelay, nativeH2Client, nativeH2Server, sleep } from './helpers.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  for (let i = 0; i < 200 && b.stats().poolChunksInUse !== 0; i++) await sleep(10);
  expect(b.stats().poolChunksInUse).toBe(0);
});

/** An upstream answering `/<n>` with the n bytes BODIES holds for it, written in 1000-byte pieces. */
const BODIES = new Map<number, Buffer>();
function bodyOf(n: number): Buffer {
  let v = BODIES.get(n);
  if (!v) BODIES.set(n, (v = crypto.randomBytes(n)));
  return v;
}

async function upstream(): Promise<number> {
  const srv = http2.createServer();
  srv.on('stream', (s, h) => {
    const body = bodyOf(Number(String(h[':path']).slice(1)));
    s.respond({ ':status': 200 });
    for (let o = 0; o < body.length; o += 1000) s.write(body.subarray(o, o + 1000));
    s.end();
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => srv.close(() => r())));
  return (srv.address() as { port: number }).port;
}

async function dialUp(port: number): Promise<NativeH2ClientConnection> {
  const c = await nativeH2Client(port);
  cleanups.push(() => c.destroy());
  return c;
}

interface Seen {
  /** Pool numbers of the chunks h2DataAt got. */
  gens: number[];
  /** Chunks that came as views (h2Data): batches too large for a pool. */
  views: number;
}

/**
 * A downstream request forwarded to the upstream connection: the response's chunks go on by
 * writeAt when they come by offset, else by write; `during` runs on each chunk that came by offset.
 */
class Forward extends DownRelay implements NativeH2ClientStreamUser {
  constructor(
    down: NativeH2Stream,
    private readonly seen: Seen,
    private readonly during?: (pool: Buffer, off: number, len: number, gen: number) => void,
  ) {
    super(down);
  }
  h2Headers(_h: H2Headers, end: boolean): void {
    this.down.respond({ ':status': '200' }, { endStream: end });
  }
  h2DataAt(pool: Buffer, off: number, len: number, gen: number): boolean {
    this.seen.gens.push(gen);
    if (this.during) this.during(pool, off, len, gen);
    else this.down.writeAt(pool, off, len, gen);
    return false;
  }
  override h2Data(d: Buffer): boolean {
    this.seen.views++;
    return super.h2Data(d);
  }
}

async function proxy(upPort: number, seen: Seen, during?: (st: NativeH2Stream) => (pool: Buffer, off: number, len: number, gen: number) => void): Promise<number> {
  const up = await dialUp(upPort);
  const srv = nativeH2Server({
    onStream: (st, h) => {
      up.request({ ':method': 'GET', ':scheme': 'http', ':authority': 'up', ':path': String(h[':path']) }, true, new Forward(st, seen, during?.(st)));
    },
  });
  cleanups.push(() => srv.close());
  return srv.port;
}

async function get(port: number, paths: string[]): Promise<Buffer[]> {
  const s = http2.connect(`http://127.0.0.1:${port}`);
  cleanups.push(() => s.close());
  return Promise.all(
    paths.map(
      (path) =>
        new Promise<Buffer>((resolve, reject) => {
          const r = s.request({ ':path': path });
          const parts: Buffer[] = [];
          r.on('data', (d: Buffer) => parts.push(d));
          r.on('end', () => resolve(Buffer.concat(parts)));
          r.on('error', reject);
          r.end();
        }),
    ),
  );
}

describe('native HTTP/2 DATA forwarded from the data pool by offset', () => {
  it('carries every response byte unchanged, from small pooled batches, larger batches of their own and batches too large to pool', async () => {
    const seen: Seen = { gens: [], views: 0 };
    const port = await proxy(await upstream(), seen);
    // One at a time (small batches share 8 KiB pools), then together (batches of several responses).
    const sizes = [1, 10, 700, 3000, 5000, 9000, 40000, 150000];
    for (const n of sizes) expect((await get(port, [`/${n}`]))[0]!.equals(bodyOf(n))).toBe(true);
    const many = Array.from({ length: 60 }, (_, i) => sizes[i % sizes.length]! + i);
    const got = await get(port, many.map((n) => `/${n}`));
    got.forEach((body, i) => expect(body.equals(bodyOf(many[i]!))).toBe(true));
    // Chunks came by offset from more than one pool; every number given is a pool's (never 0).
    expect(seen.gens.length).toBeGreaterThan(10);
    expect(new Set(seen.gens).size).toBeGreaterThan(1);
    expect(seen.gens.every((g) => Number.isInteger(g) && g > 0)).toBe(true);
  });

  it('dataArgs copies from a pool only while it is the addon\'s: a stale or unknown number or bytes past the pool get DATA_NOT_IN_POOL and send nothing', async () => {
    const seen: Seen = { gens: [], views: 0 };
    const answers: unknown[] = [];
    const errors: string[] = [];
    const calls = b.H2Session!.calls as unknown as { dataArgs: (c?: unknown) => boolean | number };
    const port = await proxy(await upstream(), seen, (st) => (_pool, off, len, gen) => {
      const sid = st.session.h.sid();
      const ask = (g: number, o: number, l: number): void => {
        CALL_ARGS.set([sid, st.id, DATA_FROM_POOL, g, o, l]);
        try {
          answers.push(calls.dataArgs());
        } catch (err) {
          errors.push(`${(err as Error).name}: ${(err as Error).message}`);
        }
      };
      ask(gen + 1, off, len);
      ask(gen - 1, off, len);
      ask(0, off, len);
      ask(gen, off, 1 << 20);
      ask(gen, 0.5, len);
      // The right one, after all the refused ones: the client gets these bytes once.
      ask(gen, off, len);
    });
    const body = (await get(port, ['/700']))[0]!;
    expect(body.equals(bodyOf(700))).toBe(true);
    expect(seen.gens.length).toBe(1);
    expect(answers).toEqual([DATA_NOT_IN_POOL, DATA_NOT_IN_POOL, DATA_NOT_IN_POOL, DATA_NOT_IN_POOL, true]);
    expect(errors).toEqual(["RangeError: H2Session.dataArgs: the call-args table's pool number, offset and length must be integers not negative"]);
  });
});
