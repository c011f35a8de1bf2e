/**
 * Writes to a plain TCP / unix socket with one send(2) from the addon when nothing is queued on
 * it, instead of Node's stream write (a WriteWrap, a nextTick per write, the Writable state
 * machine): on a keep-alive HTTP/1.1 exchange that machinery costs more CPU than the head
 * encoding. Whatever the kernel does not take at once (a full socket buffer, an error) goes
 * through socket.write, which queues it in order, emits 'drain' later or reports the error.
 */
import type net from 'node:net';
import netModule from 'node:net';
import { isDirectSocket, type ClientSocket } from '../../io/direct_socket.js';
import { loadNative } from '../../native.js';

type SendFn = (fd: number, buf: Uint8Array) => number;

function findSend(): SendFn | null {
  if (process.env.STRAIT_HTTP1_SEND === 'stream') return null;
  try {
    const f = (loadNative() as unknown as { sendHttp1?: SendFn }).sendHttp1;
    return typeof f === 'function' ? f : null;
  } catch {
    return null; // no addon (node engine without a build): streams only
  }
}

const send = findSend();
/** The same function with a range (addons with http1StagedRanges; encodeHeadStagedAt checks). */
const sendRange = send as ((fd: number, buf: Uint8Array, off: number, len: number) => number) | null;

/** Node's internals this reads: the handle (null once destroyed) and its fd, the write queue's state. */
interface RawSocket {
  _handle: { fd?: number } | null;
  encrypted?: boolean;
  /** What writableLength / writableCorked read, each through a getter; plain fields in Node 20 and 22. */
  _writableState?: { length?: number; corked?: number };
}

/**
 * The fd to send on directly, or -1 when every write must go through the stream: no addon
 * helper, TLS (the bytes must be encrypted by Node), or a handle without an fd (Windows pipes).
 * Read once per socket; `sendTo` checks the handle is still alive on every write.
 */
export function directFd(sock: ClientSocket): number {
  if (send === null) return -1;
  if (isDirectSocket(sock)) return sock.fd;
  const raw = sock as unknown as RawSocket;
  if (raw.encrypted) return -1;
  const fd = raw._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : -1;
}

/**
 * The symbol net.Socket keeps its handle under (`_handle` is a getter of it): its keyed load in
 * that getter serves every socket of the process and is megamorphic, ~217 instructions a read,
 * where this module's own load of the same key sees only the proxy's sockets. Null where
 * `_handle` is a plain field (older Node): read as it is.
 */
const HANDLE_KEY: symbol | null = (() => {
  const get = Object.getOwnPropertyDescriptor(netModule.Socket.prototype, '_handle')?.get;
  if (get === undefined) return null;
  const key = Object.getOwnPropertySymbols(new netModule.Socket()).find((k) => k.description === 'kHandle');
  if (key === undefined) return null;
  // The getter must read exactly that key.
  const probe = {};
  return get.call({ [key]: probe }) === probe ? key : null;
})();

/** sock._handle without its getter (see HANDLE_KEY). */
function handleOf(sock: net.Socket): { fd?: number } | null {
  const h = HANDLE_KEY === null ? undefined : (sock as unknown as Record<symbol, { fd?: number } | null | undefined>)[HANDLE_KEY];
  // Not a net.Socket after all (no such key): its own `_handle`, or none.
  return h !== undefined ? h : ((sock as unknown as RawSocket)._handle ?? null);
}

/** True when bytes may go to `fd` (from directFd) directly now: sendTo's rule, below. */
export function canSendNow(sock: ClientSocket, fd: number): boolean {
  if (fd < 0) return false;
  // Its fd is -1 once it is closed: a number another connection may have by now is never used.
  if (isDirectSocket(sock)) return sock.idle() && sock.fd === fd;
  const raw = sock as unknown as RawSocket;
  // Two getters fewer per write than writableLength/writableCorked; should the fields ever be
  // missing, `undefined === 0` is false and every write takes the stream: slower, never wrong.
  const w = raw._writableState;
  return w !== undefined && w.length === 0 && w.corked === 0 && handleOf(sock) !== null && !sock.connecting && sock.writable;
}

/** @internal whether canSendNow reads the handle under its key (tests). */
export const HANDLE_FROM_KEY = HANDLE_KEY !== null;

/**
 * socket.write(b), sending directly on `fd` (from directFd) when that keeps the byte order: the
 * stream holds nothing (queued or in flight), is not corked, connected and still writable. The
 * handle check matters: a destroyed socket's fd number may already belong to another connection.
 */
export function sendTo(sock: ClientSocket, fd: number, b: Buffer): boolean {
  if (canSendNow(sock, fd)) {
    const n = send!(fd, b);
    if (n === b.length) return true;
    // Partly sent: the rest queues behind nothing. An error (EAGAIN, EPIPE...) sent nothing:
    // the stream retries and, for a real error, destroys the socket as usual.
    if (n > 0) return sock.write(b.subarray(n));
  }
  return sock.write(b);
}

/**
 * sendStaged for buf[at, at + len) (encodeHeadStagedAt): one send of the range, no view; what
 * the kernel does not take is queued as a copy.
 */
export function sendStagedRange(sock: ClientSocket, fd: number, buf: Buffer, at: number, len: number): boolean {
  if (canSendNow(sock, fd)) {
    const n = sendRange!(fd, buf, at, len);
    if (n === len) return true;
    if (n > 0) return sock.write(Buffer.from(buf.subarray(at + n, at + len)));
  }
  return sock.write(Buffer.from(buf.subarray(at, at + len)));
}

/**
 * sendTo for buf[at, at + len) of bytes that stay as they are (a kept head, encodeHeadSendAt):
 * one send of the range; a view only when the stream must queue what the kernel did not take.
 */
export function sendKeptRange(sock: ClientSocket, fd: number, buf: Buffer, at: number, len: number): boolean {
  if (canSendNow(sock, fd)) {
    const n = sendRange!(fd, buf, at, len);
    if (n === len) return true;
    if (n > 0) return sock.write(buf.subarray(at + n, at + len));
  }
  return sock.write(buf.subarray(at, at + len));
}

/** sendTo for bytes that are reused once this returns (encodeHeadStaged): what the stream queues is a copy. */
export function sendStaged(sock: ClientSocket, fd: number, b: Buffer): boolean {
  if (canSendNow(sock, fd)) {
    const n = send!(fd, b);
    if (n === b.length) return true;
    if (n > 0) return sock.write(Buffer.from(b.subarray(n)));
  }
  return sock.write(Buffer.from(b));
}

type SendRangesFn = (n: number, table: Int32Array, bufs: Uint8Array[]) => void;

function findSendRanges(): SendRangesFn | null {
  if (send === null) return null;
  const f = (loadNative() as unknown as { sendHttp1Ranges?: SendRangesFn }).sendHttp1Ranges;
  return typeof f === 'function' ? f : null;
}

const sendRanges = findSendRanges();

/**
 * Sends a batch's end queues (queueRange), made in one addon call by flushRanges: on keep-alive
 * traffic every exchange sent its response and its upstream request head there with a call of
 * their own, whose entry and argument reads (~800 instructions) cost more than the send.
 * Rows of ROW in `table`, written as they are queued: [fd, index in queuedBufs, off, len, result].
 */
const ROW = 5;
let table = new Int32Array(ROW * 64);
/** Per queued send: 1 when its bytes stay as they are (a kept head: a view of them may queue). */
let keptFlags = new Uint8Array(64);
const queuedSocks: ClientSocket[] = [];
/** The queued sends' buffers, each once per run of sends from it (a batch's stage, a slab). */
const queuedBufs: Uint8Array[] = [];
let queued = 0;
let nBufs = 0;
let lastBuf: Buffer | null = null;
/** flushRanges is writing the rests: a send queued now (from a socket's own write) goes at once. */
let flushing = false;

/**
 * sendKeptRange (kept) or sendStagedRange, made by the next flushRanges: for a hook at a batch's
 * end that sends once to each of many sockets, and calls flushRanges when done (before a staged
 * buffer is reused). Whether the socket may take the bytes directly is asked then.
 */
export function queueRange(sock: ClientSocket, fd: number, buf: Buffer, at: number, len: number, kept: boolean): void {
  if (sendRanges === null || flushing) {
    if (kept) sendKeptRange(sock, fd, buf, at, len);
    else sendStagedRange(sock, fd, buf, at, len);
    return;
  }
  const i = queued++;
  const r = i * ROW;
  if (r === table.length) {
    const t = new Int32Array(table.length * 2);
    t.set(table);
    table = t;
    const k = new Uint8Array(keptFlags.length * 2);
    k.set(keptFlags);
    keptFlags = k;
  }
  if (buf !== lastBuf) {
    queuedBufs[nBufs++] = buf;
    lastBuf = buf;
  }
  const t = table;
  t[r] = fd;
  t[r + 1] = nBufs - 1;
  t[r + 2] = at;
  t[r + 3] = len;
  keptFlags[i] = kept ? 1 : 0;
  queuedSocks[i] = sock;
}

/**
 * The rest of a queued send the kernel did not take: as sendKeptRange/sendStagedRange would
 * queue it (a copy of staged bytes, which are reused once the flush returns).
 */
function writeRest(sock: ClientSocket, buf: Buffer, at: number, len: number, sent: number, kept: boolean): void {
  const from = sent > 0 ? at + sent : at;
  const rest = buf.subarray(from, at + len);
  sock.write(kept ? rest : Buffer.from(rest));
}

/**
 * Makes the sends queueRange queued in one sendHttp1Ranges call. A socket canSendNow refuses
 * (bytes queued on its stream) gets its row's fd cleared, so the addon sends nothing for it and
 * the whole range follows those bytes through its stream, as what the kernel does not take does.
 * A socket whose write throws is destroyed; the others go on.
 */
export function flushRanges(): void {
  const n = queued;
  if (n === 0) return;
  queued = 0;
  lastBuf = null;
  const t = table;
  for (let i = 0; i < n; i++) {
    if (!canSendNow(queuedSocks[i]!, t[i * ROW]!)) t[i * ROW] = -1;
  }
  sendRanges!(n, t, queuedBufs);
  flushing = true;
  try {
    for (let i = 0; i < n; i++) {
      const sock = queuedSocks[i]!;
      queuedSocks[i] = undefined as unknown as ClientSocket;
      const r = i * ROW;
      const len = t[r + 3]!;
      const sent = t[r + 4]!;
      // A socket destroyed since it was queued takes nothing more (its sender checked then).
      if (sent === len || sock.destroyed) continue;
      try {
        writeRest(sock, queuedBufs[t[r + 1]!] as Buffer, t[r + 2]!, len, sent, keptFlags[i] === 1);
      } catch {
        sock.destroy();
      }
    }
  } finally {
    flushing = false;
    for (let i = 0; i < nBufs; i++) queuedBufs[i] = undefined as unknown as Uint8Array;
    nBufs = 0;
  }
}
