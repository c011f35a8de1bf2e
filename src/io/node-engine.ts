import net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import {
  PipeCloseReason,
  type BoundListener,
  type Cancelable,
  type ConnectDone,
  type Downstream,
  type IoEngine,
  type ListenAddress,
  type PeerAddress,
  type Pipe,
  type PipeDone,
  type PipeOptions,
  type Upstream,
} from './engine.js';

const ETIMEDOUT = -os.constants.errno.ETIMEDOUT;

function errnoOf(err: NodeJS.ErrnoException): number {
  if (typeof err.errno === 'number') return err.errno < 0 ? err.errno : -err.errno;
  const n = err.code ? (os.constants.errno as Record<string, number>)[err.code] : undefined;
  return n ? -n : -os.constants.errno.EIO;
}

function peerOf(socket: net.Socket, which: 'remote' | 'local', fallbackPath: string): PeerAddress {
  const address = which === 'remote' ? socket.remoteAddress : socket.localAddress;
  if (!address) return { family: 'unix', address: fallbackPath, port: 0 };
  const family = (which === 'remote' ? socket.remoteFamily : socket.localFamily) === 'IPv6' ? 'IPv6' : 'IPv4';
  return { family, address, port: (which === 'remote' ? socket.remotePort : socket.localPort) ?? 0 };
}

class NodeDownstream implements Downstream {
  constructor(
    readonly socket: net.Socket,
    readonly remote: PeerAddress,
    readonly local: PeerAddress,
  ) {}
  close(): void {
    this.socket.destroy();
  }
}

class NodeUpstream implements Upstream {
  constructor(readonly socket: net.Socket) {}
  close(): void {
    this.socket.destroy();
  }
}

/**
 * Splices two net.Sockets with stream backpressure (pipe() pauses the source when the
 * destination's buffer passes its highWaterMark) and carries half-close both ways.
 */
export class NodePipe implements Pipe {
  private finished = false;
  private endedDown = false;
  private endedUp = false;
  private lastActivity = Date.now();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly down: net.Socket,
    private readonly up: net.Socket,
    private readonly opts: PipeOptions,
    private readonly done: PipeDone,
  ) {
    const touch = () => {
      this.lastActivity = Date.now();
    };
    if (opts.idleTimeoutMs > 0) {
      down.on('data', touch);
      up.on('data', touch);
      this.armIdle(opts.idleTimeoutMs);
    }
    down.on('end', () => {
      this.endedDown = true;
      this.maybeDone();
    });
    up.on('end', () => {
      this.endedUp = true;
      this.maybeDone();
    });
    down.on('error', () => this.finish(PipeCloseReason.RESET_DOWNSTREAM));
    up.on('error', () => this.finish(PipeCloseReason.RESET_UPSTREAM));
    // A close without 'end' means the peer reset or we destroyed it.
    down.on('close', () => this.finish(this.endedDown && this.endedUp ? PipeCloseReason.DONE : PipeCloseReason.RESET_DOWNSTREAM));
    up.on('close', () => this.finish(this.endedDown && this.endedUp ? PipeCloseReason.DONE : PipeCloseReason.RESET_UPSTREAM));
    down.pipe(up);
    up.pipe(down);
    down.resume();
  }

  private armIdle(ms: number): void {
    this.timer = setTimeout(() => {
      const idle = Date.now() - this.lastActivity;
      if (idle >= this.opts.idleTimeoutMs) this.finish(PipeCloseReason.IDLE_TIMEOUT);
      else this.armIdle(this.opts.idleTimeoutMs - idle);
    }, ms);
    this.timer.unref();
  }

  private maybeDone(): void {
    if (!this.endedDown || !this.endedUp) return;
    // Both halves ended; wait for our own writes to flush before reporting.
    let pending = 2;
    const fin = () => {
      if (--pending === 0) this.finish(PipeCloseReason.DONE);
    };
    if (this.down.writableFinished) fin();
    else this.down.once('finish', fin);
    if (this.up.writableFinished) fin();
    else this.up.once('finish', fin);
  }

  private finish(reason: PipeCloseReason): void {
    if (this.finished) return;
    this.finished = true;
    if (this.timer) clearTimeout(this.timer);
    const rx = this.down.bytesRead;
    const tx = this.up.bytesRead;
    this.down.destroy();
    this.up.destroy();
    this.done(reason, rx, tx);
  }

  close(): void {
    this.finish(PipeCloseReason.LOCAL);
  }
}

/**
 * libuv unlinks the path a unix server bound when it closes. When a new process keeps serving
 * the same socket (hot restart) the path must survive: keep a second link across the close.
 */
function closeServer(server: net.Server, path: string, keepPath: boolean): void {
  if (!keepPath || !path) {
    server.close();
    return;
  }
  const spare = `${path}.strait-keep-${process.pid}`;
  try {
    fs.linkSync(path, spare);
  } catch {
    server.close();
    return;
  }
  server.close();
  fs.renameSync(spare, path);
}

export class NodeEngine implements IoEngine {
  readonly name = 'node' as const;

  adopt(fd: number, remote: PeerAddress, local: PeerAddress): Downstream {
    const socket = new net.Socket({ fd, allowHalfOpen: true, readable: true, writable: true });
    socket.pause();
    socket.setNoDelay(true);
    return new NodeDownstream(socket, remote, local);
  }

  listen(addr: ListenAddress, backlog: number, onConnection: (d: Downstream) => void, inheritFd?: number): Promise<BoundListener> {
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true });
    const path = addr.kind === 'unix' ? addr.path : '';
    server.on('connection', (socket) => {
      onConnection(new NodeDownstream(socket, peerOf(socket, 'remote', ''), peerOf(socket, 'local', path)));
    });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      const ready = () => {
        server.off('error', reject);
        // Errors after bind (EMFILE on accept) must not crash the process.
        server.on('error', () => {});
        const a = server.address();
        const address: PeerAddress =
          typeof a === 'object' && a
            ? { family: a.family === 'IPv6' ? 'IPv6' : 'IPv4', address: a.address, port: a.port }
            : { family: 'unix', address: path, port: 0 };
        if (addr.kind === 'unix' && addr.mode !== undefined && inheritFd === undefined) fs.chmodSync(path, addr.mode);
        const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
        resolve({ address, fd, close: (keepPath) => closeServer(server, path, keepPath === true && inheritFd === undefined) });
      };
      if (inheritFd !== undefined) server.listen({ fd: inheritFd, backlog }, ready);
      else if (addr.kind === 'tcp') server.listen({ host: addr.host, port: addr.port, backlog }, ready);
      else server.listen({ path: addr.path, backlog }, ready);
    });
  }

  connect(target: PeerAddress, timeoutMs: number, done: ConnectDone): Cancelable {
    const socket =
      target.family === 'unix'
        ? net.connect({ path: target.address, allowHalfOpen: true })
        : net.connect({ host: target.address, port: target.port, allowHalfOpen: true, noDelay: true });
    socket.pause();
    let settled = false;
    const timer =
      timeoutMs > 0
        ? setTimeout(() => {
            if (settled) return;
            settled = true;
            socket.destroy();
            done(ETIMEDOUT, null);
          }, timeoutMs)
        : null;
    socket.once('connect', () => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      socket.removeAllListeners('error');
      done(0, new NodeUpstream(socket));
    });
    socket.once('error', (err) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      done(errnoOf(err), null);
    });
    return {
      cancel: () => {
        if (settled) return;
        settled = true;
        if (timer) clearTimeout(timer);
        socket.destroy();
      },
    };
  }

  pipe(down: Downstream, up: Upstream, opts: PipeOptions, done: PipeDone): Pipe {
    return new NodePipe((down as NodeDownstream).socket, (up as NodeUpstream).socket, opts, done);
  }

  stream(down: Downstream): net.Socket {
    const s = (down as NodeDownstream).socket;
    s.resume();
    return s;
  }

  errnoName(status: number): string {
    for (const [name, n] of Object.entries(os.constants.errno)) if (n === -status) return name;
    return `errno ${status}`;
  }
}
