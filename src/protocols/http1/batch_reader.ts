/**
 * HTTP/1 sockets read by the addon's BatchReader (native/io/batch_reader.cc) instead of Node's
 * stream reads: every read of one loop turn, on any number of sockets, reaches JavaScript in one
 * call, so the per-read costs of a stream (onStreamRead, a MakeCallback with its microtask and
 * nextTick checkpoint) are paid once per turn. A socket is either a net.Socket (attach), which
 * stays the connection's owner for writes, end(), destroy() and its events while only reading
 * moves (its `pause`/`resume` are replaced on the instance so every existing caller steers the
 * native reader, and EOF / read errors are fed back into it the way Node's own read path does),
 * or a DirectSocket (attachDirect, src/io/direct_socket.ts), which has no Node handle at all:
 * the reader also tells it when its fd takes writes again.
 *
 * STRAIT_HTTP1_READER=stream turns it off (Node stream reads, the reference path).
 */
import type net from 'node:net';
import { DirectSocket, isDirectSocket, type DirectSocketSlots } from '../../io/direct_socket.js';
import { BATCH_WRITABLE, loadNative, setTable, TableSlot, type NativeBatchReader, type NativeBatchReaderCalls, type NativeBinding } from '../../native.js';
import { enterBatch, leaveBatch } from './clock.js';

/** Where one turn's reads land; a read is at most 64 KiB, so a full arena means a turn of ≥ 16 reads of 64 KiB. */
const ARENA_BYTES = 1024 * 1024;
/** Reads per turn before an early hand-over (3 ints each). */
const MAX_ENTRIES = 2048;
/** Closes a batch can leave to its end (NativeBatchReader's removals); past these, a call each. */
const MAX_REMOVALS = 1024;

/**
 * Bytes `buf[off, end)` valid only during the call (the buffer is reused afterwards): the
 * receiver copies what it keeps. Saves a Buffer and a copy per read when a read holds whole
 * messages whose heads are parsed straight from it (parseRequestHeadOwned).
 */
export type OnRead = (buf: Buffer, off: number, end: number) => void;

interface Attached {
  readonly socket: net.Socket;
  readonly onBytes: (d: Buffer) => void;
  readonly onRead: OnRead | null;
  readonly slot: number;
}

/** What a slot serves: a net.Socket's dup, or a DirectSocket, which owns its fd. */
type SlotUser = Attached | DirectSocket;

/** buf[off, end) as a Buffer of its own. */
export function copyOut(buf: Buffer, off: number, end: number): Buffer {
  const d = Buffer.allocUnsafe(end - off);
  buf.copy(d, 0, off, end);
  return d;
}

const kAttached = Symbol('strait.batchReader');

/**
 * Work to run once the reads of a batch have all been handed out (before the clock is released):
 * upstream request heads queued while handling the batch leave back to back there, so a peer
 * woken by the first finds the others already waiting instead of being woken for each.
 */
const batchEndHooks: (() => void)[] = [];
let delivering = false;

/** Adds a hook run at the end of every batch (src/upstream/http1_pool.ts flushes its queued sends). */
export function onBatchEnd(fn: () => void): void {
  batchEndHooks.push(fn);
}

/**
 * Work run once a batch's reads are handed out but while it still counts as in a batch, before
 * the onBatchEnd hooks: what it sends is queued and leaves with the rest of the batch's writes.
 */
const batchTailHooks: (() => void)[] = [];

/** Adds a hook run at the tail of every batch (the pipelined requests its responses let go on). */
export function onBatchTail(fn: () => void): void {
  batchTailHooks.push(fn);
}

/** Runs the tail hooks, then the end hooks with the batch over; the end hooks run even if a tail hook throws. */
function endBatch(): void {
  try {
    for (const t of batchTailHooks) t();
  } finally {
    delivering = false;
    for (const h of batchEndHooks) h();
  }
}

/** True while the batch reader hands out a batch: work queued now runs at its end (onBatchEnd). */
export function inBatch(): boolean {
  return delivering;
}

/** Runs `fn` as one batch of its own (the pipelined requests of one round): the hooks run after it. */
export function runBatched(fn: () => void): void {
  if (delivering) {
    fn();
    return;
  }
  delivering = true;
  try {
    fn();
  } finally {
    endBatch();
  }
}

type ReaderSocket = net.Socket & { [kAttached]?: Attached | null; _handle?: { fd?: number } | null };

export class Http1BatchReader implements DirectSocketSlots {
  private readonly reader: NativeBatchReader;
  private readonly arena = Buffer.allocUnsafeSlow(ARENA_BYTES);
  private readonly out = new Int32Array(3 * MAX_ENTRIES);
  /** [handing out a batch (1/0), count, slot * 2 + exclusive ...]: see NativeBinding.BatchReader. */
  private readonly removals = new Int32Array(2 + MAX_REMOVALS);
  /** By slot; null once removed (a slot number is reused by a later socket). */
  private readonly slots: (SlotUser | null)[] = [];
  /** Calls from the addon, and the entries (reads, EOFs, errors) they carried. */
  batches = 0;
  entries = 0;
  /** The batch being handed out: its size and the entry at hand (release() looks past it). */
  private count = 0;
  private at = 0;

  /**
   * Whether this addon can serve DirectSockets (write watch, detach, shutdown, HTTP/1 sends):
   * asked once, as the addon's objects are dictionaries, each property a lookup per connection.
   */
  private readonly directCapable: boolean;

  constructor(private readonly binding: NativeBinding) {
    const Reader = binding.BatchReader!;
    const raw = new Reader(this.arena, this.out, (n) => this.onBatch(n), this.removals);
    this.reader = Reader.calls !== undefined && raw.rid !== undefined ? new NumberedBatchReader(raw, Reader.calls) : raw;
    const r = this.reader;
    this.directCapable = r.watchWrite !== undefined && r.detach !== undefined && binding.shutdownFd !== undefined && binding.sendHttp1 !== undefined;
    // Heads parsed where they arrived point into the arena: forwarded to HTTP/2 in the same turn
    // (respondSpans), they go as null for it. There is one reader (http1BatchReader()).
    setTable(TableSlot.ARENA, this.arena);
  }

  /**
   * Starts reading `socket` natively; its bytes go to `onRead` when given (a view of the arena),
   * else to `onBytes` (an owned copy each). The socket must not be reading through Node (created
   * with pauseOnCreate, or paused before connect). False when it cannot be (no fd, dup failed):
   * the caller reads through the stream instead.
   */
  attach(socket: net.Socket, onBytes: (d: Buffer) => void, onRead: OnRead | null = null): boolean {
    const s = socket as ReaderSocket;
    const fd = s._handle?.fd;
    if (typeof fd !== 'number' || fd < 0 || s[kAttached]) return false;
    let slot: number;
    try {
      slot = this.reader.add(fd);
    } catch {
      return false;
    }
    const a: Attached = { socket, onBytes, onRead, slot };
    this.slots[slot] = a;
    s[kAttached] = a;
    const reader = this.reader;
    // Instance methods shadow the prototype's: Node would start its own reads on resume().
    socket.pause = function (this: net.Socket) {
      if (s[kAttached] === a) reader.pause(slot);
      return this;
    };
    socket.resume = function (this: net.Socket) {
      if (s[kAttached] === a) reader.resume(slot);
      return this;
    };
    // Our dup must close with Node's fd, not at 'close' (a tick later): until then its poll would
    // still read, and bytes read for a socket being destroyed (a hot-restart handover, whose
    // next request the new process must see) would be lost.
    const destroy = s._destroy;
    s._destroy = (err: Error | null, cb: (err?: Error | null) => void): void => {
      this.release(socket);
      destroy.call(s, err, cb);
    };
    return true;
  }

  /**
   * A DirectSocket over `fd` (the caller's until this returns, the socket's after), read from
   * here into its owner's onSocketRead. Null, with `fd` still the caller's, when this addon
   * cannot (no write watch, no shutdown) or the poll fails.
   */
  attachDirect(fd: number): DirectSocket | null {
    const r = this.reader;
    if (!this.directCapable) return null;
    let slot: number;
    try {
      slot = r.add(fd, true);
    } catch {
      return null;
    }
    const s = new DirectSocket(this.binding, this, fd);
    s.slot = slot;
    this.slots[slot] = s;
    return s;
  }

  pause(s: DirectSocket): void {
    this.reader.pause(s.slot);
  }

  resume(s: DirectSocket): void {
    this.reader.resume(s.slot);
  }

  watchWrite(s: DirectSocket): void {
    this.reader.watchWrite!(s.slot);
  }

  remove(s: DirectSocket): void {
    this.slots[s.slot] = null;
    // The fd is the socket's own: unless dupFd() shared it, its close takes it out of the epoll.
    const exclusive = !s.shared;
    const r = this.removals;
    // While a batch is handed out (its ticks too), the addon closes it when the batch is done.
    if (r[0] === 1 && r[1]! < MAX_REMOVALS) r[2 + r[1]!++] = s.slot * 2 + (exclusive ? 1 : 0);
    else this.reader.remove(s.slot, exclusive);
  }

  detach(s: DirectSocket): Buffer | null {
    this.slots[s.slot] = null;
    const rest = this.pendingOf(s.slot);
    this.reader.detach!(s.slot);
    return rest;
  }

  /** Reads of `slot` later in the batch being handed out (a turn may read a socket more than once), copied. */
  private pendingOf(slot: number): Buffer | null {
    let rest: Buffer[] | null = null;
    const out = this.out;
    for (let i = this.at + 1, k = 3 * i; i < this.count; i++, k += 3) {
      if (out[k] !== slot || out[k + 2]! <= 0) continue;
      (rest ??= []).push(Buffer.from(this.arena.subarray(out[k + 1]!, out[k + 1]! + out[k + 2]!)));
    }
    return rest === null ? null : rest.length === 1 ? rest[0]! : Buffer.concat(rest);
  }

  /**
   * Stops reading natively and gives the socket back to Node's stream reads (still paused), e.g.
   * for HTTP/2 after the preface. Bytes already delivered stay delivered; the rest is in the kernel.
   */
  release(socket: net.Socket): void {
    const s = socket as ReaderSocket;
    const a = s[kAttached];
    if (!a) return;
    s[kAttached] = null;
    this.slots[a.slot] = null;
    // Reads of this socket later in the batch being handed out were taken from the kernel
    // already: they go back to the front of the stream.
    const rest = socket.destroyed ? null : this.pendingOf(a.slot);
    this.reader.remove(a.slot);
    delete (socket as Partial<Pick<net.Socket, 'pause' | 'resume'>>).pause;
    delete (socket as Partial<Pick<net.Socket, 'pause' | 'resume'>>).resume;
    if (rest) socket.unshift(rest);
  }

  /** @internal for tests: events the addon dropped as for a freed slot (NativeBatchReader.staleEvents). */
  staleEvents(): number {
    return this.reader.staleEvents?.() ?? 0;
  }

  /** Delivers reads made this turn but not yet handed over (a hot-restart handover must see them). */
  flush(): void {
    this.reader.flush();
  }

  private onBatch(n: number): void {
    this.batches++;
    this.entries += n;
    this.count = n;
    // Every event of this batch sees one clock reading (clock.ts).
    const clock = enterBatch();
    const outer = delivering;
    delivering = true;
    try {
      this.deliver(n);
    } finally {
      this.count = 0;
      try {
        // A flush() inside a batch is part of it: the outer batch runs the hooks.
        if (!outer) endBatch();
      } finally {
        leaveBatch(clock);
      }
    }
  }

  private deliver(n: number): void {
    const out = this.out;
    const arena = this.arena;
    for (let i = 0, k = 0; i < n; i++, k += 3) {
      this.at = i;
      const slot = out[k]!;
      if (slot < 0) continue;
      const a = this.slots[slot];
      // A destroyed socket has no slot: destroy() runs _destroy at once, and ours releases the
      // slot (attach). No `destroyed` getter per read.
      if (!a) continue;
      const len = out[k + 2]!;
      if (len > 0) {
        const off = out[k + 1]!;
        try {
          // The arena is reused next turn: onRead copies what it keeps, onBytes gets a copy.
          if (isDirectSocket(a)) a.owner!.onSocketRead(arena, off, off + len);
          else if (a.onRead !== null) a.onRead(arena, off, off + len);
          else a.onBytes(copyOut(arena, off, off + len));
        } catch (err) {
          // One connection's failure must not cost the rest of the batch.
          (isDirectSocket(a) ? a : a.socket).destroy(err as Error);
        }
      } else if (isDirectSocket(a)) {
        if (len === BATCH_WRITABLE) a.onWritable();
        else if (len === 0) a.readEnd();
        else a.readError(len);
      } else if (len === 0) {
        // EOF, as Node's read path reports it: 'end' follows (and allowHalfOpen applies).
        a.socket.push(null);
        a.socket.read(0);
      } else {
        const code = this.binding.errnoName(len);
        a.socket.destroy(Object.assign(new Error(`read ${code}`), { errno: len, code, syscall: 'read' }));
      }
    }
  }
}

/**
 * A reader whose per-connection calls (add and remove for every connection, pause and resume
 * under back-pressure) go through BatchReader.calls with its number: the prototype's methods
 * find their object through napi_unwrap (1.1 % of the connection-per-request row's perf samples).
 */
class NumberedBatchReader implements NativeBatchReader {
  private readonly id: number;

  constructor(
    private readonly raw: NativeBatchReader,
    private readonly c: NativeBatchReaderCalls,
  ) {
    this.id = raw.rid!();
  }

  add(fd: number, own?: boolean): number {
    return own === undefined ? this.c.add(this.id, fd) : this.c.add(this.id, fd, own);
  }

  pause(slot: number): void {
    this.c.pause(this.id, slot);
  }

  resume(slot: number): void {
    this.c.resume(this.id, slot);
  }

  remove(slot: number, exclusive?: boolean): void {
    if (exclusive === undefined) this.c.remove(this.id, slot);
    else this.c.remove(this.id, slot, exclusive);
  }

  detach(slot: number): void {
    this.c.detach(this.id, slot);
  }

  watchWrite(slot: number): void {
    this.c.watchWrite(this.id, slot);
  }

  flush(): void {
    this.raw.flush();
  }

  staleEvents(): number {
    return this.raw.staleEvents?.() ?? 0;
  }
}

let reader: Http1BatchReader | null | undefined;
let enabled = false;

/**
 * Called by the native engine: only a process running it reads HTTP/1 sockets (downstream and
 * upstream) this way; the node engine stays the all-streams reference.
 */
export function enableHttp1BatchReader(): void {
  enabled = true;
}

/** The process's reader, or null when not enabled, switched off or the addon lacks it. */
export function http1BatchReader(): Http1BatchReader | null {
  if (!enabled) return null;
  if (reader !== undefined) return reader;
  reader = null;
  if (process.env.STRAIT_HTTP1_READER === 'stream') return reader;
  try {
    const b = loadNative();
    if (typeof b.BatchReader === 'function') reader = new Http1BatchReader(b);
  } catch {
    // No addon (node engine without a build): stream reads.
  }
  return reader;
}

/** True when `socket` is read by the batch reader. */
export function batchRead(socket: net.Socket): boolean {
  return !!(socket as ReaderSocket)[kAttached];
}
