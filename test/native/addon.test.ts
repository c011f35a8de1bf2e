import net from 'node:net';
import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { native, NATIVE_CHUNK_SIZE } from '../../src/native.js';
import { closeServer, readAll } from '../helpers/net.js';

const b = native();

function connectNative(port: number, timeoutMs = 1000): Promise<{ status: number; fd: number; sync: boolean }> {
  return new Promise((resolve) => {
    let returned = false;
    b.connect('127.0.0.1', port, timeoutMs, (status, fd) => resolve({ status, fd, sync: !returned }));
    returned = true;
  });
}

describe('native addon', () => {
  it('reports bind failures with the errno name as code', async () => {
    const s = net.createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as net.AddressInfo).port;
    try {
      expect(() => b.listenTcp('127.0.0.1', port, 16, false)).toThrow(/EADDRINUSE/);
      try {
        b.listenTcp('127.0.0.1', port, 16, false);
      } catch (e) {
        expect((e as NodeJS.ErrnoException).code).toBe('EADDRINUSE');
      }
    } finally {
      await closeServer(s);
    }
    expect(() => b.listenTcp('not-an-ip', 0, 16, false)).toThrow(/bad address/);
  });

  it('never calls the connect callback synchronously, and maps errno names', async () => {
    const fd = b.listenTcp('127.0.0.1', 0, 16, false);
    const port = b.localAddress(fd).port;
    b.closeFd(fd); // nothing listens there now
    const r = await connectNative(port);
    expect(r.sync).toBe(false);
    expect(r.status).toBe(-os.constants.errno.ECONNREFUSED);
    expect(b.errnoName(r.status)).toBe('ECONNREFUSED');
  });

  it('accepts, connects and splices; an idle pipe holds no pooled buffer', async () => {
    // upstream: a node echo server; downstream: a node client; the pipe in between is native.
    const echo = net.createServer({ allowHalfOpen: true }, (s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    const upPort = (echo.address() as net.AddressInfo).port;
    const lfd = b.listenTcp('127.0.0.1', 0, 16, false);
    const lport = b.localAddress(lfd).port;
    const closed = new Promise<[number, number, number]>((resolve) => {
      const acceptor = new b.Acceptor(
        lfd,
        (dfd, family, address) => {
          expect(family).toBe('IPv4');
          expect(address).toBe('127.0.0.1');
          acceptor.close();
          b.connect('127.0.0.1', upPort, 1000, (status, ufd) => {
            expect(status).toBe(0);
            new b.Pipe(dfd, ufd, { idleTimeoutMs: 0, highWaterMark: 1 << 20 }, (...args) => resolve(args as [number, number, number]));
          });
        },
        () => {},
      );
    });
    const c = net.connect({ port: lport, host: '127.0.0.1', allowHalfOpen: true });
    const payload = Buffer.alloc(3 * NATIVE_CHUNK_SIZE + 17, 7);
    const got = readAll(c);
    c.write(payload.subarray(0, 100));
    await new Promise((r) => c.once('data', r));
    // Between messages the pipe is idle: every chunk it took is back in the pool.
    expect(b.stats().poolChunksInUse).toBe(0);
    c.end(payload.subarray(100));
    expect((await got).length).toBe(payload.length);
    const [reason, a2b, b2a] = await closed;
    expect(reason).toBe(0); // DONE: both halves closed cleanly
    expect(a2b).toBe(payload.length);
    expect(b2a).toBe(payload.length);
    expect(b.stats().pipesActive).toBe(0);
    expect(b.stats().writevCalls).toBeGreaterThan(0);
    await closeServer(echo);
    // Acceptor.close() released the port.
    const again = b.listenTcp('127.0.0.1', lport, 16, false);
    b.closeFd(again);
  });

  it('serves unix sockets both ways', async () => {
    const dir = os.tmpdir();
    const path = `${dir}/strait-native-${process.pid}.sock`;
    const lfd = b.listenUnix(path, 16);
    expect(b.localAddress(lfd)).toEqual({ family: 'unix', address: path, port: 0 });
    const accepted = new Promise<number>((resolve) => {
      const a = new b.Acceptor(lfd, (fd, family) => {
        expect(family).toBe('unix');
        a.close();
        resolve(fd);
      }, () => {});
    });
    const conn = new Promise<number>((resolve) => b.connect(path, -1, 1000, (status, fd) => (expect(status).toBe(0), resolve(fd))));
    const [fa, fb] = await Promise.all([accepted, conn]);
    // Splice the two ends of one connection into each other: bytes written on a socketpair-like
    // loop would echo forever, so just close and check the pipe reports DONE on close().
    const done = new Promise<number>((resolve) => {
      const p = new b.Pipe(fa, fb, { idleTimeoutMs: 0, highWaterMark: 65536 }, (reason) => resolve(reason));
      p.close();
    });
    expect(await done).toBe(4); // LOCAL
  });

  it('fires the idle timeout when no byte moves', async () => {
    const server = net.createServer((s) => s.resume());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const lfd = b.listenTcp('127.0.0.1', 0, 16, false);
    const lport = b.localAddress(lfd).port;
    const t0 = Date.now();
    const reason = new Promise<number>((resolve) => {
      const a = new b.Acceptor(lfd, (dfd) => {
        a.close();
        b.connect('127.0.0.1', port, 1000, (_s, ufd) => new b.Pipe(dfd, ufd, { idleTimeoutMs: 150, highWaterMark: 65536 }, (r) => resolve(r)));
      }, () => {});
    });
    const c = net.connect({ port: lport, host: '127.0.0.1' });
    c.on('error', () => {});
    expect(await reason).toBe(1); // IDLE_TIMEOUT
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
    c.destroy();
    await closeServer(server);
  });
});
