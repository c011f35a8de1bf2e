// The HTTP/2 sessions' sockets are watched by the addon's own epoll set (native/io/poller.cc),
// not a uv_poll each: these check what libuv used to do for them. A reset reaches the session
// as an error, sessions ended by another session's handler in the same wake hear nothing more
// and their watch numbers serve new connections, and the set keeps Node's loop alive exactly
// while a socket is watched.
import http2 from 'node:http2';
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { H2SessionEnd, type NativeH2Connection } from '../../src/protocols/http2/native_session.js';
import { h2SessionRequest } from '../helpers/http.js';
import { b, listeningChild, nativeH2Server, sleep, until } from './helpers.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await until(() => b.stats().poolChunksInUse === 0);
  expect(b.stats().poolChunksInUse).toBe(0);
});

const PREFACE_AND_SETTINGS = Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]);

async function get(s: http2.ClientHttp2Session, headers: Record<string, string> = {}): Promise<number> {
  return (await h2SessionRequest(s, { path: '/', headers })).status;
}

describe('native HTTP/2 sessions on the addon poller', () => {
  it('ends the session of a peer that resets the connection, as an error', async () => {
    const srv = nativeH2Server({ onStream: (s) => s.respond({ ':status': '200' }, { endStream: true }) });
    cleanups.push(() => srv.close());
    const sock = net.connect(srv.port, '127.0.0.1');
    sock.on('error', () => {});
    cleanups.push(() => sock.destroy());
    await new Promise<void>((r) => sock.once('connect', () => r()));
    sock.write(PREFACE_AND_SETTINGS);
    // The server's SETTINGS came back: the session is up and watched.
    await new Promise<void>((r) => sock.once('data', () => r()));
    expect(srv.conns).toHaveLength(1);
    sock.resetAndDestroy();
    await until(() => srv.ends.length === 1);
    expect(srv.ends).toEqual([H2SessionEnd.RESET]);
  });

  it('sessions destroyed by another one in the same wake hear nothing more; new ones are served', async () => {
    let killer: NativeH2Connection | null = null;
    const srv = nativeH2Server({
      onStream: (s, h, _end, conn) => {
        if (h['x-kill'] !== undefined && killer === null) {
          killer = conn;
          // The other sessions' requests are readable in this same epoll wake (all were written
          // in one tick of this process): their events must not reach them once destroyed.
          for (const c of srv.conns) if (c !== conn) c.destroy();
        }
        s.respond({ ':status': '200' }, { endStream: true });
      },
    });
    cleanups.push(() => srv.close());
    const clients = Array.from({ length: 12 }, () => {
      const s = http2.connect(`http://127.0.0.1:${srv.port}`);
      s.on('error', () => {});
      cleanups.push(() => s.destroy());
      return s;
    });
    await Promise.all(clients.map((s) => new Promise<void>((r) => (s.connected ? r() : s.once('connect', () => r())))));
    await until(() => srv.conns.length === 12);
    const first = await Promise.allSettled(clients.map((s, i) => get(s, i === 5 ? { 'x-kill': '1' } : {})));
    expect(first[5]).toEqual({ status: 'fulfilled', value: 200 });
    await until(() => srv.ends.length === 11);
    expect(srv.ends).toHaveLength(11);
    expect(srv.ends.every((e) => e === H2SessionEnd.LOCAL)).toBe(true);
    // New connections take the freed watch numbers: each gets its own events, and only those.
    const fresh = Array.from({ length: 12 }, () => {
      const s = http2.connect(`http://127.0.0.1:${srv.port}`);
      s.on('error', () => {});
      cleanups.push(() => s.destroy());
      return s;
    });
    const statuses = await Promise.all(fresh.flatMap((s) => [get(s), get(s)]));
    expect(statuses).toEqual(new Array(24).fill(200));
    expect(srv.ends).toHaveLength(11);
  });

  it("keeps the process alive while a session's socket is watched, and not after", async () => {
    const dist = path.resolve(import.meta.dirname, '../../dist');
    const script = `
      const { loadNative } = await import(${JSON.stringify(`${dist}/native.js`)});
      const { NativeH2Connection } = await import(${JSON.stringify(`${dist}/protocols/http2/native_session.js`)});
      const b = loadNative();
      const fd = b.listenTcp('127.0.0.1', 0, 8, false);
      const acc = new b.Acceptor(fd, (cfd) => {
        acc.close();
        new NativeH2Connection(cfd, { maxHeaderListSize: 16384, maxHeaderPairs: 100 }, null, {
          onStream(s) {
            s.respond({ ':status': '200' }, { endStream: true });
            process.stdout.write('answered\\n');
          },
          onIdle() {},
          onEnd: (r) => process.stdout.write('ended ' + r + '\\n'),
        });
      }, () => {});
      process.stdout.write('port ' + b.localAddress(fd).port + '\\n');`;
    const { child, out, exited, port } = await listeningChild(script);
    cleanups.push(() => child.kill('SIGKILL'));
    const s = http2.connect(`http://127.0.0.1:${port}`);
    s.on('error', () => {});
    cleanups.push(() => s.destroy());
    expect(await get(s)).toBe(200);
    // Only the watched socket is left to keep the child's loop going.
    await sleep(300);
    expect(child.exitCode).toBeNull();
    s.close();
    expect(await exited).toBe(0);
    expect(out()).toContain('answered\n');
    expect(out()).toContain(`ended ${H2SessionEnd.DONE}\n`);
  });
});
