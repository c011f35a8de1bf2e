// node:http2 keeps a session's streams in a Map keyed by ever-new stream ids; useStreamSlots
// replaces it (and the pending-stream Set) with slot tables so V8 does not rebuild hash tables
// per stream (see http2_pool.ts). These tests run real sessions over loopback through the slot
// tables: a stream held open while hundreds of later ids wrap its slot, session teardown with
// streams in flight, and the table's own collision, growth and overflow rules.
import http2 from 'node:http2';
import type net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StreamSlots, useStreamSlots } from '../../../src/upstream/http2_pool.js';

let server: http2.Http2Server;
let port = 0;
const serverSessions = new Set<http2.ServerHttp2Session>();
let held: http2.ServerHttp2Stream | null = null;
const closedOnServer: string[] = [];
let openNever = 0;

function stateOf(s: http2.Http2Session): { streams: { size: number; constructor: { name: string } }; pendingStreams: { size: number; constructor: { name: string } } } {
  const k = Object.getOwnPropertySymbols(s).find((x) => x.description === 'state') as symbol;
  return (s as unknown as Record<symbol, any>)[k];
}

beforeAll(async () => {
  server = http2.createServer();
  server.on('session', (s) => {
    useStreamSlots(s);
    serverSessions.add(s);
    s.on('error', () => {});
    s.on('close', () => serverSessions.delete(s));
  });
  server.on('stream', (stream, headers) => {
    const path = String(headers[':path']);
    stream.on('error', () => {}); // resets in the teardown test
    stream.on('close', () => closedOnServer.push(path));
    if (path === '/hold') {
      held = stream; // answered by the test, after later streams have reused its slot index
      return;
    }
    if (path.startsWith('/never')) {
      openNever++; // left open for the teardown test
      return;
    }
    stream.respond({ ':status': 200 });
    stream.end(path);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as net.AddressInfo).port;
});

afterAll(async () => {
  for (const s of serverSessions) s.destroy();
  await new Promise<void>((r) => server.close(() => r()));
});

function until(ok: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const t = setInterval(() => {
      if (ok()) {
        clearInterval(t);
        resolve();
      }
    }, 5);
  });
}

function get(c: http2.ClientHttp2Session, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = c.request({ ':path': path });
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    req.on('end', () => resolve(body));
    req.on('error', reject);
    req.end();
  });
}

describe('useStreamSlots', () => {
  it('serves every stream to its own caller while one stream holds a slot many ids long', async () => {
    const c = http2.connect(`http://127.0.0.1:${port}`);
    useStreamSlots(c);
    expect(stateOf(c).streams.constructor.name).toBe('StreamSlots');
    expect(stateOf(c).pendingStreams.constructor.name).toBe('PendingStreams');
    try {
      const slow = get(c, '/hold');
      // 300 later streams: their ids wrap the initial 16 slots many times over the held one.
      for (let round = 0; round < 10; round++) {
        const paths = Array.from({ length: 30 }, (_, i) => `/r${round}-${i}`);
        expect(await Promise.all(paths.map((p) => get(c, p)))).toEqual(paths);
      }
      expect(held).not.toBeNull();
      const [ss] = [...serverSessions];
      expect(stateOf(ss!).streams.constructor.name).toBe('StreamSlots');
      expect(stateOf(ss!).streams.size).toBe(1); // only the held stream is still open
      held!.respond({ ':status': 200 });
      held!.end('/hold');
      expect(await slow).toBe('/hold');
      await new Promise((r) => setImmediate(r));
      expect(stateOf(c).streams.size).toBe(0);
      expect(stateOf(c).pendingStreams.size).toBe(0);
    } finally {
      c.close();
    }
  });

  it('destroys streams in flight when the session is destroyed', async () => {
    const c = http2.connect(`http://127.0.0.1:${port}`);
    useStreamSlots(c);
    c.on('error', () => {});
    await new Promise<void>((r) => c.once('connect', () => r()));
    const reqs = Array.from({ length: 40 }, (_, i) => c.request({ ':path': `/never${i}` }));
    const closed = reqs.map((r) => new Promise<void>((res) => r.on('close', () => res())));
    for (const r of reqs) r.on('error', () => {});
    await until(() => openNever === 40);
    expect(stateOf(c).streams.size).toBe(40);
    c.destroy(new Error('gone'));
    await Promise.all(closed);
    expect(reqs.every((r) => r.destroyed)).toBe(true);
    expect(stateOf(c).streams.size).toBe(0);
    // The server sees the connection go and closes its side of every stream.
    await until(() => closedOnServer.filter((p) => p.startsWith('/never')).length === 40);
  });

  it('destroys streams still pending when the session goes before it connects', async () => {
    const c = http2.connect(`http://127.0.0.1:${port}`);
    useStreamSlots(c);
    c.on('error', () => {});
    const reqs = Array.from({ length: 5 }, (_, i) => c.request({ ':path': `/p${i}` }));
    for (const r of reqs) r.on('error', () => {});
    expect(stateOf(c).pendingStreams.size).toBe(5);
    const closed = reqs.map((r) => new Promise<void>((res) => r.on('close', () => res())));
    c.destroy();
    await Promise.all(closed);
    expect(stateOf(c).pendingStreams.size).toBe(0);
  });

  it('leaves a session that already has streams as node made it', () => {
    const c = http2.connect(`http://127.0.0.1:${port}`);
    c.on('error', () => {});
    const req = c.request({ ':path': '/x' });
    req.on('error', () => {});
    useStreamSlots(c);
    expect(stateOf(c).pendingStreams.constructor.name).toBe('SafeSet');
    c.destroy();
  });
});

describe('StreamSlots', () => {
  it('keeps colliding ids apart by growing, and visits each live entry once in forEach', () => {
    const t = new StreamSlots<string>();
    // 1 and 33 share a slot in 16 slots; 1 and 65 in 32.
    t.set(1, 'a').set(33, 'b').set(65, 'c').set(3, 'd');
    expect([t.get(1), t.get(33), t.get(65), t.get(3), t.get(5)]).toEqual(['a', 'b', 'c', 'd', undefined]);
    expect(t.size).toBe(4);
    expect(t.delete(33)).toBe(true);
    expect(t.delete(33)).toBe(false);
    const seen: number[] = [];
    t.forEach((_v, id, self) => {
      seen.push(id);
      // Deleted during the walk, like a Map: the other entries are not visited afterwards.
      for (const x of [1, 65, 3]) if (x !== id) self.delete(x);
    });
    expect(seen.length).toBe(1);
    expect(t.size).toBe(1);
    for (const x of [1, 65, 3]) t.set(x, 'z'); // re-setting the survivor does not count it twice
    expect(t.size).toBe(3);
  });

  it('puts a colliding id in a plain Map once the table is at its limit', () => {
    const t = new StreamSlots<number>();
    // Ids one table-length apart: each pair forces a doubling until the 4096-slot limit.
    let id = 1;
    const ids: number[] = [];
    for (let i = 0; i < 20; i++) {
      ids.push(id);
      t.set(id, id);
      id += 2 * (16 << i);
    }
    for (const x of ids) expect(t.get(x)).toBe(x);
    expect(t.size).toBe(ids.length);
    for (const x of ids) expect(t.delete(x)).toBe(true);
    expect(t.size).toBe(0);
  });
});
