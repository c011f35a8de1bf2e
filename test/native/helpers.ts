// Shared set-up for the addon tests: real sockets on loopback, port 0 always.
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import http2 from 'node:http2';
import net from 'node:net';
import { loadNative, type NativeBinding, type NativePipe, type PipeCloseReason } from '../../src/native.js';
import { NativeH2ClientConnection, NativeH2Connection, type H2Headers, type H2SessionEnd, type NativeH2Settings, type NativeH2Stream } from '../../src/protocols/http2/native_session.js';

export const b: NativeBinding = loadNative();
export const KiB = 1024;
export const MiB = 1024 * 1024;

/** True when ::1 can be bound here (containers without IPv6 skip the IPv6 cases). */
export const hasIPv6: boolean = (() => {
  try {
    b.closeFd(b.listenTcp('::1', 0, 1, false));
    return true;
  } catch {
    return false;
  }
})();

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Runs `script` (an ES module) in a child node that prints "port <n>" once it listens: the child,
 * its stdout so far, its exit code once it exits, and the port. The caller kills it in cleanup.
 */
export async function listeningChild(script: string): Promise<{ child: ChildProcess; out: () => string; exited: Promise<number | null>; port: number }> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  await until(() => /port \d+/.test(out) || child.exitCode !== null);
  const m = /port (\d+)/.exec(out);
  if (!m) throw new Error(`the child printed no port: ${out}`);
  return { child, out: () => out, exited, port: Number(m[1]) };
}

/** Polls `cond` every 10 ms until it holds or `tries` polls have passed; the caller asserts after. */
export async function until(cond: () => boolean, tries = 500): Promise<void> {
  for (let i = 0; i < tries && !cond(); i++) await sleep(10);
}

export interface NativeH2TestServer {
  port: number;
  conns: NativeH2Connection[];
  ends: H2SessionEnd[];
  close(): void;
}

/** A client stream user's body and end passed to a downstream stream as they come (the relays of the HTTP/2 tests extend it with their head handling). */
export abstract class DownRelay {
  constructor(protected readonly down: NativeH2Stream) {}
  h2Data(d: Buffer): boolean {
    this.down.write(d);
    return false;
  }
  h2Trailers(): void {}
  h2End(): void {
    this.down.end();
  }
  h2Close(): void {}
  h2Drain(): void {}
}

/** An addon HTTP/2 client connection (no settings, handlers that do nothing) to 127.0.0.1:`port` over the addon's connect(). */
export async function nativeH2Client(port: number): Promise<NativeH2ClientConnection> {
  const fd = await new Promise<number>((resolve, reject) => {
    b.connect('127.0.0.1', port, 5000, (status, fd) => (status === 0 ? resolve(fd) : reject(new Error(`connect ${status}`))));
  });
  return new NativeH2ClientConnection(fd, {}, { onSettings() {}, onGoaway() {}, onEnd() {} });
}

/**
 * A loopback listener whose connections run the addon's HTTP/2 server session. Give `onStream`
 * (headers as an object; the connection is passed for tests that act on it) or `onStreamFlat`
 * (the addon's flat list). The caller closes it.
 */
export function nativeH2Server(
  on: {
    onStream?: (s: NativeH2Stream, h: H2Headers, endStream: boolean, conn: NativeH2Connection) => void;
    onStreamFlat?: (s: NativeH2Stream, flat: string, endStream: boolean, neverIndexed?: string) => void;
  },
  settings: Partial<NativeH2Settings> = {},
): NativeH2TestServer {
  const fd = b.listenTcp('127.0.0.1', 0, 64, false);
  const conns: NativeH2Connection[] = [];
  const ends: H2SessionEnd[] = [];
  const onStream = on.onStream;
  const acc = new b.Acceptor(
    fd,
    (cfd) => {
      // No bytes are handed in with the fd, so no stream can arrive before `c` is set.
      let c: NativeH2Connection | null = null;
      c = new NativeH2Connection(cfd, { maxHeaderListSize: 16 * KiB, maxHeaderPairs: 100, ...settings }, null, {
        onStream: onStream
          ? (s, h, end) => onStream(s, h, end, c!)
          : () => {
              throw new Error('onStreamFlat is given, so onStream is never called');
            },
        onStreamFlat: on.onStreamFlat,
        onIdle() {},
        onEnd: (r) => ends.push(r),
      });
      conns.push(c);
    },
    () => {},
  );
  return {
    port: b.localAddress(fd).port,
    conns,
    ends,
    close() {
      acc.close();
      for (const c of conns) c.destroy();
    },
  };
}

export type Endpoint = { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; path: string };

export function netConnectOpts(e: Endpoint): net.NetConnectOpts {
  return e.kind === 'tcp' ? { host: e.host, port: e.port } : { path: e.path };
}

/** A node net server (the real peer); allowHalfOpen so half-close can be observed. */
export async function nodeServer(at: { host: string } | { path: string }, onConn: (s: net.Socket) => void): Promise<{ server: net.Server; endpoint: Endpoint; sockets: Set<net.Socket>; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    onConn(s);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    if ('path' in at) server.listen(at.path, resolve);
    else server.listen(0, at.host, resolve);
  });
  const addr = server.address();
  const endpoint: Endpoint = typeof addr === 'string' ? { kind: 'unix', path: addr } : { kind: 'tcp', host: addr!.address, port: addr!.port };
  return {
    server,
    endpoint,
    sockets,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

export function connectClient(e: Endpoint): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ ...netConnectOpts(e), allowHalfOpen: true }, () => resolve(s));
    s.once('error', reject);
  });
}

export interface PipeClosed {
  reason: PipeCloseReason;
  a2b: number;
  b2a: number;
}

export interface PipeRun {
  pipe: NativePipe;
  closed: Promise<PipeClosed>;
}

/**
 * The proxy under test, in this process: a native listener + Acceptor; each accepted fd is
 * connected natively to `upstream` and spliced with a native Pipe.
 */
export function startProxy(
  listen: { host: string } | { path: string },
  upstream: Endpoint,
  opts: { idleTimeoutMs?: number; highWaterMark?: number } = {},
): { endpoint: Endpoint; nextPipe(): Promise<PipeRun>; close(): void } {
  const lfd = 'path' in listen ? b.listenUnix(listen.path, 128) : b.listenTcp(listen.host, 0, 128, false);
  const local = b.localAddress(lfd);
  const endpoint: Endpoint = local.family === 'unix' ? { kind: 'unix', path: local.address } : { kind: 'tcp', host: local.address, port: local.port };
  const ready: PipeRun[] = [];
  const waiting: ((p: PipeRun) => void)[] = [];
  const acceptor = new b.Acceptor(
    lfd,
    (dfd) => {
      const [host, port] = upstream.kind === 'tcp' ? [upstream.host, upstream.port] : [upstream.path, -1];
      b.connect(host, port, 2000, (status, ufd) => {
        if (status !== 0) {
          b.closeFd(dfd);
          throw new Error(`proxy upstream connect failed: ${b.errnoName(status)}`);
        }
        let done!: (v: PipeClosed) => void;
        const closed = new Promise<PipeClosed>((r) => (done = r));
        const pipe = new b.Pipe(dfd, ufd, { idleTimeoutMs: opts.idleTimeoutMs ?? 0, highWaterMark: opts.highWaterMark ?? MiB }, (reason, a2b, b2a) =>
          done({ reason, a2b, b2a }),
        );
        const run = { pipe, closed };
        const w = waiting.shift();
        if (w) w(run);
        else ready.push(run);
      });
    },
    (code) => {
      throw new Error(`acceptor error ${code}`);
    },
  );
  return {
    endpoint,
    nextPipe: () => {
      const r = ready.shift();
      return r ? Promise.resolve(r) : new Promise((resolve) => waiting.push(resolve));
    },
    close: () => acceptor.close(),
  };
}

/** Collects a stream into a sha256 digest and a byte count; resolves on 'end'. */
export function digestUntilEnd(s: net.Socket): Promise<{ sha: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const h = crypto.createHash('sha256');
    let bytes = 0;
    s.on('data', (d: Buffer) => {
      h.update(d);
      bytes += d.length;
    });
    s.once('end', () => resolve({ sha: h.digest('hex'), bytes }));
    s.once('error', reject);
  });
}

export const sha256 = (buf: Buffer): string => crypto.createHash('sha256').update(buf).digest('hex');

/**
 * Resolves with the error code a socket ends with, or 'closed' after a clean EOF (it answers
 * the EOF with its own, since the test sockets allow half-open).
 */
export function closeOutcome(s: net.Socket): Promise<string> {
  return new Promise((resolve) => {
    let code = 'closed';
    s.on('error', (e: NodeJS.ErrnoException) => (code = e.code ?? e.message));
    s.on('end', () => s.end());
    s.on('close', () => resolve(code));
    s.resume();
  });
}

/**
 * A TCP listener nobody accepts on, its accept queue filled by a few clients: Linux drops SYNs
 * to a full queue, so a further connect hangs until the caller's timeout. Loopback only.
 */
export async function blackhole(): Promise<{ port: number; close(): void }> {
  const lfd = b.listenTcp('127.0.0.1', 0, 0, false);
  const port = b.localAddress(lfd).port;
  const fillers: net.Socket[] = [];
  // backlog 0 still queues one connection (the kernel checks "queued > backlog"); three is plenty.
  for (let i = 0; i < 3; i++) {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.on('error', () => {});
    fillers.push(s);
  }
  await new Promise<void>((r) => fillers[0]!.once('connect', () => r()));
  await sleep(50);
  return {
    port,
    close: () => {
      for (const s of fillers) s.destroy();
      b.closeFd(lfd);
    },
  };
}

/** A request on `client` with no body; resolves once its stream closes, however it ends. */
export function requestClosed(client: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders): Promise<void> {
  return new Promise<void>((resolve) => {
    const rq = client.request(headers, { endStream: true });
    rq.on('error', () => {});
    rq.on('close', () => resolve());
    rq.resume();
  });
}
