// rpc_proxy sockets on the native engine read by the addon's batch reader (one JS call per loop
// turn for every socket's reads; provider answers decoded in place from its arena) and written
// with direct sends; STRAIT_RPC_IO=stream keeps Node streams. Raw Bolt clients and a raw
// provider on 127.0.0.1 cut frames across reads both ways, run many connections at once with
// colliding ids, and stop reading: every answer must still come back whole, to the right caller.
import fs from 'node:fs';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { boltCodec } from '../../src/protocols/bolt/codec.js';
import { FrameKind, H } from '../../src/protocols/types.js';
import { ADMIN, startStrait, staticCluster, type StraitProcess, rpcProxyListener } from '../helpers/strait.js';

const CLASS = Buffer.from('com.alipay.sofa.rpc.core.request.SofaRequest');

function kv(k: string, v: string): Buffer {
  const kb = Buffer.from(k);
  const vb = Buffer.from(v);
  const b = Buffer.alloc(8 + kb.length + vb.length);
  b.writeUInt32BE(kb.length, 0);
  kb.copy(b, 4);
  b.writeUInt32BE(vb.length, 4 + kb.length);
  vb.copy(b, 8 + kb.length);
  return b;
}

/** A Bolt v1 request (22-byte header, class name, header map, content). */
function boltRequest(id: number, content: Buffer): Buffer {
  const header = kv('service', 'com.example.Echo:1.0');
  const h = Buffer.alloc(22);
  h[0] = 1; // proto v1
  h[1] = 1; // request
  h.writeUInt16BE(1, 2); // cmdcode request
  h[4] = 1;
  h.writeUInt32BE(id, 5);
  h[9] = 1; // hessian2
  h.writeUInt16BE(CLASS.length, 14);
  h.writeUInt16BE(header.length, 16);
  h.writeUInt32BE(content.length, 18);
  return Buffer.concat([h, CLASS, header, content]);
}

/** A Bolt v1 response (20-byte header, content only). */
function boltResponse(id: number, content: Buffer): Buffer {
  const h = Buffer.alloc(20);
  h[0] = 1;
  h[1] = 0; // response
  h.writeUInt16BE(2, 2); // cmdcode response
  h[4] = 1;
  h.writeUInt32BE(id, 5);
  h[9] = 1;
  h.writeUInt32BE(content.length, 16);
  return Buffer.concat([h, content]);
}

/** Cuts a byte stream into Bolt frames; `onFrame` gets each whole frame's header and bytes. */
function frames(onFrame: (hdr: Int32Array, frame: Buffer) => void, onBad: () => void = () => {}): (d: Buffer) => void {
  let buf = Buffer.alloc(0);
  const hdr = new Int32Array(H.SIZE);
  return (d) => {
    buf = buf.length ? Buffer.concat([buf, d]) : d;
    for (;;) {
      boltCodec.decodeHeader(buf, 0, buf.length, 1 << 24, hdr);
      if (hdr[H.STATE]! < 0) return onBad();
      if (hdr[H.STATE] !== 1) break;
      const len = hdr[H.FRAME_LEN]!;
      onFrame(hdr, buf.subarray(0, len));
      buf = buf.subarray(len);
    }
  };
}

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The content a call carries: distinct per connection and call, so a mix-up shows. */
function content(conn: number, id: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (conn * 31 + id * 7 + i) & 0xff;
  return b;
}

/**
 * A provider that echoes each call's content, or (`sized`) answers with 16 bytes per byte of the
 * call's content, all equal to its first.
 * With `split`, every batch of answers leaves in two writes cut inside a frame, a pause apart.
 */
async function provider(opts: { split: boolean; sized?: boolean }): Promise<{ port: number; received: () => number; close(): void }> {
  let received = 0;
  const server = net.createServer((s) => {
    s.setNoDelay(true);
    s.on('error', () => {});
    // Answers to one read leave together (in two pieces with `split`: halves of two answers
    // must not interleave).
    let out: Buffer[] = [];
    const parse = frames((hdr, frame) => {
      if (hdr[H.KIND] !== FrameKind.REQUEST) return;
      received++;
      const id = hdr[H.ID_LO]!;
      const asked = frame.length - hdr[H.BODY_OFF]!;
      // Filled with the call's first content byte: the id here is the proxy's, not the client's.
      const body = opts.sized ? Buffer.alloc(16 * asked, frame[hdr[H.BODY_OFF]!]!) : frame.subarray(hdr[H.BODY_OFF]!);
      out.push(boltResponse(id, Buffer.from(body)));
    });
    let chain = Promise.resolve();
    s.on('data', (d: Buffer) => {
      parse(d);
      if (out.length === 0) return;
      const all = Buffer.concat(out);
      out = [];
      if (!opts.split) return void s.write(all);
      const cut = 1 + ((all.length * 13) % (all.length - 1));
      chain = chain.then(async () => {
        s.write(all.subarray(0, cut));
        await pause(2);
        if (s.writable) s.write(all.subarray(cut));
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, received: () => received, close: () => server.close() };
}

function config(upPort: number): string {
  return `${ADMIN}static_resources:
  listeners:
${rpcProxyListener('rpc', `          codec: bolt
          route_config: [ { interface: "*", routes: [ { match: {}, route: { cluster: up } } ] } ]`)}
  clusters:
${staticCluster('up', [upPort], '    circuit_breakers: { thresholds: [ { max_requests: 100000 } ] }\n')}`;
}

async function startWith(io: 'batch' | 'stream', upPort: number): Promise<StraitProcess> {
  const prev = process.env.STRAIT_RPC_IO;
  process.env.STRAIT_RPC_IO = io;
  try {
    return await startStrait(config(upPort), { engine: 'native' });
  } finally {
    if (prev === undefined) delete process.env.STRAIT_RPC_IO;
    else process.env.STRAIT_RPC_IO = prev;
  }
}

function openFds(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

/**
 * `conns` clients at once, each sending `calls` calls numbered from 1 (ids collide across
 * clients) in pieces cut inside frames; resolves with the clients (still open) once every
 * answer arrived, checking each carries its own call's content.
 */
async function run(port: number, conns: number, calls: number): Promise<net.Socket[]> {
  const sockets: net.Socket[] = [];
  const done: Promise<void>[] = [];
  for (let c = 0; c < conns; c++) {
    const s = net.connect(port, '127.0.0.1');
    s.setNoDelay(true);
    sockets.push(s);
    const want = new Map<number, Buffer>();
    for (let id = 1; id <= calls; id++) want.set(id, content(c, id, 40 + ((c + id) % 200)));
    done.push(
      new Promise<void>((resolve, reject) => {
        s.on('error', reject);
        s.on('data',
          frames((hdr, frame) => {
            const id = hdr[H.ID_LO]!;
            const body = want.get(id);
            if (!body) return reject(new Error(`client ${c}: unexpected or repeated answer to call ${id}`));
            if (hdr[H.STATUS] !== 0 || !frame.subarray(hdr[H.BODY_OFF]!).equals(body)) return reject(new Error(`client ${c}: wrong answer to call ${id}`));
            want.delete(id);
            if (want.size === 0) resolve();
          }, () => reject(new Error(`client ${c}: a corrupt byte stream`))),
        );
      }),
    );
    s.once('connect', async () => {
      const all = Buffer.concat([...want].map(([id, b]) => boltRequest(id, b)));
      // Cut at odd places so frames (and headers) span reads.
      for (let at = 0; at < all.length; ) {
        const n = Math.min(all.length - at, 17 + ((c * 101 + at) % 900));
        s.write(all.subarray(at, at + n));
        at += n;
        if (at % 3 === 0) await pause(1);
      }
    });
  }
  await Promise.all(done);
  return sockets;
}

describe('rpc_proxy reads and writes on the native engine', () => {
  let up: Awaited<ReturnType<typeof provider>>;
  let batch: StraitProcess;
  let stream: StraitProcess;

  beforeAll(async () => {
    up = await provider({ split: true });
    batch = await startWith('batch', up.port);
    stream = await startWith('stream', up.port);
  });

  afterAll(async () => {
    await batch?.stop();
    await stream?.stop();
    up?.close();
  });

  it('answers many clients at once whole and to the right caller, with frames split across reads both ways', async () => {
    const CONNS = 40;
    const before = openFds(batch.pid);
    const sockets = await run(await batch.port('rpc'), CONNS, 30);
    // The batch reader polls its own dup of each socket it reads: one more fd per client (and
    // per provider connection) than the stream path holds for the same connections.
    const batchFds = openFds(batch.pid) - before;
    const streamBefore = openFds(stream.pid);
    const streamSockets = await run(await stream.port('rpc'), CONNS, 30);
    const streamFds = openFds(stream.pid) - streamBefore;
    expect(batchFds - streamFds).toBeGreaterThanOrEqual(CONNS);
    for (const s of [...sockets, ...streamSockets]) s.destroy();
    expect(await batch.stat('rpc.rpc.request')).toBeGreaterThanOrEqual(CONNS * 30);
    expect((await batch.stat('rpc.rpc.request_decoding_error')) ?? 0).toBe(0);
  });

  it('closes only the connection that sends a malformed frame, with a counter', async () => {
    const port = await batch.port('rpc');
    const good = run(port, 4, 20);
    const bad = net.connect(port, '127.0.0.1');
    bad.on('error', () => {});
    await new Promise<void>((r) => bad.once('connect', () => r()));
    // A whole request, then garbage in the same write: the framer sees both in one batch.
    bad.write(Buffer.concat([boltRequest(1, Buffer.from('x')), Buffer.from([0x77, 0x77, 0x77, 0x77])]));
    await new Promise<void>((r) => bad.once('close', () => r()));
    for (const s of await good) s.destroy();
    expect(await batch.stat('rpc.rpc.request_decoding_error')).toBe(1);
  });
});

describe('rpc_proxy on the native engine under a client that stops reading (batch reader)', () => {
  let up: Awaited<ReturnType<typeof provider>>;
  let strait: StraitProcess;

  beforeAll(async () => {
    up = await provider({ split: false, sized: true });
    strait = await startWith('batch', up.port);
  });

  afterAll(async () => {
    await strait?.stop();
    up?.close();
  });

  // 64 KiB answers: 2000 of them = ~128 MiB if all were buffered. 1 KiB answers: many whole
  // ones per provider read, i.e. views of the reader's arena when they are queued.
  it.each([
    { CALLS: 2000, ANSWER: 64 * 1024 },
    { CALLS: 20000, ANSWER: 1024 },
  ])('stops reading the client, keeps RSS bounded, and delivers every answer intact once it reads ($ANSWER B answers)', async ({ CALLS, ANSWER }) => {
    const c = net.connect(await strait.port('rpc'), '127.0.0.1');
    const before = up.received();
    await new Promise<void>((r) => c.once('connect', () => r()));
    c.pause();
    const calls: Buffer[] = [];
    for (let id = 1; id <= CALLS; id++) calls.push(boltRequest(id, Buffer.alloc(ANSWER / 16, id % 251)));
    c.write(Buffer.concat(calls));
    let last = -1;
    let maxRss = 0;
    for (let i = 0; i < 40 && up.received() - before !== last; i++) {
      last = up.received() - before;
      await pause(150);
      maxRss = Math.max(maxRss, strait.rssBytes());
    }
    expect(up.received() - before).toBeLessThan(CALLS);
    expect(maxRss).toBeLessThan(150 * 1024 * 1024);

    // Answers queued while the client did not read were views of the reader's arena when they
    // arrived: each must come back with its own bytes, not a later read's.
    const seen = new Set<number>();
    await new Promise<void>((resolve, reject) => {
      c.on('data',
        frames((hdr, frame) => {
          const id = hdr[H.ID_LO]!;
          const body = frame.subarray(hdr[H.BODY_OFF]!);
          if (seen.has(id) || body.length !== ANSWER || body[0] !== id % 251 || body[ANSWER - 1] !== id % 251) reject(new Error(`bad answer to call ${id}: seen ${seen.has(id)} len ${body.length} first ${body[0]} last ${body[body.length - 1]} status ${hdr[H.STATUS]}`));
          seen.add(id);
          if (seen.size === CALLS) resolve();
        }, () => reject(new Error('a corrupt byte stream'))),
      );
      c.resume();
    });
    c.destroy();
  });
});
