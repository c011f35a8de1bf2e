// src/io/direct_socket.ts: an accepted connection driven from its fd, read by the addon's batch
// reader, written with send(2), with the net.Socket behaviour the HTTP/1 session relies on.
// Real loopback connections accepted by the native engine; the client is a plain net.Socket.
import crypto from 'node:crypto';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { isDirectSocket, type DirectSocket, type DirectSocketOwner } from '../../src/io/direct_socket.js';
import { createEngine } from '../../src/io/index.js';
import { canSendNow, directFd } from '../../src/protocols/http1/send.js';
import { http1BatchReader } from '../../src/protocols/http1/batch_reader.js';
import { listeningChild, sleep, until } from './helpers.js';

const engine = createEngine('native');
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Pair {
  ds: DirectSocket;
  client: net.Socket;
  /** What the DirectSocket has read so far. */
  got: Buffer[];
  events: string[];
}

async function pair(): Promise<Pair> {
  const got: Buffer[] = [];
  const events: string[] = [];
  let ds: DirectSocket | null = null;
  const l = await engine.listen({ kind: 'tcp', host: '127.0.0.1', port: 0 }, 8, (d) => {
    ds = engine.directStream!(d);
    ds!.owner = ownerOf(got);
  });
  cleanups.push(() => l.close());
  const client = net.connect(l.address.port, '127.0.0.1');
  client.on('error', () => {});
  cleanups.push(() => client.destroy());
  await until(() => ds !== null);
  expect(ds).not.toBeNull();
  const s = ds!;
  cleanups.push(() => s.destroy());
  for (const e of ['end', 'drain', 'close']) s.on(e, () => events.push(e));
  s.on('error', (err: NodeJS.ErrnoException) => events.push(`error ${err.code}`));
  return { ds: s, client, got, events };
}

/** An owner that keeps copies of the reads (they are views valid during the call) in `got`. */
function ownerOf(got: Buffer[]): DirectSocketOwner {
  return { onSocketRead: (buf, off, end) => got.push(Buffer.from(buf.subarray(off, end))), onSocketEnd: () => {}, onSocketClose: () => {} };
}

/** Everything the client reads until its 'end'. */
function readToEnd(c: net.Socket): Promise<Buffer> {
  const parts: Buffer[] = [];
  c.on('data', (d: Buffer) => parts.push(d));
  return new Promise((r) => c.once('end', () => r(Buffer.concat(parts))));
}

describe('DirectSocket', () => {
  it('reads through the batch reader and writes with send, in order', async () => {
    const p = await pair();
    p.client.write('ping');
    await until(() => Buffer.concat(p.got).length >= 4);
    expect(Buffer.concat(p.got).toString()).toBe('ping');
    const back = new Promise<Buffer>((r) => p.client.once('data', r));
    expect(p.ds.write('pong')).toBe(true);
    expect((await back).toString()).toBe('pong');
    expect(p.ds.writableLength).toBe(0);
  });

  it('is told from a net.Socket by its mark, and the direct send rules read its own state', async () => {
    const p = await pair();
    expect(isDirectSocket(p.ds)).toBe(true);
    expect(isDirectSocket(p.client)).toBe(false);
    expect(isDirectSocket({})).toBe(false);
    expect(directFd(p.ds)).toBe(p.ds.fd);
    // A net.Socket has no such fields: without the mark these read its stream state and say no.
    expect(canSendNow(p.ds, p.ds.fd)).toBe(true);
    p.ds.cork();
    expect(canSendNow(p.ds, p.ds.fd)).toBe(false);
    p.ds.uncork();
    expect(canSendNow(p.ds, p.ds.fd + 1)).toBe(false);
    await until(() => !p.client.connecting);
    const fd = directFd(p.client);
    expect(fd).toBeGreaterThanOrEqual(0);
    expect(canSendNow(p.client, fd)).toBe(true);
    p.client.cork();
    expect(canSendNow(p.client, fd)).toBe(false);
    p.client.uncork();
  });

  it('queues what the kernel does not take, says so past 16 KiB, and emits drain once the client reads it all', async () => {
    const p = await pair();
    p.client.pause();
    const payload = crypto.randomBytes(8 << 20);
    let at = 0;
    let full = false;
    while (at < payload.length && !full) {
      full = !p.ds.write(payload.subarray(at, at + 64 * 1024));
      at += 64 * 1024;
    }
    // 8 MiB does not fit in loopback's socket buffers while the client reads nothing.
    expect(full).toBe(true);
    expect(p.ds.writableNeedDrain).toBe(true);
    expect(p.ds.writableLength).toBeGreaterThanOrEqual(16 * 1024);
    const drained = new Promise<void>((r) => p.ds.once('drain', () => r()));
    const parts: Buffer[] = [];
    p.client.on('data', (d: Buffer) => parts.push(d));
    p.client.resume();
    await drained;
    expect(p.ds.writableNeedDrain).toBe(false);
    expect(p.ds.writableLength).toBe(0);
    await until(() => parts.reduce((n, b) => n + b.length, 0) >= at);
    expect(Buffer.concat(parts).equals(payload.subarray(0, at))).toBe(true);
  });

  it('holds corked writes until uncork, then sends them in order', async () => {
    const p = await pair();
    const parts: Buffer[] = [];
    p.client.on('data', (d: Buffer) => parts.push(d));
    p.ds.cork();
    p.ds.write('one ');
    p.ds.write(Buffer.from('two '));
    p.ds.write('three');
    await sleep(50);
    expect(parts).toEqual([]);
    p.ds.uncork();
    await until(() => Buffer.concat(parts).length >= 13);
    expect(Buffer.concat(parts).toString()).toBe('one two three');
  });

  it('end() sends its FIN after the queued bytes; the peer\'s FIN then closes it without an error', async () => {
    const p = await pair();
    p.client.pause();
    const payload = crypto.randomBytes(4 << 20);
    p.ds.write(payload);
    expect(p.ds.writableLength).toBeGreaterThan(0);
    p.ds.end();
    expect(p.ds.writable).toBe(false);
    expect(p.ds.write('after end')).toBe(false);
    const all = readToEnd(p.client);
    p.client.resume();
    expect((await all).equals(payload)).toBe(true);
    expect(p.events).not.toContain('close');
    p.client.end();
    await until(() => p.events.includes('close'));
    expect(p.events).toEqual(['end', 'close']);
    expect(p.ds.destroyed).toBe(true);
    expect(p.ds.fd).toBe(-1);
  });

  it('answers the peer\'s FIN with its own unless allowHalfOpen, which keeps it writable', async () => {
    const a = await pair();
    const aEnd = readToEnd(a.client);
    a.client.end();
    await aEnd;
    await until(() => a.events.includes('close'));
    expect(a.events).toEqual(['end', 'close']);

    const h = await pair();
    h.ds.allowHalfOpen = true;
    const hEnd = readToEnd(h.client);
    h.client.end('bye');
    await until(() => h.events.includes('end'));
    expect(Buffer.concat(h.got).toString()).toBe('bye');
    expect(h.ds.write('still here')).toBe(true);
    await sleep(20);
    expect(h.events).toEqual(['end']);
    h.ds.end();
    expect((await hEnd).toString()).toBe('still here');
    await until(() => h.events.includes('close'));
    expect(h.events).toEqual(['end', 'close']);
  });

  it('turns a reset into an error with the errno name, then close', async () => {
    const p = await pair();
    p.client.resetAndDestroy();
    await until(() => p.events.includes('close'));
    expect(p.events).toEqual(['error ECONNRESET', 'close']);
  });

  it('destroy() closes the connection and emits close a tick later', async () => {
    const p = await pair();
    const closed = new Promise<void>((r) => p.client.once('close', () => r()));
    p.ds.destroy();
    expect(p.events).toEqual([]);
    expect(p.ds.write('x')).toBe(false);
    await closed;
    expect(p.events).toEqual(['close']);
  });

  it('tells its owner of end and close before the listeners, and stops where removeAllListeners says', async () => {
    const p = await pair();
    const heard: string[] = [];
    p.ds.owner = {
      onSocketRead: () => {},
      onSocketEnd: () => heard.push(`owner end, listeners ${p.events.length}`),
      onSocketClose: (hadError) => heard.push(`owner close ${hadError}`),
    };
    const aEnd = readToEnd(p.client);
    p.client.end();
    await aEnd;
    await until(() => p.events.includes('close'));
    expect(heard).toEqual(['owner end, listeners 0', 'owner close false']);
    expect(p.events).toEqual(['end', 'close']);

    // A tunnel takes the client's end itself (the session's detach) and keeps the close.
    const q = await pair();
    const told: string[] = [];
    q.ds.owner = { onSocketRead: () => {}, onSocketEnd: () => told.push('end'), onSocketClose: () => told.push('close') };
    q.ds.removeAllListeners('end');
    q.client.end();
    await until(() => told.includes('close'));
    expect(told).toEqual(['close']);
    expect(q.events).toEqual(['close']);
  });

  it('runs the ends and closes of many connections due in one turn, each connection in order', async () => {
    const ps = await Promise.all(Array.from({ length: 6 }, () => pair()));
    const order: string[] = [];
    ps.forEach((p, i) => {
      p.ds.owner = { onSocketRead: () => {}, onSocketEnd: () => order.push(`end ${i}`), onSocketClose: () => order.push(`close ${i}`) };
    });
    // Half of them close from our side at once: the closes are due in the same turn.
    for (let i = 0; i < 3; i++) ps[i]!.ds.destroy();
    for (let i = 3; i < 6; i++) ps[i]!.client.end();
    await until(() => ps.every((p) => p.events.includes('close')));
    for (let i = 0; i < 6; i++) {
      const mine = order.filter((e) => e.endsWith(` ${i}`));
      expect(mine).toEqual(i < 3 ? [`close ${i}`] : [`end ${i}`, `close ${i}`]);
    }
    expect(order.slice(0, 3)).toEqual(['close 0', 'close 1', 'close 2']);
  });

  it('destroy() lets the close of its fd end the epoll registration: connection after connection, nothing lost and no event for a closed one', async () => {
    const reader = http1BatchReader()!;
    const stale0 = reader.staleEvents();
    for (let i = 0; i < 20; i++) {
      const p = await pair();
      p.client.write(`req ${i}`);
      await until(() => Buffer.concat(p.got).length >= `req ${i}`.length);
      expect(Buffer.concat(p.got).toString()).toBe(`req ${i}`);
      const closed = new Promise<void>((r) => p.client.once('close', () => r()));
      p.ds.destroy();
      // Bytes after the close: the kernel answers with a reset; the freed slot hears nothing.
      p.client.write('late');
      await closed;
    }
    await sleep(20);
    // A registration left behind would report on every turn (level-triggered), thousands of times.
    expect(reader.staleEvents() - stale0).toBeLessThan(5);
  });

  it('a close while a batch is handed out is left to the batch\'s end (no call of its own); one outside a batch is made at once', async () => {
    const reader = http1BatchReader()!;
    const native = (reader as unknown as { reader: { remove: (slot: number, exclusive?: boolean) => void } }).reader;
    const removeCalls: number[] = [];
    const remove = native.remove.bind(native);
    native.remove = (slot, exclusive) => {
      removeCalls.push(slot);
      remove(slot, exclusive);
    };
    cleanups.push(() => {
      native.remove = remove;
    });
    for (let i = 0; i < 5; i++) {
      const p = await pair();
      // Destroyed from inside its read, as a session does at a request's end.
      p.ds.owner = { onSocketRead: () => p.ds.destroy(), onSocketEnd: () => {}, onSocketClose: () => {} };
      const closed = new Promise<void>((r) => p.client.once('close', () => r()));
      p.client.write('bye');
      await closed;
      expect(p.events).toEqual(['close']);
    }
    expect(removeCalls).toEqual([]);
    const q = await pair();
    const closed = new Promise<void>((r) => q.client.once('close', () => r()));
    q.ds.destroy();
    expect(removeCalls).toEqual([q.ds.slot]);
    await closed;
  });

  it('dupFd(): a connection with another descriptor leaves the epoll before its close; the bytes after it are the copy\'s', async () => {
    const reader = http1BatchReader()!;
    const p = await pair();
    p.client.write('before');
    await until(() => Buffer.concat(p.got).length >= 6);
    const copy = p.ds.dupFd();
    expect(p.ds.shared).toBe(true);
    const stale0 = reader.staleEvents();
    p.ds.destroy();
    // Not a FIN: the copy keeps the connection open, and its bytes wait in the kernel for it.
    p.client.write('after');
    await sleep(50);
    expect(reader.staleEvents() - stale0).toBeLessThan(3);
    const s = new net.Socket({ fd: copy, readable: true, writable: true });
    cleanups.push(() => s.destroy());
    expect((await new Promise<Buffer>((r) => s.once('data', r))).toString()).toBe('after');
    expect(Buffer.concat(p.got).toString()).toBe('before');
  });

  it('take() hands the fd over with the connection still open', async () => {
    const p = await pair();
    p.client.write('before');
    await until(() => Buffer.concat(p.got).length >= 6);
    const { fd, rest } = p.ds.take();
    expect(rest).toBeNull();
    expect(p.ds.destroyed).toBe(true);
    // The bytes that arrive from now on are the new owner's.
    const s = new net.Socket({ fd, readable: true, writable: true });
    cleanups.push(() => s.destroy());
    const next = new Promise<Buffer>((r) => s.once('data', r));
    p.client.write('after');
    expect((await next).toString()).toBe('after');
    const back = new Promise<Buffer>((r) => p.client.once('data', r));
    s.write('from node');
    expect((await back).toString()).toBe('from node');
    await sleep(20);
    expect(p.events).toEqual([]);
    expect(Buffer.concat(p.got).toString()).toBe('before');
  });
});

describe('the batch reader\'s epoll', () => {
  // One epoll of the reader's own is what Node's loop polls: it must hold the loop open while a
  // socket is watched (as a poll per socket did) and let the process end once none is.
  it('keeps a process alive while a connection is watched and lets it exit after', async () => {
    const path = await import('node:path');
    const dist = path.resolve(import.meta.dirname, '../../dist');
    const script = `
      const { createEngine } = await import(${JSON.stringify(`${dist}/io/index.js`)});
      const engine = createEngine('native');
      const l = await engine.listen({ kind: 'tcp', host: '127.0.0.1', port: 0 }, 8, (d) => {
        l.close();
        const s = engine.directStream(d);
        s.owner = {
          onSocketRead: (b, o, e) => process.stdout.write('read ' + b.toString('latin1', o, e) + '\\n'),
          onSocketEnd: () => {},
          onSocketClose: () => process.stdout.write('closed\\n'),
        };
        process.stdout.write('accepted\\n');
      });
      process.stdout.write('port ' + l.address.port + '\\n');`;
    const { child, out, exited, port } = await listeningChild(script);
    cleanups.push(() => child.kill('SIGKILL'));
    const client = net.connect(port, '127.0.0.1');
    client.on('error', () => {});
    cleanups.push(() => client.destroy());
    await until(() => out().includes('accepted'));
    // Nothing but the watched connection is left to keep the child's loop going.
    await sleep(300);
    expect(child.exitCode).toBeNull();
    client.end('bye');
    expect(await exited).toBe(0);
    expect(out()).toContain('read bye\n');
    expect(out()).toContain('closed\n');
  });
});
