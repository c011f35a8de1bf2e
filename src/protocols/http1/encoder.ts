/**
 * Builds outgoing HTTP/1.1 heads. Headers that pass through unchanged are copied as the bytes
 * they arrived in; only the first line and added headers are encoded from strings. Header bytes
 * are latin1 both ways, so whatever arrived (obs-text included) leaves unchanged.
 */
import type { ClientSocket } from '../../io/direct_socket.js';
import { loadNative, setTable, tableArg, TableSlot } from '../../native.js';
import { fieldsInTables } from './parser.js';
import { canSendNow, sendTo } from './send.js';
import { F, type MessageHead } from './types.js';

/** Decides per header (by its index among the head's fields, 0 first) whether to leave it out. */
export type DropField = (head: MessageHead, index: number) => boolean;

/**
 * Which headers a head's encoding leaves out: a DropField, or a mask of HeaderKind bits (1 <<
 * kind; OTHER fields are all kept), which decides without a call per field (a DropField call
 * was ~150 instructions a field of a forwarded response), or null for none.
 */
export type Drop = DropField | number | null;

/** Whether field `i` (its kind `kind`) of `head` is left out by `drop`. */
function dropped(drop: Drop, head: MessageHead, i: number, kind: number): boolean {
  if (typeof drop === 'number') return kind !== 0 && ((drop >> kind) & 1) !== 0;
  return drop !== null && drop(head, i);
}

/** Which headers encodeHead keeps; reused by every call (it never re-enters) and grown on demand. */
let KEEP = new Uint8Array(64);

/** Offsets into `out` / the fd, then the pieces: see writeHttp1Head in native/http1/http1_js.cc. */
type HeadFn<T> = (to: T, firstLine: string, src: Buffer | null, runs: Int32Array, nRuns: number, extra: string, tail: Buffer | null, tailStart: number, tailEnd: number) => number;

function findNative<T>(name: 'writeHttp1Head' | 'sendHttp1Head', env: string | undefined): HeadFn<T> | null {
  if (env === 'ts' || env === 'stream') return null;
  try {
    const f = (loadNative() as unknown as Record<string, HeadFn<T> | undefined>)[name];
    return typeof f === 'function' ? f : null;
  } catch {
    return null; // no addon: encodeHeadJs writes every head
  }
}

/** The addon's writeHttp1Head (native/http1/http1_js.cc), null without it or with STRAIT_HTTP1_ENCODER=ts. */
const writeNative = findNative<Buffer>('writeHttp1Head', process.env.STRAIT_HTTP1_ENCODER);
/** Its send(2) twin; also off with STRAIT_HTTP1_SEND=stream (every write through the stream). */
const sendNative = writeNative === null ? null : findNative<number>('sendHttp1Head', process.env.STRAIT_HTTP1_SEND);

/** Runs of kept lines for the addon, [start, end) pairs; reused by every call and grown on demand. */
let RUNS = new Int32Array(2 * 64);
/** How many pairs of RUNS the last collectRuns filled. */
let nRuns = 0;

/** The two functions above with RUNS bound once (bindHttp1HeadWriter): no typed-array argument to read per head. */
type BoundHeadFn<T> = (to: T, firstLine: string, src: Buffer | null, nRuns: number, extra: string, tail: Buffer | null, tailStart: number, tailEnd: number, at?: number) => number;
let boundWrite: BoundHeadFn<Buffer> | null = null;
let boundSend: BoundHeadFn<number> | null = null;
/** write + send of the Buffer written, in one call (an addon built before it has none). */
type BoundWriteSendFn = (out: Buffer, firstLine: string, src: Buffer | null, nRuns: number, extra: string, tail: Buffer | null, tailStart: number, tailEnd: number, fd: number, keepAt: number, keepLen: number, at?: number) => number;
let boundWriteSend: BoundWriteSendFn | null = null;
/**
 * write and writeSend (with `at`) taking their numbers from ARGS, bound with RUNS: seven number
 * arguments fewer to read per forwarded exchange, each an N-API call (~60 instructions).
 */
type WriteArgsFn = (out: Buffer, firstLine: string, src: Buffer | null, extra: string, tail: Buffer | null) => number;
type WriteSendArgsFn = (out: Buffer, firstLine: string, src: Buffer | null, extra: string) => number;
let writeArgs: WriteArgsFn | null = null;
let writeSendArgs: WriteSendArgsFn | null = null;
/** ARGS' slots (kArg* in native/http1/http1_js.cc). */
const enum ARG {
  RUNS = 0,
  TAIL_START = 1,
  TAIL_END = 2,
  AT = 3,
  FD = 4,
  KEEP_AT = 5,
  KEEP_LEN = 6,
  /** KNOWN | KNOW_SRC / KNOW_TAIL when given | KNOW_LENGTHS: no N-API call to learn them. */
  KNOWN_BITS = 7,
  FIRST_LEN = 8,
  EXTRA_LEN = 9,
  /** With KNOW_RUNS_FROM_HEAD: the HeaderKind bits of the fields left out (a Drop mask). */
  DROP = 10,
  /** With KNOW_RUNS_FROM_HEAD: the head's size as written, set by the addon. */
  SIZE = 11,
}
/** ARG.KNOWN_BITS' bits (kKnow* in native/http1/http1_js.cc). */
const KNOW_SRC = 1;
const KNOW_TAIL = 2;
const KNOW_LENGTHS = 4;
const KNOWN = 8;
/** `out` is the slab registered for the call (STAGE for writeAt, KEPT for writeSendAt). */
const KNOW_OUT_TABLE = 16;
/** src is the reader's arena as registered (TableSlot.ARENA). */
const KNOW_SRC_ARENA = 32;
/**
 * The addon works out the kept lines from the head the parser returned last (its fields in the
 * HEAD_OUT table) with ARG.DROP as the mask: no collectRuns here. ARG.KEEP_AT then counts from
 * the head's end, and the size comes back in ARG.SIZE.
 */
const KNOW_RUNS_FROM_HEAD = 64;
/** src is the head parser's slab as registered (TableSlot.HEAD_SLAB): owned heads are copied there. */
const KNOW_SRC_SLAB = 128;
/** The tail is the reader's arena as registered (TableSlot.ARENA). */
const KNOW_TAIL_ARENA = 256;
/** firstLine is the string this function wrote last: the addon copies its own bytes of it. */
const KNOW_SAME_FIRST = 512;
/** extra is the string this function wrote last (as KNOW_SAME_FIRST). */
const KNOW_SAME_EXTRA = 1024;

/**
 * The strings writeAt (encodeHeadStagedAt) and writeSendAt (encodeHeadSendAt) wrote last, as the
 * addon keeps them: a keep-alive connection's heads repeat their status or request line and their
 * added lines, and reading a string through N-API is ~130 instructions. Noted only once a call
 * returned (the addon keeps a string only once its head is written); a new binding keeps none.
 */
const sameLines = addonHas('http1SameLines');
let stagedFirst: string | null = null;
let stagedExtra: string | null = null;
let sentFirst: string | null = null;
let sentExtra: string | null = null;

function sameBits(first: string, extra: string, lastFirst: string | null, lastExtra: string | null): number {
  if (!sameLines) return 0;
  return (first === lastFirst ? KNOW_SAME_FIRST : 0) | (extra === lastExtra ? KNOW_SAME_EXTRA : 0);
}

/**
 * KNOW_OUT_TABLE when `out` is the slab registered in `slot` (reserve() registers each new one;
 * asked rather than assumed, so that nothing else registering there can misdirect a write).
 */
function outBits(slot: TableSlot, out: Buffer): number {
  return tableArg(slot, out) === null ? KNOW_OUT_TABLE : 0;
}

/** The KNOWN bits for a head's source buffer: given or not, and whether it is the registered arena or head slab. */
function srcBits(src: Buffer | null): number {
  if (src === null) return 0;
  if (tableArg(TableSlot.ARENA, src) === null) return KNOW_SRC | KNOW_SRC_ARENA;
  return tableArg(TableSlot.HEAD_SLAB, src) === null ? KNOW_SRC | KNOW_SRC_SLAB : KNOW_SRC;
}

/** The KNOWN bits for a tail: given or not, and whether it is the registered arena (a body read with its head). */
function tailBits(tail: Buffer | null): number {
  if (tail === null) return 0;
  return tableArg(TableSlot.ARENA, tail) === null ? KNOW_TAIL | KNOW_TAIL_ARENA : KNOW_TAIL;
}
const ARGS = new Int32Array(12);

/** (Re)binds RUNS, at start and whenever it is replaced by a larger one. */
function bindRuns(): void {
  if (writeNative === null) return;
  let bind: ((runs: Int32Array, args?: Int32Array) => [BoundHeadFn<Buffer>, BoundHeadFn<number>, BoundWriteSendFn?, WriteArgsFn?, WriteSendArgsFn?]) | undefined;
  try {
    bind = (loadNative() as unknown as { bindHttp1HeadWriter?: typeof bind }).bindHttp1HeadWriter;
  } catch {
    return;
  }
  if (typeof bind !== 'function') return; // an addon built before it: the unbound calls
  const [w, s, ws, wa, wsa] = bind(RUNS, ARGS);
  stagedFirst = stagedExtra = sentFirst = sentExtra = null;
  boundWrite = w;
  // STRAIT_HTTP1_SEND=stream turns the direct send off, bound or not.
  boundSend = sendNative === null ? null : s;
  boundWriteSend = sendNative === null || typeof ws !== 'function' ? null : ws;
  // An addon that ignores `args` returns three functions.
  writeArgs = typeof wa === 'function' ? wa : null;
  writeSendArgs = boundWriteSend === null || typeof wsa !== 'function' ? null : wsa;
}
bindRuns();

/**
 * Fills RUNS with the kept lines of `head`, merging lines that follow each other in the source
 * (separated by exactly CRLF) into one run, and returns their bytes as written (each run ends
 * with CRLF: the same size as line by line). Never re-entered: `drop` only reads the head.
 */
function collectRuns(head: MessageHead, drop: Drop): number {
  const f = head.fieldSlots;
  const n = (head.fieldsEnd - head.fieldsAt) / F.SIZE;
  const src = head.buf;
  if (RUNS.length < 2 * n) {
    RUNS = new Int32Array(Math.max(2 * n, RUNS.length * 2));
    bindRuns();
  }
  const runs = RUNS;
  let k = 0;
  let size = 0;
  let runStart = -1;
  let runEnd = -1;
  for (let i = 0, o = head.fieldsAt; i < n; i++, o += F.SIZE) {
    if (dropped(drop, head, i, f[o + F.KIND]!)) continue;
    const s = f[o + F.NAME_START]!;
    const e = f[o + F.VALUE_END]!;
    size += e - s + 2;
    if (runStart >= 0 && s === runEnd + 2 && src[runEnd] === 0x0d && src[runEnd + 1] === 0x0a) {
      runEnd = e;
      continue;
    }
    if (runStart >= 0) {
      runs[k++] = runStart;
      runs[k++] = runEnd;
    }
    runStart = s;
    runEnd = e;
  }
  if (runStart >= 0) {
    runs[k++] = runStart;
    runs[k++] = runEnd;
  }
  nRuns = k >> 1;
  return size;
}

/**
 * `firstLine` without CRLF; `extra` is already formatted `name: value\r\n` lines appended after
 * the kept headers. `tail[tailStart, tailEnd)` (a small body that arrived with the head) follows
 * the blank line, so head and body leave in one write. One allocation; the bytes are written by
 * one addon call (writeHttp1Head) instead of a JS string write or Buffer copy per piece, each of
 * which costs a typed-array view and a native call. Same bytes as encodeHeadJs (parity-tested).
 */
export function encodeHead(firstLine: string, head: MessageHead | null, drop: Drop, extra: string, tail: Buffer | null = null, tailStart = 0, tailEnd = 0): Buffer {
  return encodeHeadIn(false, firstLine, head, drop, extra, tail, tailStart, tailEnd);
}

/**
 * The size of a head the addon writes: `firstLine`, the kept lines of `head` (RUNS filled and
 * nRuns set for the addon call that follows), `extra`, the blank line and `tailLen` body bytes.
 */
function addonHeadSize(firstLine: string, head: MessageHead | null, drop: Drop, extra: string, tailLen: number): number {
  nRuns = 0;
  const size = firstLine.length + 2 + extra.length + 2 + tailLen;
  return head ? size + collectRuns(head, drop) : size;
}

/**
 * encodeHead into the batch stage: the bytes are valid until resetStage(), which the caller
 * runs once they have left (sendStaged copies what the kernel does not take). A response
 * held to the end of a read batch then costs no Buffer pool space: each 8 KiB pool the heads
 * used up was a young ArrayBuffer for the next scavenge to sweep, which came to half its pause.
 */
export function encodeHeadStaged(firstLine: string, head: MessageHead | null, drop: Drop, extra: string, tail: Buffer | null = null, tailStart = 0, tailEnd = 0): Buffer {
  return encodeHeadIn(true, firstLine, head, drop, extra, tail, tailStart, tailEnd);
}

/**
 * Ranges handed out one after another from a slab; a full slab is left to whatever still points
 * into it and a fresh one started (a slab is never written again once replaced).
 */
class Slabs {
  buf: Buffer | null = null;
  at = 0;

  constructor(
    private readonly bytes: number,
    /** Starts are multiples of this (a power of two). */
    private readonly align: number,
    /** The addon's table each new slab is registered in (setTable): calls then name it by a bit. */
    private readonly slot: TableSlot,
  ) {}

  /** Where in `buf` the next `size` bytes go (size well under a slab). */
  reserve(size: number): number {
    if (this.buf === null || this.at + size > this.bytes) {
      this.buf = Buffer.allocUnsafeSlow(this.bytes);
      this.at = 0;
      setTable(this.slot, this.buf);
    }
    const at = this.at;
    this.at = (at + size + this.align - 1) & ~(this.align - 1);
    return at;
  }

  /** The range reserve() just gave at `at` holds only `size` bytes: the rest is handed out again. */
  trim(at: number, size: number): void {
    this.at = (at + size + this.align - 1) & ~(this.align - 1);
  }

  /** A Buffer of `size` bytes: a view of a slab, or a Buffer of its own when larger than `big`. */
  alloc(size: number, big: number): Buffer {
    if (size > big) return Buffer.allocUnsafe(size);
    const at = this.reserve(size);
    return this.buf!.subarray(at, at + size);
  }
}

/** Whether the loaded addon says it has `flag` (a capability added after older builds). */
function addonHas(flag: string): boolean {
  try {
    return (loadNative() as unknown as Record<string, unknown>)[flag] === true;
  } catch {
    return false;
  }
}

const STAGE_BYTES = 64 * 1024;
const STAGE = new Slabs(STAGE_BYTES, 1, TableSlot.STAGE);

/** Whether the addon writes a head at an offset and sends a range (encodeHeadStagedAt, sendStagedRange). */
const stagedRanges = addonHas('http1StagedRanges');

/** Whether the addon takes KNOW_RUNS_FROM_HEAD (an older one would read runs nobody wrote). */
const runsFromHeadOut = addonHas('http1RunsFromHeadOut');

/** @internal for tests: the KNOWN bits of the last head written with the args array. */
export function lastKnownBits(): number {
  return ARGS[ARG.KNOWN_BITS]!;
}

/** Whether the last encodeHeadStagedAt or encodeHeadSendAt had the addon work out the kept lines. @internal for tests */
export let lastRunsFromHead = false;

/**
 * Whether the addon can work out `head`'s kept lines itself: `drop` a mask (or none) and the
 * head's fields the parser's last results. Its size is not known before the call; `head.headBytes`
 * bounds the kept lines' (each kept line is one of the head's, CRLF included).
 */
function runsFromHead(head: MessageHead | null, drop: Drop): head is MessageHead {
  return runsFromHeadOut && head !== null && (drop === null || typeof drop === 'number') && fieldsInTables(head);
}

let stagedLen = 0;

/**
 * encodeHeadStaged without a Buffer of its own: the bytes are stagedBuffer()[at, at +
 * stagedLength()), `at` returned; -1 when the addon cannot or the head is large (the caller
 * uses encodeHeadStaged). A keep-alive response held to its batch's end then allocates nothing:
 * its view was 96 bytes of a ~240-byte exchange.
 */
export function encodeHeadStagedAt(firstLine: string, head: MessageHead | null, drop: Drop, extra: string, tail: Buffer | null, tailStart: number, tailEnd: number): number {
  const write = boundWrite;
  if (write === null || !stagedRanges) return -1;
  const tailLen = tail ? tailEnd - tailStart : 0;
  lastRunsFromHead = false;
  if (writeArgs !== null && runsFromHead(head, drop)) {
    const bound = firstLine.length + 2 + head.headBytes + extra.length + 2 + tailLen;
    if (bound <= STAGE_BYTES >> 2) {
      const at = STAGE.reserve(bound);
      const a = ARGS;
      a[ARG.RUNS] = 0;
      a[ARG.TAIL_START] = tail ? tailStart : 0;
      a[ARG.TAIL_END] = tail ? tailEnd : 0;
      a[ARG.AT] = at;
      a[ARG.KNOWN_BITS] = KNOWN | KNOW_LENGTHS | KNOW_RUNS_FROM_HEAD | outBits(TableSlot.STAGE, STAGE.buf!) | srcBits(head.buf) | tailBits(tail) | sameBits(firstLine, extra, stagedFirst, stagedExtra);
      a[ARG.FIRST_LEN] = firstLine.length;
      a[ARG.EXTRA_LEN] = extra.length;
      a[ARG.DROP] = drop === null ? 0 : (drop as number);
      writeArgs(STAGE.buf!, firstLine, head.buf, extra, tail);
      stagedFirst = firstLine;
      stagedExtra = extra;
      stagedLen = a[ARG.SIZE]!;
      STAGE.trim(at, stagedLen);
      lastRunsFromHead = true;
      return at;
    }
  }
  const size = addonHeadSize(firstLine, head, drop, extra, tailLen);
  if (size > STAGE_BYTES >> 2) return -1;
  const at = STAGE.reserve(size);
  const wa = writeArgs;
  if (wa !== null) {
    const a = ARGS;
    a[ARG.RUNS] = nRuns;
    a[ARG.TAIL_START] = tail ? tailStart : 0;
    a[ARG.TAIL_END] = tail ? tailEnd : 0;
    a[ARG.AT] = at;
    a[ARG.KNOWN_BITS] = KNOWN | KNOW_LENGTHS | outBits(TableSlot.STAGE, STAGE.buf!) | srcBits(head ? head.buf : null) | tailBits(tail) | sameBits(firstLine, extra, stagedFirst, stagedExtra);
    a[ARG.FIRST_LEN] = firstLine.length;
    a[ARG.EXTRA_LEN] = extra.length;
    wa(STAGE.buf!, firstLine, head ? head.buf : null, extra, tail);
    stagedFirst = firstLine;
    stagedExtra = extra;
  } else write(STAGE.buf!, firstLine, head ? head.buf : null, nRuns, extra, tail, tailStart, tailEnd, at);
  stagedLen = size;
  return at;
}

/** The stage the last encodeHeadStagedAt wrote into (a full stage is replaced, not reused). */
export function stagedBuffer(): Buffer {
  return STAGE.buf!;
}

/** The size of the last encodeHeadStagedAt's head. */
export function stagedLength(): number {
  return stagedLen;
}

/** Every staged head has left: the stage is written from its start again. */
export function resetStage(): void {
  STAGE.at = 0;
}

function encodeHeadIn(staged: boolean, firstLine: string, head: MessageHead | null, drop: Drop, extra: string, tail: Buffer | null, tailStart: number, tailEnd: number): Buffer {
  const write = writeNative;
  if (write === null) return encodeHeadJs(firstLine, head, drop, extra, tail, tailStart, tailEnd);
  const size = addonHeadSize(firstLine, head, drop, extra, tail ? tailEnd - tailStart : 0);
  const out = staged ? STAGE.alloc(size, STAGE_BYTES >> 2) : Buffer.allocUnsafe(size);
  if (boundWrite !== null) boundWrite(out, firstLine, head ? head.buf : null, nRuns, extra, tail, tailStart, tailEnd);
  else write(out, firstLine, head ? head.buf : null, RUNS, nRuns, extra, tail, tailStart, tailEnd);
  return out;
}

/**
 * Heads kept beyond the call (an upstream head stays with its exchange for retries) are packed
 * into a slab, as the parser packs owned heads (native_head.ts): Node's 8 KiB pool made one new
 * ArrayBuffer per ~50 keep-alive requests, and every scavenge sweeps the young ones. A live head
 * pins its slab; a big one gets a Buffer of its own.
 */
const KEPT_BYTES = 32 * 1024;
// 8-byte aligned starts, as the pool's.
const KEPT = new Slabs(KEPT_BYTES, 8, TableSlot.KEPT);

/** Whether the addon's writeSend takes an offset (encodeHeadSendAt). */
const writeSendAt = addonHas('http1WriteSendAt');

let keptLen = 0;

/**
 * encodeHeadSend without a Buffer of its own: the head is keptBuffer()[at, at + keptLength()),
 * `at` returned, and stays there (a kept slab is replaced, never written again); -1 when the addon
 * cannot or the head is large (the caller uses encodeHeadSend). lastHeadSent() as there. The
 * view made per forwarded head was ~96 bytes of a keep-alive request's ~134.
 */
export function encodeHeadSendAt(fd: number, firstLine: string, head: MessageHead | null, drop: Drop, extra: string, requestIdFromEnd: number): number {
  const ws = boundWriteSend;
  if (ws === null || !writeSendAt) return -1;
  lastRunsFromHead = false;
  if (writeSendArgs !== null && runsFromHead(head, drop)) {
    const bound = firstLine.length + 2 + head.headBytes + extra.length + 2;
    if (bound <= KEPT_BYTES >> 3) {
      const at = KEPT.reserve(bound);
      const a = ARGS;
      a[ARG.RUNS] = 0;
      a[ARG.AT] = at;
      a[ARG.FD] = fd;
      a[ARG.KEEP_AT] = requestIdFromEnd > 0 ? requestIdFromEnd : -1;
      a[ARG.KEEP_LEN] = FILL_REQUEST_ID;
      a[ARG.KNOWN_BITS] = KNOWN | KNOW_LENGTHS | KNOW_RUNS_FROM_HEAD | outBits(TableSlot.KEPT, KEPT.buf!) | srcBits(head.buf) | sameBits(firstLine, extra, sentFirst, sentExtra);
      a[ARG.FIRST_LEN] = firstLine.length;
      a[ARG.EXTRA_LEN] = extra.length;
      a[ARG.DROP] = drop === null ? 0 : (drop as number);
      const n = writeSendArgs(KEPT.buf!, firstLine, head.buf, extra);
      sentFirst = firstLine;
      sentExtra = extra;
      keptLen = a[ARG.SIZE]!;
      KEPT.trim(at, keptLen);
      headSent = fd >= 0 ? n : HEAD_NOT_SENT;
      lastRunsFromHead = true;
      return at;
    }
  }
  const size = addonHeadSize(firstLine, head, drop, extra, 0);
  if (size > KEPT_BYTES >> 3) return -1;
  const at = KEPT.reserve(size);
  const wsa = writeSendArgs;
  let n: number;
  if (wsa !== null) {
    const a = ARGS;
    a[ARG.RUNS] = nRuns;
    a[ARG.AT] = at;
    a[ARG.FD] = fd;
    a[ARG.KEEP_AT] = requestIdFromEnd > 0 ? size - requestIdFromEnd : -1;
    a[ARG.KEEP_LEN] = FILL_REQUEST_ID;
    a[ARG.KNOWN_BITS] = KNOWN | KNOW_LENGTHS | outBits(TableSlot.KEPT, KEPT.buf!) | srcBits(head ? head.buf : null) | sameBits(firstLine, extra, sentFirst, sentExtra);
    a[ARG.FIRST_LEN] = firstLine.length;
    a[ARG.EXTRA_LEN] = extra.length;
    n = wsa(KEPT.buf!, firstLine, head ? head.buf : null, extra);
    sentFirst = firstLine;
    sentExtra = extra;
  } else n = ws(KEPT.buf!, firstLine, head ? head.buf : null, nRuns, extra, null, 0, 0, fd, requestIdFromEnd > 0 ? size - requestIdFromEnd : -1, FILL_REQUEST_ID, at);
  headSent = fd >= 0 ? n : HEAD_NOT_SENT;
  keptLen = size;
  return at;
}

/** The slab the last encodeHeadSendAt wrote into. */
export function keptBuffer(): Buffer {
  return KEPT.buf!;
}

/** The size of the last encodeHeadSendAt's head. */
export function keptLength(): number {
  return keptLen;
}

/** lastHeadSent() when encodeHeadSend did not try to send (fd -1, or no combined call). */
export const HEAD_NOT_SENT = -0x7fffffff;

/** The addon's sendHttp1HeadHeld when the downstream stream holds no request any more (kHeadNotHeld in native/http1/http1_js.cc). */
export const HEAD_NOT_HELD = -0x7ffffffe;

/** What the last encodeHeadSend did with its head. */
let headSent = HEAD_NOT_SENT;

/** The last encodeHeadSend's send: bytes the kernel took (the head's length when all), -errno, or HEAD_NOT_SENT. */
export function lastHeadSent(): number {
  return headSent;
}

/** writeSend's keepLen that asks the addon for a fresh request id in the kept range. */
const FILL_REQUEST_ID = -1;

/**
 * encodeHead (no tail) that also sends the head on `fd` in the same addon call when fd >= 0
 * (the caller checked canSendNow); lastHeadSent() then says how much left, and the caller queues
 * the rest (or sends it all when nothing was tried). With `requestIdFromEnd` > 0, the 36 bytes
 * that far before the end (the placeholder value of a request id line in `extra`) become a fresh
 * random UUID v4, written by the addon with the head: JavaScript formats no id (without the
 * combined call, `fillRequestId` writes it). The Buffer is returned either way: it is kept for
 * retries, and the id is read back from it when asked for.
 */
export function encodeHeadSend(fd: number, firstLine: string, head: MessageHead | null, drop: Drop, extra: string, requestIdFromEnd: number, fillRequestId: (out: Buffer, at: number) => void): Buffer {
  const ws = boundWriteSend;
  if (ws === null) {
    // No combined call (older addon, or the direct send is off): encode, fill (the caller's
    // writer: this module stays free of node:crypto, which L4-only configs never load), send.
    const b = encodeHead(firstLine, head, drop, extra);
    if (requestIdFromEnd > 0) fillRequestId(b, b.length - requestIdFromEnd);
    headSent = HEAD_NOT_SENT;
    return b;
  }
  const size = addonHeadSize(firstLine, head, drop, extra, 0);
  const out = KEPT.alloc(size, KEPT_BYTES >> 3);
  const n = ws(out, firstLine, head ? head.buf : null, nRuns, extra, null, 0, 0, fd, requestIdFromEnd > 0 ? size - requestIdFromEnd : -1, FILL_REQUEST_ID);
  headSent = fd >= 0 ? n : HEAD_NOT_SENT;
  return out;
}

/**
 * Writes encodeHead's bytes to `sock` (fd from directFd): when the stream holds nothing, the
 * addon builds the head and send(2)s it in one call, so a head nobody keeps never becomes a
 * Buffer; otherwise, and for what the kernel did not take, encodeHead + the stream. Returns
 * the head's size, negated when the stream asks the caller to wait for 'drain'.
 */
export function sendHead(sock: ClientSocket, fd: number, firstLine: string, head: MessageHead | null, drop: Drop, extra: string, tail: Buffer | null = null, tailStart = 0, tailEnd = 0): number {
  const send = sendNative;
  if (send === null || !canSendNow(sock, fd)) {
    const b = encodeHead(firstLine, head, drop, extra, tail, tailStart, tailEnd);
    return sendTo(sock, fd, b) ? b.length : -b.length;
  }
  const size = addonHeadSize(firstLine, head, drop, extra, tail ? tailEnd - tailStart : 0);
  const src = head ? head.buf : null;
  const n = boundSend !== null ? boundSend(fd, firstLine, src, nRuns, extra, tail, tailStart, tailEnd) : send(fd, firstLine, src, RUNS, nRuns, extra, tail, tailStart, tailEnd);
  if (n === size) return size;
  // Partly sent or not at all (EAGAIN, an error the stream will report): the rest queues.
  const b = encodeHead(firstLine, head, drop, extra, tail, tailStart, tailEnd);
  return sock.write(n > 0 ? b.subarray(n) : b) ? size : -size;
}

/**
 * The TypeScript encoder: the reference the addon's writer is held to, and the path without
 * the addon. One allocation, one copy per run of kept header lines.
 */
export function encodeHeadJs(firstLine: string, head: MessageHead | null, drop: Drop, extra: string, tail: Buffer | null = null, tailStart = 0, tailEnd = 0): Buffer {
  let size = firstLine.length + 2 + extra.length + 2 + (tail ? tailEnd - tailStart : 0);
  const f = head ? head.fieldSlots : null;
  const at = head ? head.fieldsAt : 0;
  const n = head ? (head.fieldsEnd - at) / F.SIZE : 0;
  let keep: Uint8Array | null = null;
  if (f) {
    if (KEEP.length < n) KEEP = new Uint8Array(Math.max(n, KEEP.length * 2));
    keep = KEEP;
    for (let i = 0; i < n; i++) {
      const o = at + i * F.SIZE;
      if (dropped(drop, head!, i, f[o + F.KIND]!)) {
        keep[i] = 0;
        continue;
      }
      keep[i] = 1;
      size += f[o + F.VALUE_END]! - f[o + F.NAME_START]! + 2;
    }
  }
  const out = Buffer.allocUnsafe(size);
  let p = out.write(firstLine, 0, 'latin1');
  out[p++] = 0x0d;
  out[p++] = 0x0a;
  if (f) {
    // Kept lines that follow each other in the source (separated by exactly CRLF) go in one
    // copy: the bytes are the same as line by line, with one Buffer.copy per run, not per line.
    const src = head!.buf;
    let runStart = -1;
    let runEnd = -1;
    for (let i = 0; i < n; i++) {
      if (!keep![i]) continue;
      const o = at + i * F.SIZE;
      const s = f[o + F.NAME_START]!;
      if (runStart >= 0 && s === runEnd + 2 && src[runEnd] === 0x0d && src[runEnd + 1] === 0x0a) {
        runEnd = f[o + F.VALUE_END]!;
        continue;
      }
      if (runStart >= 0) p = copyLine(src, out, p, runStart, runEnd);
      runStart = s;
      runEnd = f[o + F.VALUE_END]!;
    }
    if (runStart >= 0) p = copyLine(src, out, p, runStart, runEnd);
  }
  p += out.write(extra, p, 'latin1');
  out[p++] = 0x0d;
  out[p++] = 0x0a;
  if (tail) p += tail.copy(out, p, tailStart, tailEnd);
  return p === size ? out : out.subarray(0, p);
}

/** Copies src[start, end) to out at p and ends it with CRLF; returns the new position. */
function copyLine(src: Buffer, out: Buffer, p: number, start: number, end: number): number {
  p += src.copy(out, p, start, end);
  out[p++] = 0x0d;
  out[p++] = 0x0a;
  return p;
}

/**
 * Reason phrases for the status lines Strait writes, its own replies and the upstream responses it
 * re-encodes: the codes Envoy names, with Envoy's words; any other code says "Unknown", as Envoy's
 * does (the reason phrase carries no meaning, RFC 9112 §4).
 */
const REASONS: Record<number, string> = {
  100: 'Continue',
  101: 'Switching Protocols',
  200: 'OK',
  201: 'Created',
  202: 'Accepted',
  203: 'Non-Authoritative Information',
  204: 'No Content',
  205: 'Reset Content',
  206: 'Partial Content',
  207: 'Multi-Status',
  208: 'Already Reported',
  226: 'IM Used',
  300: 'Multiple Choices',
  301: 'Moved Permanently',
  302: 'Found',
  303: 'See Other',
  304: 'Not Modified',
  305: 'Use Proxy',
  307: 'Temporary Redirect',
  308: 'Permanent Redirect',
  400: 'Bad Request',
  401: 'Unauthorized',
  402: 'Payment Required',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  407: 'Proxy Authentication Required',
  408: 'Request Timeout',
  409: 'Conflict',
  410: 'Gone',
  411: 'Length Required',
  412: 'Precondition Failed',
  413: 'Payload Too Large',
  414: 'URI Too Long',
  415: 'Unsupported Media Type',
  416: 'Range Not Satisfiable',
  417: 'Expectation Failed',
  421: 'Misdirected Request',
  422: 'Unprocessable Entity',
  423: 'Locked',
  424: 'Failed Dependency',
  426: 'Upgrade Required',
  428: 'Precondition Required',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
  505: 'HTTP Version Not Supported',
  506: 'Variant Also Negotiates',
  507: 'Insufficient Storage',
  508: 'Loop Detected',
  510: 'Not Extended',
  511: 'Network Authentication Required',
};

export function reasonPhrase(status: number): string {
  return REASONS[status] ?? 'Unknown';
}

/** A whole response the proxy writes itself (local replies, redirects, direct responses). */
export function encodeLocalResponse(status: number, headers: string, body: Buffer | string, close: boolean): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  let head = `HTTP/1.1 ${status} ${reasonPhrase(status)}\r\n${headers}`;
  if (status !== 204 && status !== 304 && !(status >= 100 && status < 200)) head += `content-length: ${b.length}\r\n`;
  if (close) head += 'connection: close\r\n';
  head += '\r\n';
  return b.length ? Buffer.concat([Buffer.from(head, 'latin1'), b]) : Buffer.from(head, 'latin1');
}
