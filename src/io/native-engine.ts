import fs from 'node:fs';
import net from 'node:net';
import { native, type NativeBinding, type NativePipe } from '../native.js';
import type {
  BoundListener,
  Cancelable,
  ConnectDone,
  Downstream,
  IoEngine,
  ListenAddress,
  PeerAddress,
  Pipe,
  PipeCloseReason,
  PipeDone,
  PipeOptions,
  Upstream,
} from './engine.js';
import { NodePipe } from './node-engine.js';
import { enableHttp1BatchReader, http1BatchReader } from '../protocols/http1/batch_reader.js';
import { enterBatch, leaveBatch } from '../protocols/http1/clock.js';
import { StreamDownstream, StreamUpstream } from './stream_conn.js';
import type { DirectSocket } from './direct_socket.js';

/** Where streamWithReader sockets read into; one per process (reads run one at a time, each copied out). */
const READ_BUF = Buffer.allocUnsafe(64 * 1024);
/** Where takeIfStartsWith peeks (HTTP/2's preface is 24 bytes). */
const PEEK_BUF = Buffer.allocUnsafe(24);
/** STRAIT_HTTP1_SOCKET=node keeps client connections on a net.Socket; read once (process.env is a getenv per read). */
const NODE_HTTP1_SOCKET = process.env.STRAIT_HTTP1_SOCKET === 'node';

/** An fd the engine owns until it is handed to a Pipe (which then owns it) or closed. */
class FdSocket implements Downstream, Upstream {
  fd: number;
  constructor(
    private readonly binding: NativeBinding,
    fd: number,
    readonly remote: PeerAddress,
    readonly local: PeerAddress,
  ) {
    this.fd = fd;
  }
  /** Hand the fd over; the caller now owns it. */
  take(): number {
    const fd = this.fd;
    if (fd < 0) throw new Error('socket already handed over or closed');
    this.fd = -1;
    return fd;
  }
  close(): void {
    if (this.fd >= 0) this.binding.closeFd(this.fd);
    this.fd = -1;
  }
}

/** The most connections one wake-up hands over (the addon's own cap is 64 too). */
const ACCEPT_BATCH = 64;

const NO_PEER: PeerAddress = { family: 'unix', address: '', port: 0 };

function family(f: string): PeerAddress['family'] {
  return f === 'IPv6' ? 'IPv6' : f === 'unix' ? 'unix' : 'IPv4';
}

/** The addon's data path: fds polled inside Node's loop, pooled buffers, one writev per flush. */
export class NativeEngine implements IoEngine {
  readonly name = 'native' as const;
  private readonly binding: NativeBinding;

  constructor() {
    // Throws NativeLoadError when the addon is missing: never fall back silently.
    this.binding = native();
    enableHttp1BatchReader();
    // One epoll_pwait per wakeup instead of two (native/io/env.cc): about a syscall per request
    // at a fixed rate. STRAIT_UV_IDLE_METRICS=1 keeps Node's default, for
    // performance.eventLoopUtilization() in a preloaded profiler.
    if (process.env.STRAIT_UV_IDLE_METRICS !== '1') this.binding.disableLoopIdleTime?.();
  }

  async listen(addr: ListenAddress, backlog: number, onConnection: (d: Downstream) => void, inheritFd?: number): Promise<BoundListener> {
    const b = this.binding;
    const fd = inheritFd ?? (addr.kind === 'tcp' ? b.listenTcp(addr.host, addr.port, backlog, false) : b.listenUnix(addr.path, backlog));
    if (addr.kind === 'unix' && addr.mode !== undefined && inheritFd === undefined) fs.chmodSync(addr.path, addr.mode);
    const local = b.localAddress(fd);
    const address: PeerAddress = { family: family(local.family), address: local.address, port: local.port };
    // On a wildcard listener each connection's own local address (the one the client dialled)
    // takes a getsockname; filter chains, RBAC and access logs match on it, as in Envoy.
    const wildcard = address.address === '0.0.0.0' || address.address === '::';
    // The peer's family and address as the last connection had them: the addon leaves them out
    // when they repeat (repeatPeer).
    let lastFamily: PeerAddress['family'] = 'IPv4';
    let lastAddress = '';
    const accept = (cfd: number, rport: number): void => {
      let here = address;
      if (wildcard) {
        try {
          const l = b.localAddress(cfd);
          here = { family: family(l.family), address: l.address, port: l.port };
        } catch {
          // Reset before we asked: the listener's address is all there is.
        }
      }
      onConnection(new FdSocket(b, cfd, { family: lastFamily, address: lastAddress, port: rport }, here));
    };
    // A wake-up's connections come in one call (fd and port pairs here): see NativeBinding.Acceptor.
    const batch = new Int32Array(2 * ACCEPT_BATCH);
    const acceptor = new b.Acceptor(
      fd,
      (count, peers) => {
        let failed: unknown[] | null = null;
        // One clock read for the wake-up's connections (clock.ts): each session's idle mark read
        // it, ~170 instructions a connection on a connection-per-request load.
        const clock = enterBatch();
        try {
          for (let i = 0; i < count; i++) {
            const raddr = peers?.[2 * i + 1];
            if (raddr !== undefined) {
              lastFamily = family(peers![2 * i]!);
              lastAddress = raddr;
            }
            // One connection's throw must not strand the fds after it (accepted, owned by nobody).
            try {
              accept(batch[2 * i]!, batch[2 * i + 1]!);
            } catch (err) {
              (failed ??= []).push(err);
            }
          }
        } finally {
          leaveBatch(clock);
        }
        if (failed === null) return;
        // Each reaches 'uncaughtException' as it did from a call of its own: the first thrown
        // from here, the rest from ticks.
        for (let i = 1; i < failed.length; i++) {
          const err = failed[i];
          process.nextTick(() => {
            throw err;
          });
        }
        throw failed[0];
      },
      () => {
        // EMFILE/ENFILE: the addon already backs off; the listener's stats count the refusal.
      },
      true,
      batch,
    );
    // The addon never unlinks a unix path on close, so keepPath needs nothing here.
    return { address, fd, close: () => acceptor.close() };
  }

  connect(target: PeerAddress, timeoutMs: number, done: ConnectDone): Cancelable {
    const b = this.binding;
    const port = target.family === 'unix' ? -1 : target.port;
    return b.connect(target.address, port, timeoutMs, (status, fd) => {
      done(status, status === 0 ? new FdSocket(b, fd, target, NO_PEER) : null);
    });
  }

  pipe(down: Downstream, up: Upstream, opts: PipeOptions, done: PipeDone): Pipe {
    if (down instanceof StreamDownstream || up instanceof StreamUpstream) {
      // TLS on either side: the bytes to splice exist only in Node's TLS stack, so this
      // connection is spliced by Node streams (the reference engine's pipe) instead of fds.
      const asSocket = (s: Downstream | Upstream): net.Socket =>
        s instanceof StreamDownstream || s instanceof StreamUpstream
          ? s.socket
          : new net.Socket({ fd: (s as FdSocket).take(), readable: true, writable: true, allowHalfOpen: true });
      return new NodePipe(asSocket(down), asSocket(up), opts, done);
    }
    const p: NativePipe = new this.binding.Pipe(
      (down as FdSocket).take(),
      (up as FdSocket).take(),
      { idleTimeoutMs: opts.idleTimeoutMs, highWaterMark: opts.highWaterMark },
      (reason, a2b, b2a) => done(reason as PipeCloseReason, a2b, b2a),
    );
    return p;
  }

  adopt(fd: number, remote: PeerAddress, local: PeerAddress): Downstream {
    return new FdSocket(this.binding, fd, remote, local);
  }

  stream(down: Downstream): net.Socket {
    // Already a stream (TLS, or a listener filter read from it): the filter takes it as is.
    if (down instanceof StreamDownstream) return down.socket.resume();
    // Node adopts the accepted fd (uv_tcp_open / uv_pipe_open by socket type).
    return new net.Socket({ fd: (down as FdSocket).take(), readable: true, writable: true, allowHalfOpen: false });
  }

  streamWithReader(down: Downstream, onBytes: (chunk: Buffer) => void, onRead?: (buf: Buffer, off: number, end: number) => void): net.Socket | null {
    if (down instanceof StreamDownstream) return null;
    const fd = (down as FdSocket).take();
    const reader = http1BatchReader();
    if (reader) {
      // Node never starts reading this socket: the addon's batch reader does, one JS call per turn.
      const sock = new net.Socket({ fd, readable: true, writable: true, allowHalfOpen: false, pauseOnCreate: true } as net.SocketConstructorOpts);
      if (reader.attach(sock, onBytes, onRead ?? null)) return sock;
      // dup/poll failed (EMFILE...): this connection reads through the stream after all.
      sock.on('data', onBytes);
      sock.resume();
      return sock;
    }
    const onread = {
      buffer: READ_BUF,
      callback: (n: number, buf: Uint8Array): boolean => {
        // READ_BUF is shared by every such socket: the bytes leave it before the next read.
        if (onRead) {
          onRead(READ_BUF, 0, n);
          return true;
        }
        const d = Buffer.allocUnsafe(n);
        d.set(buf.subarray(0, n));
        onBytes(d);
        return true;
      },
    };
    return new net.Socket({ fd, readable: true, writable: true, allowHalfOpen: false, onread } as net.SocketConstructorOpts);
  }

  directStream(down: Downstream): DirectSocket | null {
    if (!(down instanceof FdSocket) || down.fd < 0 || NODE_HTTP1_SOCKET) return null;
    const s = http1BatchReader()?.attachDirect(down.fd) ?? null;
    if (s !== null) down.take();
    return s;
  }

  takeIfStartsWith(down: Downstream, prefix: Buffer): number {
    const peek = this.binding.peekFd;
    if (peek === undefined || !(down instanceof FdSocket) || down.fd < 0 || prefix.length > PEEK_BUF.length) return -1;
    const n = peek(down.fd, PEEK_BUF.length === prefix.length ? PEEK_BUF : PEEK_BUF.subarray(0, prefix.length));
    if (n !== prefix.length || PEEK_BUF.compare(prefix, 0, n, 0, n) !== 0) return -1;
    return down.take();
  }

  errnoName(status: number): string {
    return this.binding.errnoName(status);
  }
}
