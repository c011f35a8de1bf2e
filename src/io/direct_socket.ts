/**
 * An accepted connection driven from its fd, for the HTTP/1 sessions of the native engine: the
 * addon's batch reader reads it (and says when it takes writes again), writes are one send(2)
 * each, and the events its owner listens to ('end', 'drain', 'error', 'close') are emitted here.
 * A net.Socket per connection costs more than the exchange on short connections: its
 * construction (TCPWrap, stream state) and destruction, and the system calls libuv makes to
 * adopt an fd and the batch reader to watch a dup of it, about twelve per connection.
 *
 * It behaves as the part of net.Socket the HTTP/1 session uses: write() queues what the kernel
 * does not take and returns false from 16 KiB queued until 'drain'; cork() holds writes until
 * uncork(); end() sends a FIN once the queue is out; 'end' comes a tick after the peer's FIN;
 * destroy() closes the fd and emits 'close' a tick later; the socket closes itself once both
 * sides are done, or at the peer's FIN when allowHalfOpen is false. A connection that must
 * become a net.Socket after all (node:http2) or move to the HTTP/2 session takes its fd out
 * (`take`).
 *
 * Its owner (the session), set before the loop runs again, gets the reads and hears of 'end' and
 * 'close' by method (`owner`), and the events that are due run from one nextTick per batch of
 * them: an EventEmitter's state, read and listener closures and a tick object per event were a
 * quarter of what a connection allocated.
 * Listeners added with on()/once() (a tunnel's 'close', a writer waiting for 'drain') get an
 * emitter made then.
 */
import { EventEmitter } from 'node:events';
import os from 'node:os';
import type { NativeBinding } from '../native.js';

/** Where the batch reader keeps this socket (src/protocols/http1/batch_reader.ts). */
export interface DirectSocketSlots {
  pause(s: DirectSocket): void;
  resume(s: DirectSocket): void;
  watchWrite(s: DirectSocket): void;
  /** Stops watching; the fd is closed (its epoll registration with it, unless `s.shared`). */
  remove(s: DirectSocket): void;
  /** Stops watching and hands back the bytes read for it but not yet delivered; the fd stays open. */
  detach(s: DirectSocket): Buffer | null;
}

/** Node's default writableHighWaterMark for a socket: write() returns false from here on. */
const HIGH_WATER = 16 * 1024;
const EAGAIN = -os.constants.errno.EAGAIN;

/** What the socket tells its owner, in place of read callbacks and 'end' and 'close' listeners. */
export interface DirectSocketOwner {
  /** Bytes read: buf[off, end), valid only during the call (the owner copies what it keeps). */
  onSocketRead(buf: Buffer, off: number, end: number): void;
  /** The peer's FIN, as 'end'. */
  onSocketEnd(): void;
  /** The socket closed, as 'close'; `hadError`: it failed (an 'error' went first to those listening for one). */
  onSocketClose(hadError: boolean): void;
}

function emitEnd(s: DirectSocket): void {
  // Closed meanwhile (our FIN went too, or a destroy): 'close' says it all, as for a stream.
  if (s.destroyed) return;
  if (s.ownerEnd) s.owner?.onSocketEnd();
  s.emit('end');
  s.afterEnd();
}

function emitClose(s: DirectSocket): void {
  const err = s.closeError;
  s.closeError = undefined;
  // An 'error' nobody listens to would throw out of the tick and end the process: a connection's
  // failure never may. Its owner learns of it from 'close' (hadError) then.
  if (err !== undefined && s.listenerCount('error') > 0) s.emit('error', err);
  if (s.ownerClose) s.owner?.onSocketClose(err !== undefined);
  s.emit('close', err !== undefined);
}

const END = 0;
const CLOSE = 1;
/**
 * Sockets whose 'end' (END) or 'close' (CLOSE) is due, in order, and their kinds: the first
 * dueCount entries. The arrays keep their size between turns (no regrowth per batch).
 */
const dueSockets: (DirectSocket | null)[] = [];
const dueKinds: number[] = [];
let dueCount = 0;

function due(s: DirectSocket, kind: number): void {
  dueSockets[dueCount] = s;
  dueKinds[dueCount] = kind;
  if (dueCount++ === 0) process.nextTick(runDue);
}

/** Runs the events due, including those they make due (a destroy at 'end'), as ticks would. */
function runDue(): void {
  let i = 0;
  try {
    for (; i < dueCount; i++) {
      const s = dueSockets[i]!;
      dueSockets[i] = null;
      if (dueKinds[i] === END) emitEnd(s);
      else emitClose(s);
    }
    dueCount = 0;
  } finally {
    if (dueCount !== 0) {
      // A handler threw: the events after it still run, from a tick of their own.
      let k = 0;
      for (let j = i + 1; j < dueCount; j++, k++) {
        dueSockets[k] = dueSockets[j]!;
        dueKinds[k] = dueKinds[j]!;
        dueSockets[j] = null;
      }
      dueCount = k;
      if (k !== 0) process.nextTick(runDue);
    }
  }
}

export class DirectSocket {
  /** The batch reader's slot number for it; set by the reader. */
  slot = -1;
  owner: DirectSocketOwner | null = null;
  /** The owner still hears of 'end' / 'close' (removeAllListeners stops it, as it does listeners). */
  ownerEnd = true;
  ownerClose = true;
  /** @internal the error 'close' reports, until it is emitted. */
  closeError: Error | undefined = undefined;
  /** Made for the first on()/once(); the owner needs none. */
  private emitter: EventEmitter | null = null;
  destroyed = false;
  /** False once end() or destroy() ran. */
  writable = true;
  allowHalfOpen = false;
  readonly connecting = false;
  /** Bytes written but not yet taken by the kernel, oldest first. */
  private queue: Buffer[] | null = null;
  private queued = 0;
  private corked = 0;
  private needDrain = false;
  private watching = false;
  private ending = false;
  /** Our FIN has been sent. */
  private finished = false;
  /** The peer's FIN has been read. */
  private readEnded = false;
  /** destroySoon(): close once the queue is out, without a FIN of our own first. */
  private closeWhenWritten = false;
  /** dupFd() made another descriptor for the connection (DirectSocketSlots.remove must know). */
  shared = false;

  constructor(
    private readonly binding: NativeBinding,
    private readonly slots: DirectSocketSlots,
    /** -1 once destroyed or taken. */
    public fd: number,
  ) {}

  on(event: string, listener: (...args: any[]) => void): this {
    (this.emitter ??= new EventEmitter()).on(event, listener);
    return this;
  }

  once(event: string, listener: (...args: any[]) => void): this {
    (this.emitter ??= new EventEmitter()).once(event, listener);
    return this;
  }

  removeListener(event: string, listener: (...args: any[]) => void): this {
    this.emitter?.removeListener(event, listener);
    return this;
  }

  off(event: string, listener: (...args: any[]) => void): this {
    return this.removeListener(event, listener);
  }

  /** As an emitter's; the owner counts as a listener for 'end' and 'close'. */
  removeAllListeners(event: string): this {
    this.emitter?.removeAllListeners(event);
    if (event === 'end') this.ownerEnd = false;
    else if (event === 'close') this.ownerClose = false;
    return this;
  }

  listenerCount(event: string): number {
    return this.emitter === null ? 0 : this.emitter.listenerCount(event);
  }

  /** One argument at most ('close' has hadError, 'error' the error): no rest array per event. */
  emit(event: string, arg?: unknown): boolean {
    const e = this.emitter;
    if (e === null) return false;
    return arg === undefined ? e.emit(event) : e.emit(event, arg);
  }

  get writableLength(): number {
    return this.queued;
  }

  get writableNeedDrain(): boolean {
    return this.needDrain;
  }

  /** True when a write now may go to the fd directly and keep the byte order (send.ts's canSendNow). */
  idle(): boolean {
    return this.queued === 0 && this.corked === 0 && this.writable;
  }

  write(data: Buffer | string, encoding?: BufferEncoding): boolean {
    // After end() or destroy() the connection is going: net.Socket reports an error and drops
    // the bytes, and 'close' is coming either way.
    if (!this.writable) return false;
    const b = typeof data === 'string' ? Buffer.from(data, encoding ?? 'utf8') : data;
    if (b.length === 0) return !this.needDrain;
    if (this.queued === 0 && this.corked === 0) {
      const n = this.binding.sendHttp1!(this.fd, b);
      if (n === b.length) return true;
      if (n < 0 && n !== EAGAIN) {
        this.fail(n, 'write');
        return false;
      }
      this.push(n > 0 ? b.subarray(n) : b);
      this.watch();
    } else this.push(b);
    if (this.queued < HIGH_WATER) return true;
    this.needDrain = true;
    return false;
  }

  cork(): void {
    this.corked++;
  }

  uncork(): void {
    if (this.corked === 0 || --this.corked > 0) return;
    const q = this.queue;
    if (q === null || this.watching) return;
    // What was written under cork leaves in one send, as Node's writev would.
    if (q.length > 1) {
      const all = Buffer.concat(q);
      q.length = 0;
      q.push(all);
    }
    this.flush();
  }

  end(data?: Buffer | string): this {
    if (data !== undefined) this.write(data);
    if (this.ending || this.destroyed) return this;
    this.ending = true;
    this.writable = false;
    // end() uncorks, as a Writable's does.
    this.corked = 0;
    if (this.queued === 0) this.finish();
    else if (!this.watching) this.flush();
    return this;
  }

  /**
   * For a peer that has sent all it will (its request said Connection: close and nothing more
   * came): the fd closes once the queued bytes are out, and the close sends our FIN. end() would
   * send it by shutdown(2) and keep the fd until the peer's FIN: two system calls and a wakeup
   * more per connection. As nginx does without signs of more data (its lingering_close on).
   * Bytes the peer sends after all are answered with a reset by the kernel.
   */
  destroySoon(): void {
    if (this.ending || this.destroyed) return;
    this.closeWhenWritten = true;
    this.end();
  }

  destroy(err?: Error): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    this.writable = false;
    this.queue = null;
    this.queued = 0;
    if (this.fd >= 0) this.slots.remove(this);
    this.fd = -1;
    this.closeError = err;
    due(this, CLOSE);
    return this;
  }

  pause(): this {
    if (this.fd >= 0) this.slots.pause(this);
    return this;
  }

  resume(): this {
    if (this.fd >= 0) this.slots.resume(this);
    return this;
  }

  /**
   * Another descriptor for the connection, the caller's (a hot restart hands it to the new
   * process). This one then leaves the batch reader's epoll explicitly when it closes: the shared
   * file description keeps a registration alive past the close of one descriptor.
   */
  dupFd(): number {
    if (this.fd < 0) throw new Error('DirectSocket.dupFd: socket closed or taken');
    const copy = this.binding.upgrade.dup(this.fd);
    this.shared = true;
    return copy;
  }

  /**
   * Takes the fd out (the caller owns it from here) with the bytes already read from it but not
   * yet delivered; this object is done, without a 'close'. Only before anything was written.
   */
  take(): { fd: number; rest: Buffer | null } {
    const fd = this.fd;
    if (fd < 0 || this.queued > 0) throw new Error('DirectSocket.take: socket closed or has queued writes');
    const rest = this.slots.detach(this);
    this.fd = -1;
    this.destroyed = true;
    this.writable = false;
    return { fd, rest };
  }

  // ---- from the batch reader ----

  /** The peer's FIN (a 0-byte read). */
  readEnd(): void {
    this.readEnded = true;
    due(this, END);
  }

  /** @internal after 'end': close when our side is done too, or end it (allowHalfOpen false). */
  afterEnd(): void {
    if (this.destroyed) return;
    if (this.finished) this.destroy();
    else if (!this.allowHalfOpen) this.end();
  }

  /** A read failed (`errno` negative). */
  readError(errno: number): void {
    this.fail(errno, 'read');
  }

  /** The kernel takes bytes again (or the socket failed: the next send says so). */
  onWritable(): void {
    this.watching = false;
    if (!this.destroyed) this.flush();
  }

  // ---- internals ----

  private push(b: Buffer): void {
    (this.queue ??= []).push(b);
    this.queued += b.length;
  }

  private watch(): void {
    if (this.watching || this.fd < 0) return;
    this.watching = true;
    this.slots.watchWrite(this);
  }

  private flush(): void {
    const q = this.queue;
    while (q !== null && q.length > 0) {
      const b = q[0]!;
      const n = this.binding.sendHttp1!(this.fd, b);
      if (n === b.length) {
        q.shift();
        this.queued -= n;
        continue;
      }
      if (n < 0 && n !== EAGAIN) {
        this.fail(n, 'write');
        return;
      }
      if (n > 0) {
        q[0] = b.subarray(n);
        this.queued -= n;
      }
      this.watch();
      return;
    }
    if (this.needDrain) {
      this.needDrain = false;
      // As a Writable: no 'drain' once it is ending, nothing more may be written.
      if (!this.ending) this.emit('drain');
    }
    if (this.ending && !this.finished && this.queued === 0 && !this.destroyed) this.finish();
  }

  /** Our side is done: FIN after the queue; closed if the peer's side is done too. */
  private finish(): void {
    this.finished = true;
    // After the peer's FIN (nothing unread then) the close alone sends ours.
    if (this.closeWhenWritten || this.readEnded) {
      this.destroy();
      return;
    }
    this.binding.shutdownFd!(this.fd);
  }

  private fail(errno: number, syscall: string): void {
    const code = this.binding.errnoName(errno);
    this.destroy(Object.assign(new Error(`${syscall} ${code}`), { errno, code, syscall }));
  }
}

/** An HTTP/1 session's client connection: a DirectSocket, or a net.Socket (TLS, the node engine). */
export type ClientSocket = import('node:net').Socket | DirectSocket;

/**
 * DirectSocket's mark, a property of its prototype. `s instanceof DirectSocket` of a net.Socket
 * (an upstream connection, on every send) walked its whole prototype chain at run time, seven
 * objects, TurboFan not folding it over a socket's many maps: ~1.4 % of an h2c burst's perf
 * samples sat in that loop's map loads. A load of the missing key is a map check.
 */
const DIRECT_SOCKET: unique symbol = Symbol('DirectSocket');
Object.defineProperty(DirectSocket.prototype, DIRECT_SOCKET, { value: true });

/** `s instanceof DirectSocket`, without the prototype walk (see DIRECT_SOCKET). */
export function isDirectSocket(s: object): s is DirectSocket {
  return (s as unknown as { [DIRECT_SOCKET]?: true })[DIRECT_SOCKET] === true;
}
