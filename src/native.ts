/**
 * The C++ data path (native/, see native/README.md): non-blocking fds polled inside Node's own
 * libuv loop, reads into pooled 64 KiB chunks, one gathered write per flush. Linux only.
 *
 * Conventions: set-up calls (listen, bad arguments) throw; everything on the data path reports a
 * numeric status through a callback (0 = ok, else a negative errno: -111 is ECONNREFUSED).
 * Callbacks always run from the event loop through MakeCallback (own async context), except
 * `NativePipe.close()`, which runs `onClose` synchronously before it returns.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { NativeLoadError } from './errors.js';

/** An address as the addon reports it. unix: `address` is the path ('' for an unnamed client socket, '@name' for the abstract namespace), port 0. */
export interface SockAddr {
  readonly family: 'IPv4' | 'IPv6' | 'unix';
  readonly address: string;
  readonly port: number;
}

/** Why a pipe ended; mirrors `PipeCloseReason` in native/io/pipe.h. */
export const PipeCloseReason = {
  /** Both sides sent EOF and every byte was delivered; both fds closed with FIN. */
  DONE: 0,
  /** No byte moved either way for idleTimeoutMs; both fds closed (FIN, not RST). */
  IDLE_TIMEOUT: 1,
  /** Read/write error or reset on A (downstream); B is reset (RST). */
  RESET_A: 2,
  /** Read/write error or reset on B (upstream); A is reset (RST). */
  RESET_B: 3,
  /** close() was called; both fds reset (RST). */
  LOCAL: 4,
  /** Reserved for internal failures; not produced by the current addon. */
  ERROR: 5,
} as const;
export type PipeCloseReason = (typeof PipeCloseReason)[keyof typeof PipeCloseReason];

/** A running L4 splice between two connected sockets. The pipe owns both fds. */
export interface NativePipe {
  /**
   * Abortive close of both sockets (RST). Idempotent. If the pipe was still open, `onClose(LOCAL, …)`
   * runs synchronously, before close() returns (an exception it throws propagates out of close()).
   */
  close(): void;
  /** Bytes delivered from A to B so far (written to B, not merely read from A). */
  readonly bytesAtoB: number;
  /** Bytes delivered from B to A so far. */
  readonly bytesBtoA: number;
}

/** Accepts on a listening fd from inside the loop. Owns the listening fd. */
export interface NativeAcceptor {
  /** Stop accepting (connections wait in the kernel backlog). Idempotent. */
  pause(): void;
  /** Accept again after pause(). Idempotent. */
  resume(): void;
  /** Stops polling and closes the listening fd (frees the port). Idempotent. */
  close(): void;
}

/** An outbound connect in progress. */
export interface NativeConnectRequest {
  /** Closes the fd; the callback is not called after cancel(). No-op once the callback ran. */
  cancel(): void;
}

/** Data-path figures of this environment (the main thread, or the calling worker thread). */
export interface NativeStats {
  /** Chunks allocated (free in the pool + in use). */
  poolChunks: number;
  /** Chunks holding bytes not yet written out. */
  poolChunksInUse: number;
  /** poolChunks × 64 KiB. */
  poolBytes: number;
  pipesActive: number;
  /** read/readv syscalls made by pipes. */
  readCalls: number;
  /** Gathered-write syscalls made by pipes (sendmsg with an iovec array: writev plus MSG_NOSIGNAL). */
  writevCalls: number;
  /** HTTP/1 heads the bound parser answered from the last head of their kind, the same bytes (HeadMemo). */
  http1HeadsRepeated: number;
  /** HTTP/1 response heads an HTTP/2 stream was answered with from the fields made for the same head before (respondH1Head). */
  h2H1HeadsReused: number;
  /** Header lists (added pairs, trailers) an HTTP/2 session took from the one it scanned last at that place, the same bytes. */
  h2ListsReused: number;
}

/** Settings of a native HTTP/2 session (all required; the TS wrapper fills defaults). */
export interface NativeH2SessionOptions {
  maxConcurrentStreams: number;
  initialWindowSize: number;
  maxHeaderListSize: number;
  maxHeaderPairs: number;
  /** Output bytes queued for the socket above which the peer is not read. */
  highWaterMark: number;
  /** Response bytes queued on one stream above which data() returns false. */
  streamHighWaterMark: number;
  idleTimeoutMs: number;
  /** Client mode: the session speaks first (preface) and opens streams with request(). */
  client?: boolean;
  /** Where each batch's event slots are written (3 per event); without it, a new array per batch. */
  events?: Uint32Array;
  /**
   * Where each batch's field tables are written (FIELD_TABLE in protocols/http2/native_session.ts,
   * shared by every session): entry 0 the count of records, then per header block event in order
   * its field count and, per field, the offsets of the NULs after its name and value and its
   * FieldToken. Written only for batches whose events come in `events` (`fresh` null).
   */
  fields?: Int32Array;
}

/**
 * One batch of session events: `count` events of 3 slots [kind, streamId, payload] in `fresh`
 * when given, else in the session's opts.events. Header payloads index the batch's strings:
 * `objects`, or when that is null the arguments after `pool` (up to 1,019 of them; a batch with
 * more comes as the array). DATA payloads are lengths of consecutive runs of `data` from `base`
 * (a Buffer other batches share, or the batch's own); `pool`: the number of the addon's data
 * pool `data` is (NativeH2Session.dataAt), 0 for none. Addons without the flag h2DataPoolGen
 * pass no `pool`: their strings follow `base`.
 */
export type NativeH2EventsHandler = (
  count: number,
  objects: string[] | null,
  data: Buffer | null,
  fresh: Uint32Array | null,
  base: number,
  pool: number,
  ...strings: string[]
) => void;

/**
 * See NativeBinding.H2Session. Header lists are "name\0value\0..." latin1 strings, or the same
 * bytes as the first `byteLength` bytes of a Uint8Array (filled in place, no string built).
 * `neverIndexed`: "name\0name..." of fields to send as HPACK never-indexed literals, as the
 * previous hop sent them (RFC 7541 §7.1.3); left out when there are none.
 */
export interface NativeH2Session {
  /** false when the stream is gone or already answered. */
  respond(streamId: number, headers: string | Uint8Array, pairs: number, endStream: boolean, byteLength?: number, body?: Uint8Array, neverIndexed?: string): boolean;
  /** respond() with the list in parts, joined by the addon: the [start, end) runs of `src` (a list as the addon gave it) and `extra` (NUL-terminated pairs). */
  respondRuns(streamId: number, src: string, runs: Int32Array | null, nRuns: number, extra: string, pairs: number, endStream: boolean, neverIndexed?: string): boolean;
  /**
   * respondRuns() with the runs (in RUNS_TABLE) cut from the final response head the client
   * session numbered `upSession` keeps for its stream `upStream`, in place of a string handed
   * back: 1 sent, 0 as respondRuns' false, RESPONSE_NOT_HELD when that stream keeps no head.
   */
  respondHeld?(streamId: number, upSession: number, upStream: number, nRuns: number, extra: string, pairs: number, endStream: boolean, neverIndexed?: string): number;
  /**
   * respond() for an HTTP/1 upstream's head: `flat` (`flatLen` bytes, `flatPairs` pairs) holds
   * :status and the added pairs; `spans` the kept fields of `head` as [nameStart, nameEnd,
   * valueStart, valueEnd] quads (nSpans of them), handed to nghttp2 from `head` itself. With
   * `bodyAt` and `bodyLen` (endStream false), head[bodyAt, bodyAt + bodyLen) is the whole body:
   * HEADERS, DATA and END_STREAM from this one call.
   */
  respondSpans(streamId: number, flat: Uint8Array | null, flatLen: number, flatPairs: number, head: Uint8Array | null, spans: Int32Array | null, nSpans: number, endStream: boolean, bodyAt?: number, bodyLen?: number): boolean;
  /** respondSpans() with the flat list, the head and the spans all in their registered tables (setTable): three arguments fewer to check. */
  respondSpansTables(streamId: number, flatLen: number, flatPairs: number, nSpans: number, endStream: boolean, bodyAt?: number, bodyLen?: number): boolean;
  /**
   * respondSpansTables() with the spans worked out by the addon from the HTTP/1 response head
   * parsed last (its results in the HEAD_OUT table, its bytes in the ARENA table): its fields
   * follow the flat list's pairs less hop-by-hop ones, http2-settings and, with `dropServer`,
   * server.
   */
  respondH1Head(streamId: number, flatLen: number, flatPairs: number, dropServer: boolean, endStream: boolean, bodyAt?: number, bodyLen?: number): boolean;
  /** Client mode: opens a stream; its id (> 0), or a negative nghttp2 error, or 0 once the session is closing. */
  request(headers: string | Uint8Array, pairs: number, endStream: boolean, byteLength?: number, neverIndexed?: string): number;
  /**
   * request() with the list in parts, joined by the addon: the pseudo-headers (`:scheme` http),
   * the [start, end) runs of `src` (a list as the addon gave it) and `extra` (NUL-terminated pairs).
   */
  requestRuns(method: string, path: string, authority: string, src: string, runs: Int32Array | null, nRuns: number, extra: string, pairs: number, endStream: boolean, neverIndexed?: string, fillId?: boolean): number;
  /**
   * requestRuns() with the kept runs cut from the request block a server session of this thread
   * keeps for its stream `downStream` (`downSession`: that session's sid()); `same` bits 1, 2, 4:
   * method, path, authority are the request's own (the string given is not read).
   * REQUEST_NOT_HELD when that stream holds no request any more. `fillId` (both): `extra`'s last
   * pair is REQUEST_ID_FILL_PAIR, whose value the addon replaces with a fresh request id.
   */
  requestHeld(downSession: number, downStream: number, same: number, method: string, path: string, authority: string, runs: Int32Array | null, nRuns: number, extra: string, pairs: number, endStream: boolean, neverIndexed?: string, fillId?: boolean): number;
  /** false: the stream holds its high-water mark or more; a drain event follows. */
  data(streamId: number, chunk: Uint8Array | null, endStream: boolean): boolean;
  /**
   * data() for `len` bytes at `off` in `pool`, a batch's Buffer whose data pool number is `gen`
   * (not 0): the addon copies them from its pool while it is that one, no view made.
   */
  dataAt?(streamId: number, pool: Buffer, off: number, len: number, gen: number, endStream?: boolean): boolean;
  /** Ends the body with these trailers (0 pairs: END_STREAM on an empty DATA frame). */
  trailers(streamId: number, trailers: string | Uint8Array, pairs: number, byteLength?: number, neverIndexed?: string): void;
  rst(streamId: number, code: number): void;
  /** JavaScript has taken `bytes` of the stream's request body: the peer's window grows by that much. */
  consume(streamId: number, bytes: number): void;
  /** Graceful: GOAWAY, then the end once open streams are done. */
  close(): void;
  goaway(code: number): void;
  /** Ends now; the session-end event runs before destroy() returns. */
  destroy(): void;
  /** malformedMessages: streams reset for breaking RFC 9113 §8 (a bad field, a body off its content-length). */
  stats(): { openStreams: number; streamsTotal: number; outputBytes: number; queuedBodyBytes: number; rejectedHeaders: number; malformedMessages: number };
  /** The number H2Session.calls name this session by. */
  sid(): number;
}

/**
 * NativeH2Session's per-request calls as functions shared by every session, each taking the
 * session's number (sid()) first (NumberedH2Session in protocols/http2/native_session.ts).
 */
export interface NativeH2Calls {
  respond(sid: number, streamId: number, headers: string | Uint8Array, pairs: number, endStream: boolean, byteLength?: number, body?: Uint8Array, neverIndexed?: string): boolean;
  respondRuns(sid: number, streamId: number, src: string, runs: Int32Array | null, nRuns: number, extra: string, pairs: number, endStream: boolean, neverIndexed?: string): boolean;
  /**
   * respondRuns() for the final response head a client session of this thread keeps for its
   * stream (the list its runs are cut from): numbers in CALL_ARGS ([session, streamId,
   * upSession, upStream, nRuns, pairs, endStream ? 1 : 0]), runs in RUNS_TABLE. 1 sent, 0 as
   * respondRuns' false, RESPONSE_NOT_HELD when that stream keeps no head any more.
   */
  respondHeldArgs?(extra: string, neverIndexed?: string): number;
  respondSpans(sid: number, streamId: number, flat: Uint8Array | null, flatLen: number, flatPairs: number, head: Uint8Array | null, spans: Int32Array | null, nSpans: number, endStream: boolean, bodyAt?: number, bodyLen?: number): boolean;
  respondSpansTables(sid: number, streamId: number, flatLen: number, flatPairs: number, nSpans: number, endStream: boolean, bodyAt?: number, bodyLen?: number): boolean;
  respondH1Head(sid: number, streamId: number, flatLen: number, flatPairs: number, dropServer: boolean, endStream: boolean, bodyAt?: number, bodyLen?: number): boolean;
  /**
   * respondH1Head() with its numbers in CALL_ARGS: [sid, streamId, flatLen, flatPairs,
   * dropServer ? 1 : 0, endStream ? 1 : 0, bodyAt (-1: no whole body), bodyLen].
   */
  respondH1HeadArgs?(): boolean;
  request(sid: number, headers: string | Uint8Array, pairs: number, endStream: boolean, byteLength?: number, neverIndexed?: string): number;
  requestRuns(sid: number, method: string, path: string, authority: string, src: string, runs: Int32Array | null, nRuns: number, extra: string, pairs: number, endStream: boolean, neverIndexed?: string, fillId?: boolean): number;
  requestHeld(sid: number, downSession: number, downStream: number, same: number, method: string, path: string, authority: string, runs: Int32Array | null, nRuns: number, extra: string, pairs: number, endStream: boolean, neverIndexed?: string, fillId?: boolean): number;
  /**
   * requestHeld() with its numbers in CALL_ARGS ([sid, downSession, downStream, same, nRuns,
   * pairs, endStream ? 1 : 0, fillId ? 1 : 0]) and its runs in RUNS_TABLE.
   */
  requestHeldArgs?(method: string, path: string, authority: string, extra: string, neverIndexed?: string): number;
  data(sid: number, streamId: number, chunk: Uint8Array | null, endStream: boolean): boolean;
  /**
   * data() with its numbers in CALL_ARGS: [sid, streamId, endStream ? 1 : 0]; with DATA_FROM_POOL
   * added to the third, no argument and [pool number, offset, length] after it: DATA_NOT_IN_POOL
   * when that pool is not the addon's any more.
   */
  dataArgs?(chunk?: Uint8Array | null): boolean | number;
  trailers(sid: number, streamId: number, trailers: string | Uint8Array, pairs: number, byteLength?: number, neverIndexed?: string): void;
  /** trailers() for a string list with its numbers in CALL_ARGS: [sid, streamId, pairs]. */
  trailersArgs?(trailers: string, neverIndexed?: string): void;
  rst(sid: number, streamId: number, code: number): void;
  consume(sid: number, streamId: number, bytes: number): void;
}

/** The hot-restart channel (native/upgrade): SOCK_SEQPACKET messages with fds attached. */
export interface NativeUpgradeChannel {
  listen(path: string): number;
  /** -1 when nothing listens at `path`. */
  connect(path: string): number;
  send(fd: number, data: Buffer, fds?: number[]): void;
  /** null when nothing arrived within the timeout. */
  recv(fd: number, timeoutMs: number): { data: Buffer; fds: number[] } | { eof: true } | null;
  dup(fd: number): number;
}

/** The addon's exports (native/addon.cc). */
export interface NativeBinding {
  upgrade: NativeUpgradeChannel;
  readonly version: string;
  /**
   * Create a non-blocking listening TCP socket (SO_REUSEADDR; SO_REUSEPORT when reusePort).
   * `host` is an IPv4 or IPv6 literal (no DNS); port 0 = ephemeral. Returns the fd.
   * Throws an Error with `code` = errno name (e.g. 'EADDRINUSE') on failure, TypeError on bad arguments.
   */
  listenTcp(host: string, port: number, backlog: number, reusePort: boolean): number;
  /**
   * Non-blocking listening unix stream socket at `path` ('@name' = Linux abstract namespace). An
   * existing socket file is replaced only when it is stale (nothing accepts on it); a live socket
   * or a non-socket file throws EADDRINUSE. Returns the fd.
   */
  listenUnix(path: string, backlog: number): number;
  /** getsockname(fd). Throws (code 'EBADF', ...) on a bad fd. */
  localAddress(fd: number): SockAddr;
  /** close(fd). Throws EBADF for an fd that is not open (a double close is a bug). */
  closeFd(fd: number): void;
  /**
   * recv(MSG_PEEK | MSG_DONTWAIT) into `buf`: the bytes the peer has sent so far, left in the
   * socket. Returns their count, 0 at EOF, or -errno (-EAGAIN: nothing yet). Absent in addons
   * built before it.
   */
  peekFd?(fd: number, buf: Buffer): number;
  /** One non-blocking send(2) of `buf`: bytes sent (maybe fewer) or -errno. Absent in old addons. */
  sendHttp1?(fd: number, buf: Uint8Array): number;
  /** shutdown(fd, SHUT_WR): 0 or -errno. Absent in addons built before it. */
  shutdownFd?(fd: number): number;
  /**
   * Polls a listening fd; accept4(SOCK_NONBLOCK|SOCK_CLOEXEC) up to 64 per wake-up; onAccept runs
   * once per accepted socket, which the callback then owns (TCP_NODELAY already set on TCP), all
   * of a wake-up's in one callback scope: microtasks they queue run once the last is handed over
   * (or a throw, reported as uncaught, closes the scope first). Resource errors (EMFILE, ENFILE, ENOBUFS, ENOMEM) call onError(errnoName) and pause
   * accepting for 100 ms instead of spinning. Keeps the process alive until close().
   */
  /**
   * With `repeatPeer`, a TCP peer with the IP of the connection accepted before it comes with
   * `family` and `address` undefined: they are that connection's (no strings made for them).
   */
  /**
   * With `batch` (an Int32Array of 2 slots or more), onAccept is called once per wake-up with the
   * count of connections (at most half the array's length): the i-th one's fd and port are
   * batch[2i] and batch[2i + 1], its family and address peers[2i] and peers[2i + 1], undefined
   * as with repeatPeer (`peers` itself undefined when all are).
   */
  Acceptor: {
    new (
      fd: number,
      onAccept: (fd: number, family: SockAddr['family'] | undefined, address: string | undefined, port: number) => void,
      onError: (code: string) => void,
      repeatPeer?: boolean,
    ): NativeAcceptor;
    new (
      fd: number,
      onAccept: (count: number, peers: (string | undefined)[] | undefined) => void,
      onError: (code: string) => void,
      repeatPeer: boolean,
      batch: Int32Array,
    ): NativeAcceptor;
  };
  /**
   * Non-blocking connect to an IP literal (DNS is resolved in TS) or, when `port < 0`, to the
   * unix socket path `host`. `callback(status, fd)` always runs from the loop, never
   * synchronously: status 0 = connected (fd usable, TCP_NODELAY set; the caller owns it), else a
   * negative errno and fd -1 (-ETIMEDOUT when timeoutMs elapsed first; timeoutMs 0 = no timeout;
   * a unix listener with a full backlog gives -EAGAIN). Throws TypeError for a non-literal host.
   */
  connect(host: string, port: number, timeoutMs: number, callback: (status: number, fd: number) => void): NativeConnectRequest;
  /**
   * L4 splice between two connected fds (A = downstream, B = upstream); owns both from the call
   * on (closes them if construction fails after argument checks). Byte-exact, order-preserving;
   * at most `highWaterMark` bytes buffered per direction (the source is not read while that much
   * waits); half-close carried both ways; `onClose` exactly once with a PipeCloseReason and the
   * bytes delivered each way. idleTimeoutMs 0 disables the idle timeout.
   */
  Pipe: new (
    fdA: number,
    fdB: number,
    opts: { idleTimeoutMs: number; highWaterMark: number },
    onClose: (reason: PipeCloseReason, bytesAtoB: number, bytesBtoA: number) => void,
  ) => NativePipe;
  /** Data-path figures of the calling environment (each worker thread has its own pool). */
  stats(): NativeStats;
  /**
   * Turns off libuv's idle-time metrics on this loop, which Node turns on and Strait never reads:
   * each blocking epoll_pwait is then no longer preceded by a non-blocking one. True when they
   * were on and are now off. Absent in addons built before it.
   */
  disableLoopIdleTime?(): boolean;
  /** Registers `table` in `slot` (TableSlot): the array calls read where they are given null for it. */
  setTable?(slot: TableSlot, table: Int32Array | Uint8Array | Float64Array): void;
  /** Errno name of a status: -111 (or 111) → 'ECONNREFUSED'. */
  errnoName(code: number): string;
  /**
   * A downstream HTTP/2 server session run by nghttp2 in C++ (native/http2/session.h); owns `fd`
   * from the call on. `onEvents` gets one flat array per read batch: [kind, streamId, payload, ...]
   * (kinds: src/protocols/http2/native_session.ts H2Event). Use through that module. Absent in
   * addons built before it.
   */
  H2Session?: { new (fd: number, opts: NativeH2SessionOptions, initial: Buffer | null, onEvents: NativeH2EventsHandler): NativeH2Session; calls: NativeH2Calls };
  /**
   * Header-only frame decoding (native/codec/): the native twin of `RpcCodec.decodeHeader` in
   * src/protocols/types.ts, same slots (`H`), same results. Never reads outside `buf[off, end)`;
   * allocates nothing. Throws TypeError/RangeError only for bad arguments (off/end outside the
   * buffer, maxFrame outside [0, 2^31), `out` not an Int32Array of at least H.SIZE slots).
   * Use through src/protocols/native_codec.ts.
   */
  decodeHeader(protocol: NativeCodecProtocol, buf: Uint8Array, off: number, end: number, maxFrame: number, out: Int32Array): void;
  /** `RpcCodec.decodeLazy` natively; reads the slots decodeHeader filled, never past `buf`'s end. */
  decodeLazy(protocol: NativeCodecProtocol, buf: Uint8Array, off: number, out: Int32Array, field: NativeLazyField): void;
  /**
   * Decodes consecutive frames from `off` into consecutive H.SIZE-slot records of `out`, at most
   * `maxFrames` (and no more than `out` holds), in one call. Returns the number of records filled:
   * every record but the last has STATE 1; the last may be a partial frame (STATE 0, FRAME_LEN
   * known once its fixed header is in) or an error (STATE < 0), where decoding stopped.
   */
  decodeFrames(protocol: NativeCodecProtocol, buf: Uint8Array, off: number, end: number, maxFrame: number, out: Int32Array, maxFrames: number): number;
  /**
   * decodeFrames with protocol, maxFrame, `out` and maxFrames bound once: the returned function
   * takes (buf, off, end) and keeps `out` alive. Absent in addons built before it.
   */
  bindFrameDecoder?(protocol: NativeCodecProtocol, maxFrame: number, out: Int32Array, maxFrames: number): (buf: Uint8Array, off: number, end: number) => number;
  /**
   * Parses an HTTP/1.1 request or response head in buf[off, end) into `out` (layout in
   * native/http1/head.h: result slots, the field records from slot out[15], 16 when 0, with room
   * for 5 × maxHeaders there). Allocates nothing; throws only for bad arguments.
   * Use through src/protocols/http1/native_head.ts. Absent in addons built before it.
   */
  parseHttp1Head?(isRequest: boolean, buf: Uint8Array, off: number, end: number, maxHeadBytes: number, maxHeaders: number, out: Int32Array, copyTo?: Uint8Array, copyAt?: number): void;
  /** setTable takes TableSlot.HEAD_SLAB, which the HTTP/1 head writers then read (absent in addons built before it). */
  readonly http1HeadSlabTable?: boolean;
  /** The bound head parser's setSlab takes a new results array as its second argument (absent in addons built before it). */
  readonly http1BoundOut?: boolean;
  /**
   * parseHttp1Head with `out` and the copy slab bound once: `parse(..., copyAt)` copies into the
   * slab last given to `setSlab` when copyAt >= 0. Both keep `out` and the slab alive. Absent in
   * addons built before it.
   */
  /** parseArena (when present): parse() of the array registered as TableSlot.ARENA, without it as an argument. */
  bindHttp1HeadParser?(out: Int32Array, args?: Int32Array): [
    parse: (isRequest: boolean, buf: Uint8Array, off: number, end: number, maxHeadBytes: number, maxHeaders: number, copyAt: number) => void,
    setSlab: (slab: Uint8Array, out?: Int32Array) => void,
    parseArena?: (isRequest: boolean, off: number, end: number, maxHeadBytes: number, maxHeaders: number, copyAt: number) => void,
    /** With `args`: parseArena taking [isRequest (0/1), off, end, maxHeadBytes, maxHeaders, copyAt] from it. */
    parseArenaArgs?: () => void,
  ];
  /**
   * Reads many sockets (each through its own dup of the fd) and hands every read of one loop turn
   * to `onBatch(count)` at once: `out[3i..3i+2]` = slot, offset into `arena`, length (> 0 bytes,
   * 0 EOF, BATCH_WRITABLE the socket takes writes again (watchWrite), other < 0 -errno; the
   * slot reads no more after EOF or an error; slot -1: removed, skip). Bytes are
   * valid only during the call. Use through src/protocols/http1/batch_reader.ts. Absent in
   * addons built before it.
   * `removals` (3 slots or more): removals[0] is 1 while a batch is handed out (its nextTicks
   * included); slots JavaScript writes at removals[2 ...] (slot * 2 + exclusive), counting them
   * in removals[1], are removed as remove() would when that batch ends.
   */
  BatchReader?: {
    new (arena: Buffer, out: Int32Array, onBatch: (count: number) => void, removals?: Int32Array): NativeBatchReader;
    calls?: NativeBatchReaderCalls;
  };
}

/** See NativeBinding.BatchReader. */
export interface NativeBatchReader {
  /**
   * Starts reading a dup of `fd`, or with `own` the fd itself (closed by remove()); returns its
   * slot. Throws (code = errno name) when dup or poll fails; an owned fd then stays the caller's.
   */
  add(fd: number, own?: boolean): number;
  pause(slot: number): void;
  resume(slot: number): void;
  /**
   * Stops reading and closes the dup (the owned fd); idempotent. Pending entries of the slot
   * become -1. `exclusive`: an owned fd that no other descriptor shares, whose close removes its
   * epoll registration (no EPOLL_CTL_DEL first); ignored for a dup. Older addons ignore it.
   */
  remove(slot: number, exclusive?: boolean): void;
  /** remove() that leaves the fd open (an owned fd moving to another owner). Absent in older addons. */
  detach?(slot: number): void;
  /** One BATCH_WRITABLE entry once the socket can take bytes (or has failed). Absent in older addons. */
  watchWrite?(slot: number): void;
  /** Hands pending reads to onBatch now (no-op inside onBatch). */
  flush(): void;
  /** Events that came for a freed slot, counted (a registration a close left behind keeps reporting). Absent in older addons. */
  staleEvents?(): number;
  /** The number BatchReader.calls name this reader by. Absent in older addons. */
  rid?(): number;
}

/**
 * NativeBatchReader's per-connection calls as functions shared by every reader, each taking the
 * reader's number (rid()) first: the prototype's methods find their object through napi_unwrap
 * on every call.
 */
export interface NativeBatchReaderCalls {
  add(rid: number, fd: number, own?: boolean): number;
  pause(rid: number, slot: number): void;
  resume(rid: number, slot: number): void;
  remove(rid: number, slot: number, exclusive?: boolean): void;
  detach(rid: number, slot: number): void;
  watchWrite(rid: number, slot: number): void;
}

/** The length of a batch entry saying its socket takes writes again (kWritable in native/io/batch_reader.h). */
export const BATCH_WRITABLE = -2147483648;

/** Protocol numbers of the native decoders; mirrors `Protocol` in native/codec/codec.h. */
export const NativeCodecProtocol = {
  BOLT: 1,
  DUBBO: 2,
} as const;
export type NativeCodecProtocol = (typeof NativeCodecProtocol)[keyof typeof NativeCodecProtocol];

/** `LazyField` numbered for the boundary; mirrors `LazyField` in native/codec/codec.h. */
export const NativeLazyField = {
  METHOD: 1,
  GROUP: 2,
} as const;
export type NativeLazyField = (typeof NativeLazyField)[keyof typeof NativeLazyField];

/** 64 KiB: the addon's buffer chunk size (native/io/buffer_pool.h). */
export const NATIVE_CHUNK_SIZE = 64 * 1024;

// src/native.ts runs as dist/native.js once compiled; both sit one level below the repo root.
const ADDON_PATH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../build/Release/strait_native.node');

let binding: NativeBinding | null = null;

/**
 * The addon, loaded on first use (so `--io-engine node` never needs it). A missing or broken
 * build throws NativeLoadError: never a silent fallback.
 */
/**
 * The [start, end) runs of a header list, written right before the addon call that reads them
 * (respondRuns, requestRuns, writeHttp1HeadFromFlat), which is passed null for them: the addon
 * holds this array from load on, so a call need not look up an Int32Array argument's memory
 * (~380 instructions). A list with more runs than fit passes an array of its own.
 */
export const RUNS_TABLE = new Int32Array(1024);

/** requestHeld's answer when the downstream stream no longer holds its request (kNotHeld in native/http2/session.cc). */
export const REQUEST_NOT_HELD = -1;

/** respondHeldArgs' answer when the upstream stream keeps no response head any more (kResponseNotHeld in native/http2/session.cc). */
export const RESPONSE_NOT_HELD = -1;

/** dataArgs' endStream slot bit (kDataFromPool): the chunk is CALL_ARGS[4..5] (offset, length) of the pool numbered CALL_ARGS[3]. */
export const DATA_FROM_POOL = 2;
/** dataArgs' answer for a pool that is not the addon's any more (kDataNotInPool): pass the bytes as a Buffer. */
export const DATA_NOT_IN_POOL = -1;

/**
 * The slots of the addon's registered arrays (TableSlot in native/io/env.h, same numbers). A
 * call given null where such an array goes reads the one registered in its slot: finding a
 * typed array argument's memory costs the addon ~350 instructions, a null ~60.
 */
export const enum TableSlot {
  /** RUNS_TABLE. */
  RUNS = 0,
  /** The shared flat header writer's buffer (FLAT in protocols/http2/flat_headers.ts). */
  FLAT = 1,
  /** The shared span list of an HTTP/1 head forwarded to HTTP/2 (H1_SPANS in h2_session.ts). */
  SPANS = 2,
  /** The HTTP/1 batch reader's arena (protocols/http1/batch_reader.ts). */
  ARENA = 3,
  /** The native HTTP/1 head parser's results (`out` in protocols/http1/native_head.ts). */
  HEAD_OUT = 4,
  /** The slab HTTP/1 response heads are staged in (STAGE in protocols/http1/encoder.ts). */
  STAGE = 5,
  /** The slab forwarded HTTP/1 request heads are kept in (KEPT in protocols/http1/encoder.ts). */
  KEPT = 6,
  /** CALL_ARGS: the numbers of the calls that take them from memory (sendHttp1HeadHeldArgs and H2Session.calls' *Args forms). */
  CALL_ARGS = 7,
  /** The slab the native HTTP/1 head parser copies owned heads into (protocols/http1/native_head.ts). */
  HEAD_SLAB = 8,
}

/**
 * Where a call that takes its numbers from memory finds them (registered as TableSlot.CALL_ARGS):
 * each such call's slots are listed with it; a Float64Array, since a session number may not fit
 * an int32. Written right before the call, read during it: no other use in between.
 */
export const CALL_ARGS = new Float64Array(16);

/** What each slot holds now (also before the addon loads: loadNative registers them then). */
const tables: (Int32Array | Uint8Array | Float64Array | null)[] = [RUNS_TABLE, null, null, null, null, null, null, CALL_ARGS, null];

/** Makes `table` the array of `slot`; its owner calls this again when it replaces the array. */
export function setTable(slot: TableSlot, table: Int32Array | Uint8Array): void {
  tables[slot] = table;
  binding?.setTable?.(slot, table);
}

/** @internal the array registered in `slot` now (tests that swap one put it back). */
export function registeredTable(slot: TableSlot): Int32Array | Uint8Array | Float64Array | null {
  return tables[slot] ?? null;
}

/** null when `table` is the array registered in `slot` (the addon reads it from there), else `table`. */
export function tableArg<T extends Int32Array | Uint8Array>(slot: TableSlot, table: T): T | null {
  return tables[slot] === table ? null : table;
}

export function loadNative(): NativeBinding {
  if (binding) return binding;
  try {
    binding = createRequire(import.meta.url)(ADDON_PATH) as NativeBinding;
  } catch (err) {
    throw new NativeLoadError(
      `cannot load the native addon ${ADDON_PATH}: ${(err as Error).message}; run "npm ci" (node-gyp rebuild), or start with --io-engine node`,
      { cause: err },
    );
  }
  for (let k = 0; k < tables.length; k++) if (tables[k] !== null) binding.setTable?.(k, tables[k]!);
  return binding;
}

/** Same as loadNative(); the name existing callers use. */
export const native: () => NativeBinding = loadNative;
