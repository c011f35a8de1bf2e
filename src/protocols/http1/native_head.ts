/**
 * HTTP/1.1 heads parsed by the addon (native/http1/head.cc): one call per head validates every
 * byte and fills offsets; this side turns them into a MessageHead. Same rules and results as
 * decoder.ts (a parity test runs both over mutated inputs), cheaper per head because the byte loop
 * runs as compiled code and only the method, target and Host become strings.
 */
import { setTable, tableArg, TableSlot, type NativeBinding } from '../../native.js';
import type { ParseLimits, ParseResult } from './decoder.js';
import { type MessageHead } from './types.js';

/** Slots of the addon's result; mirrors `Slot` in native/http1/head.h. */
const S = { RESULT: 0, MINOR: 1, A: 2, B: 3, C: 4, D: 5, FLAGS: 6, CL_HI: 7, CL_LO: 8, HOST_START: 9, HOST_END: 10, COUNT: 11, COPIED: 12, HOST_GEN: 13, TARGET_GEN: 14, RECORDS_AT: 15, FIELDS: 16 } as const;
const FLAG = { CHUNKED: 1, CLOSE: 2, KEEP_ALIVE: 4, UPGRADE_TOKEN: 8, HAS_UPGRADE: 16, EXPECT_CONTINUE: 32 } as const;

/** The native parser's flags for response fields a proxy adds or drops (kHas* in native/http1/head.h). */
export const enum ResponseHas {
  DATE = 64,
  SERVER = 128,
  REQUEST_ID = 256,
  HTTP2_SETTINGS = 512,
}

/** The native parser's flags for request fields a proxy replaces or appends to (kHas* in native/http1/head.h). */
export const enum RequestHas {
  REQUEST_ID = 256,
  FORWARDED_PROTO = 1024,
  FORWARDED_FOR = 2048,
  CLIENT_CERT = 4096,
}

/** Method strings by their first byte and length, so the common ones cost no string. */
const METHODS = ['GET', 'PUT', 'POST', 'HEAD', 'PATCH', 'DELETE', 'OPTIONS', 'CONNECT', 'TRACE'];
/**
 * The methods by the number the parser puts in a request's flags from bit METHOD_SHIFT (Method
 * in native/http1/head.h; 0: another method, or an addon that numbers none).
 */
const METHOD_BY_ID = ['', 'GET', 'PUT', 'POST', 'HEAD', 'PATCH', 'DELETE', 'OPTIONS', 'CONNECT', 'TRACE'];
const METHOD_SHIFT = 24;

/** The method of the request head the parser reported in `out`. */
function methodIn(out: Int32Array, buf: Buffer): string {
  const id = (out[S.FLAGS]! >>> METHOD_SHIFT) & 15;
  return id !== 0 && id < METHOD_BY_ID.length ? METHOD_BY_ID[id]! : methodOf(buf, out[S.A]!, out[S.B]!);
}

function methodOf(buf: Buffer, s: number, e: number): string {
  const n = e - s;
  for (const m of METHODS) {
    if (m.length !== n || buf[s] !== m.charCodeAt(0)) continue;
    let i = 1;
    while (i < n && buf[s + i] === m.charCodeAt(i)) i++;
    if (i === n) return m;
  }
  return latin1Slice.call(buf, s, e);
}

/**
 * buf[s, e) as a latin1 string. Buffer's own latin1Slice skips toString's argument checks (a
 * quarter of the cost of a short string); the offsets come from the parser, so they are valid.
 */
type Latin1Slice = (this: Buffer, s: number, e: number) => string;
const latin1Slice: Latin1Slice =
  (Buffer.prototype as unknown as { latin1Slice?: Latin1Slice }).latin1Slice ??
  function (this: Buffer, s: number, e: number): string {
    return this.toString('latin1', s, e);
  };

/**
 * The last Host value and request-target seen, reused when the next head carries the same bytes:
 * keep-alive clients and sidecars send one Host over and over, often the same few paths, and
 * comparing a few dozen bytes costs less than a string (~100 ns). A miss costs the comparison
 * up to the first differing byte, usually the length check alone. The bytes are kept beside the
 * string: compared with the string's charCodeAt, each byte cost ~37 instructions (V8 checks the
 * string's representation every time), ~520 a request for a 15-byte Host; byte with byte, ~12.
 */
class LastSlice {
  str = '';
  /** The bytes of `str` (its first `len`); len -1 when it is longer than the copy holds. */
  private readonly bytes = Buffer.alloc(256);
  private len = 0;

  of(buf: Buffer, s: number, e: number): string {
    const n = e - s;
    if (n === this.len) {
      const b = this.bytes;
      let i = 0;
      while (i < n && buf[s + i] === b[i]) i++;
      if (i === n) return this.str;
    }
    const str = latin1Slice.call(buf, s, e);
    this.str = str;
    if (n <= this.bytes.length) {
      const b = this.bytes;
      for (let i = 0; i < n; i++) b[i] = buf[s + i]!;
      this.len = n;
    } else this.len = -1;
    return str;
  }
}

const lastHost = new LastSlice();
const lastTarget = new LastSlice();

function hostOf(buf: Buffer, s: number, e: number): string {
  return lastHost.of(buf, s, e);
}

function targetOf(buf: Buffer, s: number, e: number): string {
  return lastTarget.of(buf, s, e);
}

export interface HeadParser {
  parseRequestHead(buf: Buffer, off: number, end: number, limits: ParseLimits): ParseResult;
  /** `into`: as for parseResponseHeadOwned (the head still points into `buf`). */
  parseResponseHead(buf: Buffer, off: number, end: number, limits: ParseLimits, into?: MessageHead | null): ParseResult;
  /**
   * Like the two above, but a head returned never points into `buf`: its bytes are copied to a
   * buffer shared by many heads. For parsing straight from a read buffer that is reused.
   */
  parseRequestHeadOwned(buf: Buffer, off: number, end: number, limits: ParseLimits, into?: MessageHead | null): ParseResult;
  /**
   * `into`: a head this parser returned before that nobody refers to any more; the new head is
   * written into it (and its fields array) instead of a new object, and returned.
   */
  parseResponseHeadOwned(buf: Buffer, off: number, end: number, limits: ParseLimits, into?: MessageHead | null): ParseResult;
  /**
   * When `head` is the head this parser returned last, parsed where it lies in the reader's
   * registered arena, with its results still in the HEAD_OUT table (the addon can then read its
   * fields itself: respondH1Head), the parser's flags (ResponseHas bits), else -1.
   */
  inTables?(head: MessageHead): number;
  /**
   * Whether `head` is the head this parser returned last, its fields as the parser gave them and
   * still in the registered HEAD_OUT table: the head writers may then have the addon work out the
   * kept lines from there (encodeHeadStagedAt, encodeHeadSendAt), offsets into head.buf.
   */
  fieldsInTables?(head: MessageHead): boolean;
  /** When fieldsInTables(head), the parser's flags for it (RequestHas / ResponseHas bits), else -1. */
  flagsInTables?(head: MessageHead): number;
}

type Writable<T> = { -readonly [K in keyof T]: T[K] };

/**
 * Owned heads are packed one after another into a slab, so a head costs no Buffer of its own;
 * a full slab is replaced and lives on while a head in it does. A live head thus pins at most
 * one slab (4x Node's 8 KiB Buffer pool, which a head in its own small Buffer pins); a head
 * larger than SLAB_BIG that does not fit gets a Buffer of its own rather than a fresh slab.
 */
const SLAB_BYTES = 32 * 1024;
const SLAB_BIG = 4 * 1024;

/**
 * Slots of each results array (`out`): the result slots, then the field records of one head after
 * another, each left where the parser wrote it (the head's fieldSlots). 32 KiB like a head slab: a
 * live head pins the array its records are in, as its bytes pin their slab.
 */
const OUT_SLOTS = 8 * 1024;

/**
 * A results array of `slots`, its memory not zeroed but for the result slots: every record is
 * written by a parse before anything reads it (Int32Array's zeroing of 32 KiB was ~130
 * instructions a request at a new array every few hundred requests).
 */
function newOut(slots: number): Int32Array {
  const out = new Int32Array(Buffer.allocUnsafeSlow(4 * slots).buffer, 0, slots);
  out.fill(0, 0, S.FIELDS);
  return out;
}

/**
 * A parser over the addon's parseHttp1Head, or null when the loaded addon predates it or its
 * records slot (http1BoundOut came with it: an older addon writes every head's records at 16).
 */
export function nativeHeadParser(binding: NativeBinding): HeadParser | null {
  const parse = binding.parseHttp1Head;
  if (typeof parse !== 'function' || binding.http1BoundOut !== true) return null;
  // The results array, replaced (and the heads parsed into it keep it) when the records of a head
  // with max_headers fields might not fit after the last head's; recAt: where the next go.
  let out = newOut(OUT_SLOTS);
  let recAt: number = S.FIELDS;
  // Registered (HEAD_SLAB) when the addon takes it: the head writers then pass no Buffer to read
  // for a head copied here (~250 instructions each).
  const slabTable = binding.http1HeadSlabTable === true;
  const newSlab = (): Buffer => {
    const b = Buffer.allocUnsafeSlow(SLAB_BYTES);
    if (slabTable) setTable(TableSlot.HEAD_SLAB, b);
    return b;
  };
  let slab = newSlab();
  let slabAt = 0;
  // With the addon's bound parser, `out` and the slab are handed over once (and again when
  // replaced), not on every call: two typed-array reads fewer per head.
  type Bound = NonNullable<NativeBinding['bindHttp1HeadParser']>;
  const bind: Bound | null = typeof binding.bindHttp1HeadParser === 'function' ? binding.bindHttp1HeadParser.bind(binding) : null;
  let bound: ReturnType<Bound> | null = null;
  /**
   * parseArenaArgs' arguments: [isRequest (0/1), off, end, maxHeadBytes, maxHeaders, copyAt]
   * (kParse* in native/http1/http1_js.cc), read from memory instead of one N-API call each.
   */
  const args = new Int32Array(6);
  const rebind = (): void => {
    if (bind === null) return;
    // A new binding numbers Host and target values from the start: no string made for a number
    // of the old one may be taken for the same number of the new one.
    hostGen = 0;
    targetGen = 0;
    bound = bind(out, args);
    bound[1](slab);
    setTable(TableSlot.HEAD_OUT, out);
  };
  /** The head run() returned last when it was parsed in the registered arena, else null. */
  let inArena: MessageHead | null = null;
  /** The head run() returned last from the bound parser (arena or not, owned or not), else null. */
  let last: MessageHead | null = null;
  // The Host value and target strings of the numbers the bound parser gave them (HOST_GEN,
  // TARGET_GEN): the addon compares the bytes with the previous head's, which a byte loop here
  // did at ~12 instructions a byte. 0: not numbered (another parse), LastSlice's compare then.
  let hostGen = 0;
  let hostStr = '';
  let targetGen = 0;
  let targetStr = '';
  const targetIn = (buf: Buffer): string => {
    const g = out[S.TARGET_GEN]!;
    if (g === 0) return targetOf(buf, out[S.C]!, out[S.D]!);
    if (g !== targetGen) {
      targetStr = latin1Slice.call(buf, out[S.C]!, out[S.D]!);
      targetGen = g;
    }
    return targetStr;
  };
  const hostIn = (buf: Buffer): string => {
    const g = out[S.HOST_GEN]!;
    if (g === 0) return hostOf(buf, out[S.HOST_START]!, out[S.HOST_END]!);
    if (g !== hostGen) {
      hostStr = latin1Slice.call(buf, out[S.HOST_START]!, out[S.HOST_END]!);
      hostGen = g;
    }
    return hostStr;
  };
  rebind();
  const run = (request: boolean, src: Buffer, off: number, end: number, limits: ParseLimits, owned: boolean, into: MessageHead | null): ParseResult => {
    const need = 5 * limits.maxHeaders;
    if (recAt + need > out.length) {
      out = newOut(Math.max(OUT_SLOTS, S.FIELDS + need));
      recAt = S.FIELDS;
      if (bound !== null) {
        // The same bound functions on the new array: new ones every few hundred heads turned
        // their call sites megamorphic (V8's slow API call path, ~300 instructions a parse).
        bound[1](slab, out);
        setTable(TableSlot.HEAD_OUT, out);
      }
    }
    out[S.RECORDS_AT] = recAt;
    inArena = null;
    last = null;
    let arenaParse = false;
    if (bound !== null) {
      // A head in the reader's arena (the registered one) is parsed without the array as an argument.
      const arena = bound[2];
      arenaParse = arena !== undefined && tableArg(TableSlot.ARENA, src) === null;
      const viaArgs = bound[3];
      if (arenaParse && viaArgs !== undefined) {
        args[0] = request ? 1 : 0;
        args[1] = off;
        args[2] = end;
        // Slots are int32: a larger limit (over the addon's range anyway) must not wrap.
        args[3] = Math.min(limits.maxHeadBytes, 0x7fffffff);
        args[4] = limits.maxHeaders;
        args[5] = owned ? slabAt : -1;
        viaArgs();
      } else if (arenaParse) arena!(request, off, end, limits.maxHeadBytes, limits.maxHeaders, owned ? slabAt : -1);
      else bound[0](request, src, off, end, limits.maxHeadBytes, limits.maxHeaders, owned ? slabAt : -1);
    }
    else if (!owned) parse(request, src, off, end, limits.maxHeadBytes, limits.maxHeaders, out);
    else parse(request, src, off, end, limits.maxHeadBytes, limits.maxHeaders, out, slab, slabAt);
    const r = out[S.RESULT]!;
    if (r <= 0) return r;
    const headBytes = r - off;
    let buf = src;
    let start = off;
    if (owned) {
      if (out[S.COPIED] === 0) {
        // No room left in the slab: a new one, or a Buffer of its own for a big head. The parse
        // is repeated (rare: once per slab) so that the offsets come back shifted.
        if (headBytes > SLAB_BIG) {
          buf = Buffer.allocUnsafe(headBytes);
          start = 0;
        } else {
          buf = slab = newSlab();
          start = slabAt = 0;
          bound?.[1](slab);
        }
        parse(request, src, off, end, limits.maxHeadBytes, limits.maxHeaders, out, buf, start);
      } else {
        buf = slab;
        start = slabAt;
      }
      if (buf === slab) slabAt += headBytes;
    }
    const flags = out[S.FLAGS]!;
    const hi = out[S.CL_HI]!;
    const hs = out[S.HOST_START]!;
    const at = recAt;
    const fieldsEnd = at + 5 * out[S.COUNT]!;
    recAt = fieldsEnd;
    if (into !== null) {
      const h = refill(into as Writable<MessageHead>, request, buf, start, headBytes, at, fieldsEnd);
      if (arenaParse && !owned) inArena = h;
      if (bound !== null) last = h;
      return h;
    }
    const head: MessageHead = {
      buf,
      start,
      headBytes,
      versionMinor: out[S.MINOR]!,
      method: request ? methodIn(out, buf) : '',
      target: request ? targetIn(buf) : '',
      status: request ? 0 : out[S.A]!,
      fieldSlots: out,
      fieldsAt: at,
      fieldsEnd,
      contentLength: hi < 0 ? -1 : hi * 0x1_0000_0000 + (out[S.CL_LO]! >>> 0),
      chunked: (flags & FLAG.CHUNKED) !== 0,
      connectionClose: (flags & FLAG.CLOSE) !== 0,
      connectionKeepAlive: (flags & FLAG.KEEP_ALIVE) !== 0,
      upgrade: (flags & FLAG.UPGRADE_TOKEN) !== 0 && (flags & FLAG.HAS_UPGRADE) !== 0,
      expectContinue: request && (flags & FLAG.EXPECT_CONTINUE) !== 0,
      host: hs < 0 ? '' : hostIn(buf),
    };
    if (arenaParse && !owned) inArena = head;
    if (bound !== null) last = head;
    return head;
  };
  /** run()'s head written into `h`, a head it made before: the same fields, the same order. */
  const refill = (h: Writable<MessageHead>, request: boolean, buf: Buffer, start: number, headBytes: number, at: number, fieldsEnd: number): MessageHead => {
    const flags = out[S.FLAGS]!;
    const hi = out[S.CL_HI]!;
    const hs = out[S.HOST_START]!;
    h.buf = buf;
    h.start = start;
    h.headBytes = headBytes;
    h.versionMinor = out[S.MINOR]!;
    h.method = request ? methodIn(out, buf) : '';
    h.target = request ? targetIn(buf) : '';
    h.status = request ? 0 : out[S.A]!;
    // A store of the same array still costs a write barrier (~120 instructions): most refills
    // find their head's records in the array they are in already.
    if (h.fieldSlots !== out) h.fieldSlots = out;
    h.fieldsAt = at;
    h.fieldsEnd = fieldsEnd;
    h.contentLength = hi < 0 ? -1 : hi * 0x1_0000_0000 + (out[S.CL_LO]! >>> 0);
    h.chunked = (flags & FLAG.CHUNKED) !== 0;
    h.connectionClose = (flags & FLAG.CLOSE) !== 0;
    h.connectionKeepAlive = (flags & FLAG.KEEP_ALIVE) !== 0;
    h.upgrade = (flags & FLAG.UPGRADE_TOKEN) !== 0 && (flags & FLAG.HAS_UPGRADE) !== 0;
    h.expectContinue = request && (flags & FLAG.EXPECT_CONTINUE) !== 0;
    h.host = hs < 0 ? '' : hostIn(buf);
    return h;
  };
  return {
    parseRequestHead: (buf, off, end, limits) => run(true, buf, off, end, limits, false, null),
    parseResponseHead: (buf, off, end, limits, into) => run(false, buf, off, end, limits, false, into ?? null),
    parseRequestHeadOwned: (buf, off, end, limits, into) => run(true, buf, off, end, limits, true, into ?? null),
    parseResponseHeadOwned: (buf, off, end, limits, into) => run(false, buf, off, end, limits, true, into ?? null),
    inTables: (head) => (head === inArena && tableArg(TableSlot.HEAD_OUT, out) === null ? out[S.FLAGS]! : -1),
    // The count check: a caller that cut fields out of the head (h1DropUnderscored,
    // bodylessFraming) left the table's list longer than the head's.
    fieldsInTables: (head) => head === last && head.fieldsEnd - head.fieldsAt === 5 * out[S.COUNT]! && tableArg(TableSlot.HEAD_OUT, out) === null,
    flagsInTables: (head) => (head === last && head.fieldsEnd - head.fieldsAt === 5 * out[S.COUNT]! && tableArg(TableSlot.HEAD_OUT, out) === null ? out[S.FLAGS]! : -1),
  };
}
