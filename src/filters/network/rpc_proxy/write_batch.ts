import type net from 'node:net';
import { loadNative } from '../../../native.js';
import { now } from '../../../protocols/http1/clock.js';
import { canSendNow, directFd } from '../../../protocols/http1/send.js';

/** Frames queued for one socket this turn, as (buffer, offset, length): no view per frame. */
class Batch {
  bufs: Buffer[] = [];
  offs: number[] = [];
  lens: number[] = [];
  n = 0;
  bytes = 0;
  /**
   * Some frame is a view of the batch reader's arena, valid only until the read batch ends:
   * whatever does not leave in that flush is copied before the stream keeps it.
   */
  borrowed = false;
  /** Where flushes send with one send(2) from the addon; -1: through the stream only. */
  fd = -1;
  /**
   * Readers held until this socket drains (holdDrain). Kept here because asking the socket
   * (listenerCount) per send was a megamorphic keyed load on its listener table.
   */
  drainWaiters = 0;
}

type Batched = net.Socket & { strait_batch?: Batch };

/**
 * Up to this many bytes per socket per turn are copied into one buffer and written once; more
 * go out as a corked writev, where copying would cost more than Node's per-write bookkeeping.
 */
const COALESCE_MAX = 64 * 1024;

type SendFn = (fd: number, buf: Uint8Array) => number;

/** The addon's non-blocking send (the one src/protocols/http1/send.ts uses); null: streams only. */
const sendFn: SendFn | null = (() => {
  if (process.env.STRAIT_RPC_IO === 'stream') return null;
  try {
    const f = (loadNative() as unknown as { sendHttp1?: SendFn }).sendHttp1;
    return typeof f === 'function' ? f : null;
  } catch {
    return null; // no addon (node engine without a build)
  }
})();

/** False when RPC sockets must read and write through Node streams only (STRAIT_RPC_IO=stream). */
export const rpcDirectIo = process.env.STRAIT_RPC_IO !== 'stream';

/**
 * Lets flushes for `socket` go out with one send(2) from the addon instead of the stream's
 * write (a WriteWrap, a nextTick and the Writable state machine per write) whenever nothing is
 * queued on it; anything else still goes through socket.write, in order. No-op for TLS sockets,
 * without the addon, or before the socket has an fd. Returns whether sends are direct.
 */
export function directWrites(socket: net.Socket): boolean {
  if (sendFn === null) return false;
  const fd = directFd(socket);
  if (fd < 0) return false;
  ((socket as Batched).strait_batch ??= new Batch()).fd = fd;
  return true;
}

// Sockets with frames this turn; counted, not truncated (`length = 0` is a runtime call in V8).
let queued: Batched[] = [];
let nQueued = 0;
let spare: Batched[] = [];
let scheduled = false;
/** A flush is due at the end of the read batch being handed out (inReadBatch). */
let tickArmed = false;
/** The batch reader's arena as last seen: frames viewing it must not outlive the read batch. */
let arena: Buffer | null = null;

function flush(): void {
  scheduled = false;
  // A write callback may queue frames for the next turn: swap the lists first.
  const list = queued;
  const n = nQueued;
  queued = spare;
  nQueued = 0;
  spare = list;
  for (let i = 0; i < n; i++) {
    writeOut(list[i]!);
    list[i] = null!;
  }
}

function endOfReadBatch(): void {
  tickArmed = false;
  batchClock = -1;
  flush();
}

/** performance.now() at the read batch's first RPC read; -1 outside a batch. */
let batchClock = -1;

/**
 * performance.now(), read once per read batch: every call started or answered in one batch
 * (a fraction of a millisecond) shares one reading instead of two clock reads per call.
 */
export function turnClock(): number {
  return batchClock >= 0 ? batchClock : performance.now();
}

/**
 * Called for a read handed over by the addon's batch reader, `buf` being its arena when the
 * frames are read in place (null for a copy). The batch
 * (every read of this loop turn) is one MakeCallback: its nextTick checkpoint runs once all its
 * reads are handled, so the writes they queued leave there, all together, and before the next
 * read can reuse the arena.
 */
export function inReadBatch(buf: Buffer | null): void {
  if (buf !== null) arena = buf;
  if (tickArmed) return;
  tickArmed = true;
  // The batch reader's own reading of the clock for this batch (no second clock read).
  batchClock = now();
  process.nextTick(endOfReadBatch);
}

/** Where a direct send gathers a batch's frames; the bytes leave before it is reused. */
const SCRATCH_BYTES = 256 * 1024;
const scratch = Buffer.allocUnsafeSlow(SCRATCH_BYTES);

function view(b: Batch, i: number): Buffer {
  const buf = b.bufs[i]!;
  const off = b.offs[i]!;
  const len = b.lens[i]!;
  return off === 0 && len === buf.length ? buf : buf.subarray(off, off + len);
}

/**
 * `out` to the socket: sent directly when that keeps the order, else (or the rest) queued.
 *
 * A reader held until this socket drains (the filter's buffer limit, counted with this turn's
 * batch) waits for 'drain', which the stream emits only for bytes it was given, and only when
 * they reached its high-water mark. With direct sends it may have been given nothing, or a small
 * rest: the socket then says 'drain' itself once nothing is left unsent.
 */
function send(s: Batched, b: Batch, out: Buffer, borrowed: boolean): void {
  const fd = b.fd;
  if (fd >= 0 && canSendNow(s, fd)) {
    const k = sendFn!(fd, out);
    if (k === out.length) {
      if (b.drainWaiters > 0) process.nextTick(drained, s);
      return;
    }
    // Partly sent: the rest queues behind nothing. An error sent nothing: the stream retries
    // the write and, for a real error, destroys the socket as usual.
    if (k > 0) out = out.subarray(k);
  }
  // The stream keeps what it is given until written: never the arena.
  const data = borrowed ? Buffer.from(out) : out;
  if (fd >= 0 && b.drainWaiters > 0) s.write(data, () => drained(s));
  else s.write(data);
}

/** 'drain' for a socket whose unsent bytes are gone (a second one after the stream's is harmless to the filter's holds). */
function drained(s: Batched): void {
  if (!s.destroyed && s.writableLength === 0 && (s.strait_batch?.bytes ?? 0) === 0) s.emit('drain');
}

function writeOut(s: Batched): void {
  const b = s.strait_batch;
  if (!b || b.n === 0) return;
  const n = b.n;
  const bytes = b.bytes;
  const borrowed = b.borrowed;
  b.n = 0;
  b.bytes = 0;
  b.borrowed = false;
  if (!s.destroyed && !s.writableEnded) {
    if (n === 1) send(s, b, view(b, 0), borrowed);
    else if (bytes <= COALESCE_MAX || borrowed) {
      // One write instead of a corked batch: Node's writable keeps an entry object, a fresh
      // buffered array and a writev closure per batch, a good part of each call's garbage;
      // with a direct send it is also one syscall. A direct send gathers into the reused
      // scratch buffer (copied only if the kernel does not take it all).
      const direct = b.fd >= 0 && bytes <= SCRATCH_BYTES;
      const out = direct ? scratch.subarray(0, bytes) : Buffer.allocUnsafe(bytes);
      let p = 0;
      for (let i = 0; i < n; i++) {
        const buf = b.bufs[i]!;
        const off = b.offs[i]!;
        const len = b.lens[i]!;
        buf.copy(out, p, off, off + len);
        p += len;
      }
      send(s, b, out, direct);
    } else {
      s.cork();
      for (let i = 0; i < n; i++) s.write(view(b, i));
      s.uncork();
    }
  }
  for (let i = 0; i < n; i++) b.bufs[i] = null!;
}

/**
 * Queues `len` bytes of `buf` at `off` for `socket` until the end of this event-loop turn (the
 * check phase, after every socket read in the turn has been handled, or the end of the read
 * batch being handed out), so all frames bound for one socket in one turn — from every client
 * sharing an upstream connection — leave in a single write. The bytes must stay unchanged
 * until then; a view of the batch reader's arena is copied if it cannot leave at once.
 */
export function corkedWrite(socket: net.Socket, buf: Buffer, off = 0, len = buf.length): void {
  const s = socket as Batched;
  const b = (s.strait_batch ??= new Batch());
  const n = b.n;
  if (n === 0) {
    queued[nQueued++] = s;
    if (!scheduled && !tickArmed) {
      scheduled = true;
      setImmediate(flush);
    }
  }
  if (buf === arena) b.borrowed = true;
  if (n > 0 && b.bufs[n - 1] === buf && b.offs[n - 1]! + b.lens[n - 1]! === off) {
    // The next frame of the same read (one client's calls to one provider, or its answers in
    // one provider read): one range, so the flush sends a view instead of copying each frame.
    b.lens[n - 1] = b.lens[n - 1]! + len;
    b.bytes += len;
    return;
  }
  b.bufs[n] = buf;
  b.offs[n] = off;
  b.lens[n] = len;
  b.n = n + 1;
  b.bytes += len;
}

/**
 * A reader starts (+1) or stops (-1) waiting for `socket`'s 'drain': a direct send that
 * empties the socket then emits one (send, above). Every 'drain' listener the filter adds
 * goes with a +1 here.
 */
export function holdDrain(socket: net.Socket, d: 1 | -1): void {
  const b = ((socket as Batched).strait_batch ??= new Batch());
  b.drainWaiters = Math.max(0, b.drainWaiters + d);
}

/** True while `socket` has frames in this turn's batch, not yet handed to the socket. */
export function batchPending(socket: net.Socket): boolean {
  return ((socket as Batched).strait_batch?.n ?? 0) > 0;
}

/** Bytes given to `socket` and not yet sent: its own buffer plus this turn's batch. */
export function unsentBytes(socket: net.Socket): number {
  return socket.writableLength + ((socket as Batched).strait_batch?.bytes ?? 0);
}

/** Writes this turn's batch for `socket` now (before an end(), which must come after it). */
export function flushNow(socket: net.Socket): void {
  writeOut(socket as Batched);
}
