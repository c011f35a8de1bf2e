// How the addon's HTTP/2 session hands a read batch to JavaScript: event slots in a shared
// Uint32Array (a new one when a batch has more events than it holds, or when a handler's
// destroy() makes a batch while the shared one is being read), strings as the call's arguments
// (in one array when a batch has more than 1,019), and every
// DATA chunk as a view of one Buffer per batch, whose window the addon gives back after the call
// unless JavaScript held the chunk. Raw frames from node:net, so that many streams arrive in
// one read.
import crypto from 'node:crypto';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { H2SessionEnd, headerObject, type H2Headers, type NativeH2Connection, type NativeH2Settings, type NativeH2Stream } from '../../src/protocols/http2/native_session.js';
import { frame, literal, PREFACE, T } from '../helpers/h2frames.js';
import { b, KiB, nativeH2Server, sleep, until, type NativeH2TestServer } from './helpers.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await until(() => b.stats().poolChunksInUse === 0);
  expect(b.stats().poolChunksInUse).toBe(0);
});

function requestHeaders(path: string): Buffer {
  return Buffer.concat([literal(':method', 'POST'), literal(':scheme', 'http'), literal(':path', path), literal(':authority', 'a')]);
}

/** Preface, SETTINGS, then HEADERS + DATA(END_STREAM) for each body: all in one write. */
function burst(bodies: Buffer[]): Buffer {
  const parts = [PREFACE, frame(T.SETTINGS, 0, 0)];
  bodies.forEach((body, i) => {
    const id = 2 * i + 1;
    parts.push(frame(T.HEADERS, 4 /* END_HEADERS */, id, requestHeaders(`/s${id}`)));
    parts.push(frame(T.DATA, 1 /* END_STREAM */, id, body));
  });
  return Buffer.concat(parts);
}

type Handler = (s: NativeH2Stream, h: H2Headers, endStream: boolean, conn: NativeH2Connection) => void;

function serve(handler: Handler, settings: Partial<NativeH2Settings> = {}): NativeH2TestServer {
  const srv = nativeH2Server({ onStream: handler }, settings);
  cleanups.push(() => srv.close());
  return srv;
}

function dial(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.on('error', reject);
    cleanups.push(() => s.destroy());
  });
}

describe('native HTTP/2 session event batches', () => {
  it('hands each stream its own DATA bytes in a batch with more events than the shared array holds', async () => {
    // 150 streams x (HEADERS, DATA, END) in one read: well past the 64 events the shared array takes.
    const bodies = Array.from({ length: 150 }, (_, i) => crypto.randomBytes(1 + ((i * 37) % 700)));
    const got = new Map<string, Buffer[]>();
    const srv = serve((s, h) => {
      const chunks: Buffer[] = [];
      got.set(h[':path'] as string, chunks);
      s.on('data', (d: Buffer) => chunks.push(d));
      s.on('end', () => {
        s.respond({ ':status': '200' }, { endStream: true });
      });
    });
    const c = await dial(srv.port);
    c.write(burst(bodies));
    await until(() => got.size === bodies.length && [...got.values()].every((x) => x.length > 0));
    expect(got.size).toBe(bodies.length);
    bodies.forEach((body, i) => {
      expect(Buffer.concat(got.get(`/s${2 * i + 1}`)!).equals(body)).toBe(true);
    });
    // A second burst on a new connection reads the same shared array again, intact.
    const again = serve((s, h) => {
      const chunks: Buffer[] = [];
      got.set(`again${h[':path'] as string}`, chunks);
      s.on('data', (d: Buffer) => chunks.push(d));
    });
    const c2 = await dial(again.port);
    c2.write(burst(bodies.slice(0, 10)));
    await until(() => got.has('again/s19') && got.get('again/s19')!.length > 0);
    expect(Buffer.concat(got.get('again/s19')!).equals(bodies[9]!)).toBe(true);
  });

  it('gives every stream its own head whether a batch has few strings (call arguments) or many (an array)', async () => {
    // 1,100 request heads in one read: past the 1,019 strings a call takes as arguments.
    for (const count of [3, 1100]) {
      const seen: string[] = [];
      const srv = serve((s, h, end) => {
        seen.push(`${h[':path'] as string} ${h['x-n'] as string} ${end}`);
        s.respond({ ':status': '204' }, { endStream: true });
      }, { maxConcurrentStreams: 2000 });
      const parts = [PREFACE, frame(T.SETTINGS, 0, 0)];
      for (let i = 0; i < count; i++) {
        const id = 2 * i + 1;
        parts.push(frame(T.HEADERS, 5 /* END_STREAM | END_HEADERS */, id, Buffer.concat([requestHeaders(`/h${id}`), literal('x-n', String(i))])));
      }
      const c = await dial(srv.port);
      c.write(Buffer.concat(parts));
      await until(() => seen.length === count);
      expect(seen).toEqual(Array.from({ length: count }, (_, i) => `/h${2 * i + 1} ${i} true`));
    }
  });

  it('keeps every chunk intact while later batches fill the shared DATA Buffer and replace it', async () => {
    // Small batches are copied one after the other into an 8 KiB Buffer shared with the next
    // ones; larger ones get their own. Kept chunks must survive both.
    const sizes = [...Array.from({ length: 120 }, (_, i) => 1 + ((i * 53) % 300)), 5000, 7, 4097, 4096, 33];
    const sent = sizes.map((n) => crypto.randomBytes(n));
    const chunks: Buffer[] = [];
    let ended = false;
    const srv = serve((s) => {
      s.on('data', (d: Buffer) => chunks.push(d));
      s.on('end', () => (ended = true));
    });
    const c = await dial(srv.port);
    c.write(Buffer.concat([PREFACE, frame(T.SETTINGS, 0, 0), frame(T.HEADERS, 4, 1, requestHeaders('/pool'))]));
    for (const [i, d] of sent.entries()) {
      c.write(frame(T.DATA, i === sent.length - 1 ? 1 : 0, 1, d));
      await sleep(1); // a read, hence a batch, each
    }
    await until(() => ended);
    expect(Buffer.concat(chunks).equals(Buffer.concat(sent))).toBe(true);
    // Several batches did share a Buffer, and more than one Buffer was used.
    const buffers = new Set(chunks.map((d) => d.buffer));
    expect(buffers.size).toBeGreaterThan(1);
    expect(buffers.size).toBeLessThan(chunks.length);
  });

  it('stops a batch at a handler that destroys its own connection, and ends it once', async () => {
    const bodies = Array.from({ length: 40 }, () => crypto.randomBytes(100));
    const seen: number[] = [];
    const closed: number[] = [];
    const srv = serve((s, h, _end, conn) => {
      const n = Number((h[':path'] as string).slice(2));
      seen.push(n);
      s.on('close', () => closed.push(n));
      // The 10th stream's handler destroys the connection while the batch is being read.
      if (seen.length === 10) conn.destroy();
    });
    const c = await dial(srv.port);
    c.write(burst(bodies));
    await until(() => srv.ends.length > 0);
    await sleep(50);
    expect(srv.ends).toEqual([H2SessionEnd.LOCAL]);
    // Nothing of the batch after the destroy reached a handler; every stream seen was closed.
    expect(seen).toEqual([1, 3, 5, 7, 9, 11, 13, 15, 17, 19]);
    expect(closed.sort((x, y) => x - y)).toEqual(seen);
  });

  it('gives a window back only for DATA taken: a paused stream holds its chunks unconsumed until resumed', async () => {
    const body = crypto.randomBytes(200 * KiB);
    let stream: NativeH2Stream | null = null;
    let n = 0;
    let ended = false;
    const srv = serve((s) => {
      stream = s;
      s.pause();
      s.on('data', (d: Buffer) => (n += d.length));
      s.on('end', () => (ended = true));
    });
    const c = await dial(srv.port);
    let fromServer = Buffer.alloc(0);
    c.on('data', (d: Buffer) => (fromServer = Buffer.concat([fromServer, d])));
    // One stream; its body in 16 KiB DATA frames: only the first 65535 bytes fit the window.
    const parts = [PREFACE, frame(T.SETTINGS, 0, 0), frame(T.HEADERS, 4, 1, requestHeaders('/p'))];
    for (let off = 0; off < 65535; off += 16 * KiB) parts.push(frame(T.DATA, 0, 1, body.subarray(off, Math.min(off + 16 * KiB, 65535))));
    c.write(Buffer.concat(parts));
    await until(() => stream !== null);
    await sleep(100);
    // Held, not taken: no WINDOW_UPDATE for stream 1 yet (the connection's own window comes back at once).
    const streamUpdates = () => windowUpdates(fromServer).filter((w) => w.stream === 1).reduce((a, w) => a + w.inc, 0);
    expect(n).toBe(0);
    expect(streamUpdates()).toBe(0);
    stream!.resume();
    expect(n).toBe(65535);
    await until(() => streamUpdates() >= 65535);
    expect(streamUpdates()).toBe(65535);
    // Taken at once now: the window follows the rest without a consume() call per chunk.
    const more = [];
    for (let off = 65535; off < 2 * 65535; off += 16 * KiB) more.push(frame(T.DATA, 0, 1, body.subarray(off, Math.min(off + 16 * KiB, 2 * 65535))));
    c.write(Buffer.concat(more));
    await until(() => streamUpdates() >= 2 * 65535);
    expect(n).toBe(2 * 65535);
    expect(streamUpdates()).toBe(2 * 65535);
    c.write(frame(T.DATA, 1, 1));
    await until(() => ended);
    expect(ended).toBe(true);
  });
});

/** WINDOW_UPDATE frames in a server's byte stream (after its SETTINGS). */
function windowUpdates(buf: Buffer): { stream: number; inc: number }[] {
  const out: { stream: number; inc: number }[] = [];
  for (let off = 0; off + 9 <= buf.length; ) {
    const len = buf.readUIntBE(off, 3);
    if (off + 9 + len > buf.length) break;
    if (buf[off + 3] === T.WINDOW_UPDATE) out.push({ stream: buf.readUInt32BE(off + 5) & 0x7fffffff, inc: buf.readUInt32BE(off + 9) & 0x7fffffff });
    off += 9 + len;
  }
  return out;
}

describe('headerObject', () => {
  it('builds node-style header objects from the addon form', () => {
    const h = headerObject(['set-cookie', 'a=1', 'cookie', 'x=1', 'cookie', 'y=2', 'accept', 'a', 'accept', 'b', 'set-cookie', 'c=2', 'x-empty', '', 'x-custom', 'v'].join('\0'));
    expect(h['set-cookie']).toEqual(['a=1', 'c=2']);
    expect(h.cookie).toBe('x=1; y=2');
    expect(h.accept).toBe('a, b');
    expect(h['x-empty']).toBe('');
    expect(h['x-custom']).toBe('v');
    expect(Object.keys(h)).toEqual(['set-cookie', 'cookie', 'accept', 'x-empty', 'x-custom']);
    expect(Object.keys(headerObject(''))).toEqual([]);
  });

  it('finds nothing a peer did not send, whatever the name', () => {
    const h = headerObject(['__proto__', 'p', 'constructor', 'c', ':path', '/'].join('\0'));
    expect(h.__proto__).toBe('p');
    expect(h.constructor).toBe('c');
    expect(h[':path']).toBe('/');
    const e = headerObject(':path\0/');
    for (const k of ['constructor', 'toString', 'hasOwnProperty', '__proto__', 'valueOf']) expect(e[k]).toBeUndefined();
    expect({ ...e }).toEqual({ ':path': '/' });
  });
});
