import type net from 'node:net';

/** Frames queued for one socket this turn, as (buffer, offset, length): no view per frame. */
class Batch {
  bufs: Buffer[] = [];
  offs: number[] = [];
  lens: number[] = [];
  n = 0;
  bytes = 0;
}

type Batched = net.Socket & { strait_batch?: Batch };

/**
 * Up to this many bytes per socket per turn are copied into one buffer and written once; more
 * go out as a corked writev, where copying would cost more than Node's per-write bookkeeping.
 */
const COALESCE_MAX = 64 * 1024;

let queued: Batched[] = [];
let spare: Batched[] = [];
let scheduled = false;

function flush(): void {
  scheduled = false;
  // A write callback may queue frames for the next turn: swap the lists first.
  const list = queued;
  queued = spare;
  spare = list;
  for (let i = 0; i < list.length; i++) {
    writeOut(list[i]!);
    list[i] = null!;
  }
  list.length = 0;
}

function view(b: Batch, i: number): Buffer {
  const buf = b.bufs[i]!;
  const off = b.offs[i]!;
  const len = b.lens[i]!;
  return off === 0 && len === buf.length ? buf : buf.subarray(off, off + len);
}

function writeOut(s: Batched): void {
  const b = s.strait_batch;
  if (!b || b.n === 0) return;
  const n = b.n;
  const bytes = b.bytes;
  b.n = 0;
  b.bytes = 0;
  if (!s.destroyed && !s.writableEnded) {
    if (n === 1) s.write(view(b, 0));
    else if (bytes <= COALESCE_MAX) {
      // One write instead of a corked batch: Node's writable keeps an entry object, a fresh
      // buffered array and a writev closure per batch, a good part of each call's garbage.
      const out = Buffer.allocUnsafe(bytes);
      let p = 0;
      for (let i = 0; i < n; i++) {
        const buf = b.bufs[i]!;
        const off = b.offs[i]!;
        const len = b.lens[i]!;
        buf.copy(out, p, off, off + len);
        p += len;
      }
      s.write(out);
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
 * check phase, after every socket read in the turn has been handled), so all frames bound for
 * one socket in one turn — from every client sharing an upstream connection — leave in a
 * single write. The bytes must stay unchanged until then.
 */
export function corkedWrite(socket: net.Socket, buf: Buffer, off = 0, len = buf.length): void {
  const s = socket as Batched;
  const b = (s.strait_batch ??= new Batch());
  const n = b.n;
  if (n === 0) {
    queued.push(s);
    if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  }
  b.bufs[n] = buf;
  b.offs[n] = off;
  b.lens[n] = len;
  b.n = n + 1;
  b.bytes += len;
}

/** Bytes given to `socket` and not yet sent: its own buffer plus this turn's batch. */
export function unsentBytes(socket: net.Socket): number {
  return socket.writableLength + ((socket as Batched).strait_batch?.bytes ?? 0);
}

/** Writes this turn's batch for `socket` now (before an end(), which must come after it). */
export function flushNow(socket: net.Socket): void {
  writeOut(socket as Batched);
}
