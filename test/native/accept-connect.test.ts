// Acceptor and connect against real peers (node net) on loopback and unix sockets.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { b, blackhole, hasIPv6, nodeServer, sleep } from './helpers.js';

const E = os.constants.errno;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'strait-accept-'));

interface Accepted {
  fd: number;
  family: string;
  address: string;
  port: number;
}

function acceptOne(lfd: number): { accepted: Promise<Accepted>; acceptor: InstanceType<typeof b.Acceptor> } {
  let resolve!: (a: Accepted) => void;
  const accepted = new Promise<Accepted>((r) => (resolve = r));
  const acceptor = new b.Acceptor(lfd, (fd, family, address, port) => resolve({ fd, family, address, port }), (code) => {
    throw new Error(code);
  });
  return { accepted, acceptor };
}

function connectNative(host: string, port: number, timeoutMs: number): Promise<{ status: number; fd: number; sync: boolean; ms: number }> {
  return new Promise((resolve) => {
    let returned = false;
    const t0 = performance.now();
    b.connect(host, port, timeoutMs, (status, fd) => resolve({ status, fd, sync: !returned, ms: performance.now() - t0 }));
    returned = true;
  });
}

describe('Acceptor', () => {
  for (const [family, host] of [
    ['IPv4', '127.0.0.1'],
    ['IPv6', '::1'],
  ] as const) {
    it.skipIf(family === 'IPv6' && !hasIPv6)(`accepts ${family} connections with the peer address`, async () => {
      const lfd = b.listenTcp(host, 0, 16, false);
      const { port } = b.localAddress(lfd);
      const { accepted, acceptor } = acceptOne(lfd);
      const c = net.connect({ host, port });
      await new Promise((r) => c.once('connect', r));
      const a = await accepted;
      expect(a).toMatchObject({ family, address: host, port: c.localPort });
      // The accepted fd is a live, non-blocking socket the caller owns: hand it to node and talk.
      const s = new net.Socket({ fd: a.fd, readable: true, writable: true });
      const got = new Promise<string>((r) => c.once('data', (d) => r(String(d))));
      s.write('hello');
      expect(await got).toBe('hello');
      s.destroy();
      c.destroy();
      acceptor.close();
    });
  }

  it('close() stops accepting and frees the port; close is idempotent', async () => {
    const lfd = b.listenTcp('127.0.0.1', 0, 16, false);
    const { port } = b.localAddress(lfd);
    const { acceptor } = acceptOne(lfd);
    expect(() => b.listenTcp('127.0.0.1', port, 16, false)).toThrow(/EADDRINUSE/);
    acceptor.close();
    acceptor.close();
    const again = b.listenTcp('127.0.0.1', port, 16, false); // the port is free again
    b.closeFd(again);
    // And nothing listens there: a connect is refused.
    const r = await connectNative('127.0.0.1', port, 1000);
    expect(r.status).toBe(-E.ECONNREFUSED);
  });

  it('pause() leaves connections in the backlog until resume()', async () => {
    const lfd = b.listenTcp('127.0.0.1', 0, 16, false);
    const { port } = b.localAddress(lfd);
    const { accepted, acceptor } = acceptOne(lfd);
    acceptor.pause();
    acceptor.pause();
    let got = false;
    void accepted.then(() => (got = true));
    const c = net.connect({ host: '127.0.0.1', port });
    await new Promise((r) => c.once('connect', r)); // the kernel completed the handshake
    await sleep(100);
    expect(got).toBe(false);
    acceptor.resume();
    const a = await accepted;
    expect(a.port).toBe(c.localPort);
    b.closeFd(a.fd);
    c.destroy();
    acceptor.close();
  });

  it('accepts a burst of connections (more than one batch per wake-up)', async () => {
    const lfd = b.listenTcp('127.0.0.1', 0, 512, false);
    const { port } = b.localAddress(lfd);
    const fds: number[] = [];
    const N = 200;
    let all!: () => void;
    const done = new Promise<void>((r) => (all = r));
    const acceptor = new b.Acceptor(lfd, (fd) => fds.push(fd) === N && all(), () => {});
    const clients = Array.from({ length: N }, () => net.connect({ host: '127.0.0.1', port }).on('error', () => {}));
    await done;
    expect(new Set(fds).size).toBe(N);
    for (const fd of fds) b.closeFd(fd);
    for (const c of clients) c.destroy();
    acceptor.close();
  });

  it('hands the connections of one wake-up over in one callback scope; a throw for one reaches uncaughtException and the rest still arrive', async () => {
    // A child, so that the uncaught exception is its own; see fixtures/accept_batch.mjs.
    const fixture = fileURLToPath(new URL('./fixtures/accept_batch.mjs', import.meta.url));
    const child = spawn(process.execPath, [fixture], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    const code = await new Promise<number | null>((r) => child.once('exit', r));
    expect(code).toBe(0);
    const report = JSON.parse(out) as { accepted: number; distinctFds: number; peersMatch: boolean; errors: string[]; order: string[] };
    expect([report.accepted, report.distinctFds, report.peersMatch]).toEqual([20, 20, true]);
    expect(report.errors).toEqual(['boom']);
    const at = (tag: string) => report.order.indexOf(tag);
    // The throw closed the scope: the microtasks queued until then ran before the next accept.
    expect(at('micro-2')).toBeLessThan(at('accept-3'));
    // After it, one scope for the rest: their microtasks run once the last is handed over.
    expect(at('micro-3')).toBeGreaterThan(at('accept-19'));
    expect(report.order.filter((t) => t.startsWith('micro-'))).toHaveLength(20);
  });

  it.each([
    ['', '0'],
    [' (batch mode)', '1'],
  ])('reports EMFILE through onError and backs off instead of spinning%s', async (_mode, batch) => {
    // A child with a low fd limit floods its own native listener; see fixtures/emfile.mjs.
    const fixture = fileURLToPath(new URL('./fixtures/emfile.mjs', import.meta.url));
    const child = spawn('/bin/sh', ['-c', `ulimit -n 64 && exec "${process.execPath}" "${fixture}"`], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, ACCEPT_BATCH: batch },
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    const code = await new Promise<number | null>((r) => child.once('exit', r));
    expect(code).toBe(0);
    const report = JSON.parse(out) as { errors: string[]; accepted: number; cpuMs: number; wallMs: number; acceptedAfter: number };
    expect(report.errors[0]).toBe('EMFILE');
    expect(report.accepted).toBeGreaterThan(0);
    // Errors reported ~10/s (100 ms back-off), not thousands; CPU far below the wall time.
    expect(report.errors.length).toBeLessThan(report.wallMs / 50);
    expect(report.cpuMs).toBeLessThan(report.wallMs / 2);
    // Once fds are free again, the pending connections are accepted.
    expect(report.acceptedAfter).toBeGreaterThan(0);
  });
});

// TCP_NODELAY of this process's sockets, read by a Python child through pidfd_getfd(2) (Linux
// 5.6+, and ptrace rights over us: root, as CI runs). Node has no getsockopt.
const SOCKOPT_PY = `
import ctypes, os, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
pfd = os.pidfd_open(int(sys.argv[1]))
clear = sys.argv[2] == "clear"
out = []
for fd in map(int, sys.argv[3:]):
    r = libc.syscall(438, pfd, fd, 0)
    if r < 0:
        print("ERR " + os.strerror(ctypes.get_errno()))
        sys.exit(0)
    s = socket.socket(fileno=r)
    if clear:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
    out.append(str(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)))
    s.close()
print(" ".join(out))
`;
/** "1 0 ..." per fd; `clear` turns it off first (the same socket: the child's copy shares it). */
function noDelayOf(fds: number[], clear = false): string {
  const r = spawnSync('python3', ['-c', SOCKOPT_PY, String(process.pid), clear ? 'clear' : 'read', ...fds.map(String)], { encoding: 'utf8' });
  return r.error ? `ERR ${r.error.message}` : r.status !== 0 ? `ERR ${r.stderr.trim().split('\n').pop()}` : r.stdout.trim();
}
const noDelaySkip = (() => {
  const lfd = b.listenTcp('127.0.0.1', 0, 1, false);
  const got = noDelayOf([lfd]);
  b.closeFd(lfd);
  return got.startsWith('ERR') ? `pidfd_getfd: ${got.slice(4)}` : '';
})();

/** The TCP_NODELAY of five connections an Acceptor on `lfd` takes; `set` runs once it is set up, before they connect. */
async function acceptedNoDelay(lfd: number, set: () => void): Promise<string> {
  const { port } = b.localAddress(lfd);
  const fds: number[] = [];
  const acceptor = new b.Acceptor(lfd, (fd) => void fds.push(fd), () => {});
  set();
  const clients = Array.from({ length: 5 }, () => net.connect({ host: '127.0.0.1', port }).on('error', () => {}));
  while (fds.length < 5) await sleep(5);
  const got = noDelayOf(fds);
  for (const fd of fds) b.closeFd(fd);
  for (const c of clients) c.destroy();
  acceptor.close();
  return got;
}

describe.skipIf(!!noDelaySkip)(noDelaySkip ? `TCP_NODELAY (skipped: ${noDelaySkip})` : 'TCP_NODELAY', () => {
  it('accepted TCP sockets have it: the acceptor sets it on the listener, which they inherit it from', async () => {
    const lfd = b.listenTcp('127.0.0.1', 0, 64, false);
    expect(noDelayOf([lfd])).toBe('0');
    // The acceptor sets it on the listener (here, and on a listener inherited in a hot restart).
    expect(await acceptedNoDelay(lfd, () => expect(noDelayOf([lfd])).toBe('1'))).toBe('1 1 1 1 1');
  });

  it('where the first accepted socket shows no inherited option, every accepted socket gets its own', async () => {
    const lfd = b.listenTcp('127.0.0.1', 0, 64, false);
    // As on a kernel that does not copy it: the listener's option is off again before any accept.
    expect(await acceptedNoDelay(lfd, () => expect(noDelayOf([lfd], true)).toBe('0'))).toBe('1 1 1 1 1');
  });
});

describe('connect', () => {
  it('connects over IPv4, asynchronously, with a usable fd', async () => {
    const peer = await nodeServer({ host: '127.0.0.1' }, (s) => s.end('hi'));
    const ep = peer.endpoint as { host: string; port: number };
    const r = await connectNative(ep.host, ep.port, 1000);
    expect(r.sync).toBe(false);
    expect(r.status).toBe(0);
    expect(b.localAddress(r.fd)).toMatchObject({ family: 'IPv4', address: '127.0.0.1' });
    const s = new net.Socket({ fd: r.fd, readable: true, writable: true });
    const got = await new Promise<string>((res) => s.once('data', (d) => res(String(d))));
    expect(got).toBe('hi');
    s.destroy();
    await peer.close();
  });

  it.skipIf(!hasIPv6)('connects over IPv6', async () => {
    const peer = await nodeServer({ host: '::1' }, (s) => s.end());
    const r = await connectNative('::1', (peer.endpoint as { port: number }).port, 1000);
    expect(r.status).toBe(0);
    expect(b.localAddress(r.fd).family).toBe('IPv6');
    b.closeFd(r.fd);
    await peer.close();
  });

  it('connects to a unix socket path; a missing path is -ENOENT', async () => {
    const p = path.join(tmp, 'up.sock');
    const peer = await nodeServer({ path: p }, (s) => s.end());
    const r = await connectNative(p, -1, 1000);
    expect(r.status).toBe(0);
    expect(b.localAddress(r.fd).family).toBe('unix');
    b.closeFd(r.fd);
    await peer.close();
    const missing = await connectNative(path.join(tmp, 'nope.sock'), -1, 1000);
    expect(missing.sync).toBe(false);
    expect(missing).toMatchObject({ status: -E.ENOENT, fd: -1 });
  });

  it('reports -ECONNREFUSED from a port that is bound but not listening', async () => {
    // A connected client socket holds its local port without listening on it.
    const peer = await nodeServer({ host: '127.0.0.1' }, () => {});
    const holder = net.connect((peer.endpoint as { port: number }).port, '127.0.0.1');
    await new Promise((r) => holder.once('connect', r));
    const r = await connectNative('127.0.0.1', holder.localPort!, 1000);
    expect(r).toMatchObject({ status: -E.ECONNREFUSED, fd: -1, sync: false });
    expect(b.errnoName(r.status)).toBe('ECONNREFUSED');
    holder.destroy();
    await peer.close();
  });

  it('times out with -ETIMEDOUT against a full accept queue', async () => {
    const hole = await blackhole();
    const r = await connectNative('127.0.0.1', hole.port, 150);
    hole.close();
    expect(r).toMatchObject({ status: -E.ETIMEDOUT, fd: -1 });
    expect(r.ms).toBeGreaterThanOrEqual(140);
    expect(r.ms).toBeLessThan(900); // the kernel's own SYN retry is 1 s: ours fired first
  });

  it('cancel() closes the attempt and the callback never runs', async () => {
    const hole = await blackhole();
    let called = false;
    const req = b.connect('127.0.0.1', hole.port, 100, () => (called = true));
    req.cancel();
    req.cancel();
    await sleep(250);
    expect(called).toBe(false);
    // A completed request ignores cancel().
    const peer = await nodeServer({ host: '127.0.0.1' }, () => {});
    let fd = -1;
    await new Promise<void>((r) => {
      const done = b.connect('127.0.0.1', (peer.endpoint as { port: number }).port, 0, (_s, f) => {
        fd = f;
        r();
      });
      setTimeout(() => done.cancel(), 100);
    });
    await sleep(150);
    expect(b.localAddress(fd).family).toBe('IPv4'); // still open: cancel after completion is a no-op
    b.closeFd(fd);
    hole.close();
    await peer.close();
  });

  it('runs callbacks through MakeCallback: microtasks queued inside run before the next I/O callback', async () => {
    const peer = await nodeServer({ host: '127.0.0.1' }, () => {});
    const port = (peer.endpoint as { port: number }).port;
    const order: string[] = [];
    await new Promise<void>((resolve) => {
      let n = 0;
      for (const tag of ['a', 'b']) {
        b.connect('127.0.0.1', port, 0, (_s, fd) => {
          order.push(tag);
          void Promise.resolve().then(() => order.push(`${tag}-micro`));
          b.closeFd(fd);
          if (++n === 2) setImmediate(resolve);
        });
      }
    });
    expect(order).toEqual(['a', 'a-micro', 'b', 'b-micro']);
    await peer.close();
  });
});
