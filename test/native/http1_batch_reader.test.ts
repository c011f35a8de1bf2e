// src/protocols/http1/batch_reader.ts over native/io/batch_reader.cc: sockets read by the addon,
// every read of a loop turn handed to JavaScript in one call. Real sockets on 127.0.0.1; the
// accepted side never reads through Node (pauseOnConnect), as the HTTP/1 data path creates them.
import crypto from 'node:crypto';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { loadNative } from '../../src/native.js';
import { Http1BatchReader } from '../../src/protocols/http1/batch_reader.js';
import { directFd, sendTo } from '../../src/protocols/http1/send.js';

const b = loadNative();
const servers: net.Server[] = [];
const sockets: net.Socket[] = [];

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

/** A listener whose accepted sockets are not read by Node, and `n` clients connected to it. */
async function pairs(n: number): Promise<Array<{ server: net.Socket; client: net.Socket }>> {
  const srv = net.createServer({ pauseOnConnect: true });
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  const accepted: net.Socket[] = [];
  const all = new Promise<void>((r) =>
    srv.on('connection', (s) => {
      accepted.push(s);
      if (accepted.length === n) r();
    }),
  );
  const clients: net.Socket[] = [];
  for (let i = 0; i < n; i++) {
    const c = net.connect(port, '127.0.0.1');
    c.on('error', () => {});
    await new Promise<void>((r) => c.once('connect', () => r()));
    clients.push(c);
  }
  await all;
  // Accepted in connect order (one connect at a time above), so index i pairs with client i.
  sockets.push(...accepted, ...clients);
  return accepted.map((server, i) => ({ server, client: clients[i]! }));
}

/** Resolves once `cond` holds, checking on every turn (no deadline here: vitest's applies). */
async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setImmediate(r));
}

describe('Http1BatchReader', () => {
  it('hands the reads of many sockets to JavaScript in fewer calls than reads, each to its own socket', async () => {
    const reader = new Http1BatchReader(b);
    const ps = await pairs(64);
    const got = ps.map(() => [] as Buffer[]);
    ps.forEach((p, i) => expect(reader.attach(p.server, (d) => got[i]!.push(d))).toBe(true));
    const sent = ps.map((_, i) => crypto.randomBytes(100 + i * 37));
    // All written in one tick: the next poll finds every socket readable.
    ps.forEach((p, i) => p.client.write(sent[i]!));
    await until(() => got.every((g, i) => Buffer.concat(g).length >= sent[i]!.length));
    got.forEach((g, i) => expect(Buffer.concat(g).equals(sent[i]!)).toBe(true));
    expect(reader.entries).toBeGreaterThanOrEqual(64);
    // One call per turn, not one per read.
    expect(reader.batches).toBeLessThan(reader.entries);
  });

  it('turns EOF into the socket\'s end and a reset into an error with the errno name', async () => {
    const reader = new Http1BatchReader(b);
    const [p, q] = await pairs(2);
    const bytes: Buffer[] = [];
    reader.attach(p!.server, (d) => bytes.push(d));
    reader.attach(q!.server, () => {});
    p!.server.allowHalfOpen = true;
    const ended = new Promise<void>((r) => p!.server.once('end', () => r()));
    p!.client.end('last words');
    await ended;
    expect(Buffer.concat(bytes).toString()).toBe('last words');
    // Half-open: our side still writes after the peer's FIN.
    const back = new Promise<Buffer>((r) => p!.client.once('data', r));
    p!.server.write('still here');
    expect((await back).toString()).toBe('still here');

    const failed = new Promise<NodeJS.ErrnoException>((r) => q!.server.once('error', r));
    const closed = new Promise<void>((r) => q!.server.once('close', () => r()));
    q!.client.resetAndDestroy();
    const err = await failed;
    expect(err.code).toBe('ECONNRESET');
    expect(err.syscall).toBe('read');
    await closed;
  });

  it('pause() leaves a fast sender\'s bytes in the kernel; resume() delivers them all, in order', async () => {
    const reader = new Http1BatchReader(b);
    const [p] = await pairs(1);
    const chunks: Buffer[] = [];
    let n = 0;
    reader.attach(p!.server, (d) => {
      chunks.push(d);
      n += d.length;
    });
    p!.server.pause();
    const big = crypto.randomBytes(16 * 1024 * 1024);
    p!.client.write(big);
    // The client's socket backs up: nobody reads the other end.
    await until(() => p!.client.writableLength > 0);
    await new Promise((r) => setImmediate(r));
    expect(n).toBe(0);
    p!.server.resume();
    await until(() => n >= big.length);
    expect(Buffer.concat(chunks).equals(big)).toBe(true);
  });

  it('a write the kernel cannot take at once (EAGAIN) queues the rest behind it, in order', async () => {
    const reader = new Http1BatchReader(b);
    const [p] = await pairs(1);
    reader.attach(p!.server, () => {});
    const fd = directFd(p!.server);
    expect(fd).toBeGreaterThanOrEqual(0);
    p!.client.pause();
    const big = crypto.randomBytes(32 * 1024 * 1024);
    // More than the socket buffers hold: send(2) takes part, the stream queues the rest.
    expect(sendTo(p!.server, fd, big)).toBe(false);
    expect(p!.server.writableLength).toBeGreaterThan(0);
    // Queued behind the remainder, not sent ahead of it.
    sendTo(p!.server, fd, Buffer.from('tail'));
    const chunks: Buffer[] = [];
    let n = 0;
    p!.client.on('data', (d: Buffer) => {
      chunks.push(d);
      n += d.length;
    });
    p!.client.resume();
    await until(() => n >= big.length + 4);
    expect(Buffer.concat(chunks).equals(Buffer.concat([big, Buffer.from('tail')]))).toBe(true);
  });

  it('release() gives the socket back to Node\'s own reads (an HTTP/2 hand-off)', async () => {
    const reader = new Http1BatchReader(b);
    const [p] = await pairs(1);
    const first: Buffer[] = [];
    reader.attach(p!.server, (d) => first.push(d));
    p!.client.write('PRI * HTTP/2.0\r\n');
    await until(() => first.length > 0);
    reader.release(p!.server);
    const second = new Promise<Buffer>((r) => p!.server.once('data', r));
    p!.server.resume();
    p!.client.write('\r\nSM\r\n\r\n');
    expect((await second).toString()).toBe('\r\nSM\r\n\r\n');
    expect(Buffer.concat(first).toString()).toBe('PRI * HTTP/2.0\r\n');
  });

  it('release() from inside the reader\'s callback loses no byte: the rest comes through Node, in order', async () => {
    const reader = new Http1BatchReader(b);
    const [p] = await pairs(1);
    const big = crypto.randomBytes(400 * 1024);
    const seen: Buffer[] = [];
    let released = false;
    reader.attach(p!.server, (d) => {
      seen.push(d);
      if (!released) {
        // Inside the batch call, with more of this socket's bytes read or still in the kernel.
        released = true;
        reader.release(p!.server);
      }
    });
    p!.server.pause();
    p!.client.write(big);
    // Everything is in the kernel before the reader looks.
    await until(() => p!.client.writableLength === 0);
    p!.server.resume();
    await until(() => released);
    const viaNode: Buffer[] = [];
    let n = 0;
    p!.server.on('data', (d: Buffer) => {
      viaNode.push(d);
      n += d.length;
    });
    p!.server.resume();
    await until(() => seen[0]!.length + n >= big.length);
    expect(seen.length).toBe(1);
    expect(Buffer.concat([seen[0]!, ...viaNode]).equals(big)).toBe(true);
  });

  it('a destroyed socket stops being read at once: bytes after it stay in the kernel for whoever holds a dup', async () => {
    const reader = new Http1BatchReader(b);
    const [p] = await pairs(1);
    const seen: Buffer[] = [];
    reader.attach(p!.server, (d) => seen.push(d));
    // A hot restart hands a dup of the fd on, then destroys our socket.
    const copy = b.upgrade.dup((p!.server as unknown as { _handle: { fd: number } })._handle.fd);
    p!.server.destroy();
    p!.client.write('next request');
    const adopted = new net.Socket({ fd: copy, readable: true, writable: true });
    sockets.push(adopted);
    const got = await new Promise<Buffer>((r) => adopted.once('data', r));
    expect(got.toString()).toBe('next request');
    expect(seen.length).toBe(0);
  });

  it('a socket removed while its entries wait later in the batch: they become -1, and the next taker of its slot number gets none of them', async () => {
    const Reader = b.BatchReader!;
    const arena = Buffer.alloc(1024 * 1024);
    const out = new Int32Array(3 * 64);
    const ps = await pairs(5);
    const fdOf = (s: net.Socket) => (s as unknown as { _handle: { fd: number } })._handle.fd;
    let slots: number[] = [];
    const removed = new Set<number>();
    let taker = -1;
    let kept = -1;
    // [slot, length] of every entry handed out after the removals, in the batch that had them.
    const after: Array<[number, number]> = [];
    // Armed for the second round: each slot then has had entries in an earlier batch too.
    let armed = false;
    let firstRound = 0;
    let removalBatch = 0;
    let batches = 0;
    const raw = new Reader(arena, out, (n) => {
      batches++;
      for (let i = 0; i < n; i++) {
        const slot = out[3 * i]!;
        if (!armed) {
          if (out[3 * i + 2]! > 0) firstRound++;
          continue;
        }
        if (removed.size > 0 && batches === removalBatch) after.push([slot, out[3 * i + 2]!]);
        if (removed.size > 0 || slot < 0) continue;
        removalBatch = batches;
        // The first entry: every other socket's entries are still ahead in this batch.
        kept = slot;
        for (const s of slots) if (s !== slot) removed.add(s);
        for (const s of removed) raw.remove(s);
        taker = raw.add(fdOf(ps[4]!.server));
      }
    });
    slots = ps.slice(0, 4).map((p) => raw.add(fdOf(p.server)));
    ps.slice(0, 4).forEach((p, i) => p.client.write(Buffer.alloc(1000 + i, 0x61 + i)));
    await until(() => firstRound === 4);
    armed = true;
    // A writable entry before the read for each socket (two entries of one slot in a row).
    for (const s of slots) raw.watchWrite!(s);
    ps.slice(0, 4).forEach((p, i) => p.client.write(Buffer.alloc(1000 + i, 0x61 + i)));
    await until(() => removed.size > 0);
    await new Promise((r) => setTimeout(r, 50));
    expect(removed.has(taker)).toBe(true);
    // Three sockets' writable and read entries, all cleared; none reached the taker's number.
    expect(after.filter(([slot]) => slot === -1).length).toBeGreaterThanOrEqual(6);
    expect(after.every(([slot]) => slot === -1 || slot === kept)).toBe(true);
    raw.remove(taker);
    for (const s of slots) raw.remove(s);
  });

  it('BatchReader.calls name a reader by its number: each reader hears only of its own sockets; a wrong number throws', async () => {
    const Reader = b.BatchReader!;
    const calls = Reader.calls!;
    const make = () => {
      const arena = Buffer.alloc(64 * 1024);
      const out = new Int32Array(3 * 16);
      const reads: string[] = [];
      const raw = new Reader(arena, out, (n) => {
        for (let i = 0; i < n; i++) if (out[3 * i + 2]! > 0) reads.push(arena.toString('latin1', out[3 * i + 1]!, out[3 * i + 1]! + out[3 * i + 2]!));
      });
      return { raw, reads };
    };
    const one = make();
    const two = make();
    const rid1 = one.raw.rid!();
    const rid2 = two.raw.rid!();
    expect(typeof rid1).toBe('number');
    expect(rid2).not.toBe(rid1);
    const ps = await pairs(2);
    const fdOf = (s: net.Socket) => (s as unknown as { _handle: { fd: number } })._handle.fd;
    const s1 = calls.add(rid1, fdOf(ps[0]!.server));
    // The prototype's method reads its object the slow way and does the same.
    const s2 = two.raw.add(fdOf(ps[1]!.server));
    ps[0]!.client.write('to one');
    ps[1]!.client.write('to two');
    await until(() => one.reads.length > 0 && two.reads.length > 0);
    expect(one.reads.join('')).toBe('to one');
    expect(two.reads.join('')).toBe('to two');
    // A fraction, a later generation of the same slot and a non-number name no reader.
    expect(() => calls.pause(rid1 + 0.5, s1)).toThrow(/^BatchReader.calls: no reader has the number/);
    expect(() => calls.pause(rid1 + 2 ** 20, s1)).toThrow(/^BatchReader.calls: no reader has the number/);
    expect(() => calls.pause('1' as unknown as number, s1)).toThrow(/must be a number/);
    calls.pause(rid1, s1);
    calls.remove(rid1, s1);
    calls.remove(rid2, s2);
    // remove() is idempotent; a slot number of nothing is refused by pause.
    calls.remove(rid1, s1);
    expect(() => calls.pause(rid1, s1)).toThrow(/no such slot/);
  });
});
