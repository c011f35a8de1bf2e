/**
 * The I/O engine: how listeners accept, how upstreams are connected, and how two connections
 * are spliced. Two implementations share this interface — `native` (fds polled by the addon
 * inside Node's libuv loop, pooled buffers, writev) and `node` (plain net.Socket, the
 * reference). Filters only ever talk to this interface, so every test runs against both.
 */

export interface PeerAddress {
  readonly family: 'IPv4' | 'IPv6' | 'unix';
  /** IP literal, or the socket path for unix. */
  readonly address: string;
  /** 0 for unix. */
  readonly port: number;
}

export type ListenAddress =
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number }
  | { readonly kind: 'unix'; readonly path: string; readonly mode?: number };

/** An accepted connection, owned by the engine until a filter pipes or closes it. */
export interface Downstream {
  readonly remote: PeerAddress;
  readonly local: PeerAddress;
  /** Set when the listener terminated TLS on this connection (src/tls). */
  readonly tls?: import('./stream_conn.js').ConnectionTlsInfo | null;
  /**
   * What network filters published about this connection (src/io/filter_state.ts); created
   * by the first writer, so connections without one cost nothing. Views of the same connection
   * made for other layers (an HTTP/2 session's) share this object.
   */
  filterState?: import('./filter_state.js').FilterState | null;
  close(): void;
}

/** A connected upstream socket. */
export interface Upstream {
  close(): void;
}

export interface BoundListener {
  readonly address: PeerAddress;
  /** The listening socket, for handing to a new process in a hot restart. */
  readonly fd: number;
  /**
   * Stop accepting and release the port; connections already accepted are unaffected.
   * `keepPath`: a unix listener's path stays (a new process serves it on the same socket).
   */
  close(keepPath?: boolean): void;
}

/** Why a pipe ended; the values are shared with the addon. */
export const PipeCloseReason = { DONE: 0, IDLE_TIMEOUT: 1, RESET_DOWNSTREAM: 2, RESET_UPSTREAM: 3, LOCAL: 4, ERROR: 5 } as const;
export type PipeCloseReason = (typeof PipeCloseReason)[keyof typeof PipeCloseReason];

export interface PipeOptions {
  /** 0 disables. Activity in either direction resets it. */
  readonly idleTimeoutMs: number;
  /** Bytes buffered per direction before the proxy stops reading the source. */
  readonly highWaterMark: number;
}

export type PipeDone = (reason: PipeCloseReason, bytesDownToUp: number, bytesUpToDown: number) => void;

export interface Pipe {
  /** Abortive close of both sides; the done callback fires with LOCAL. Idempotent. */
  close(): void;
}

export interface Cancelable {
  cancel(): void;
}

/** `status` is 0 on success or a negative errno (-ETIMEDOUT when the connect timeout fired). */
export type ConnectDone = (status: number, upstream: Upstream | null) => void;

export interface IoEngine {
  readonly name: 'native' | 'node';
  /** `inheritFd`: serve an already-listening socket handed over by a previous process. */
  listen(addr: ListenAddress, backlog: number, onConnection: (d: Downstream) => void, inheritFd?: number): Promise<BoundListener>;
  /** A connected socket handed over by a previous process (hot restart), as if just accepted. */
  adopt(fd: number, remote: PeerAddress, local: PeerAddress): Downstream;
  connect(target: PeerAddress, timeoutMs: number, done: ConnectDone): Cancelable;
  pipe(down: Downstream, up: Upstream, opts: PipeOptions, done: PipeDone): Pipe;
  /**
   * The connection as a Node stream, for filters that parse bytes (RPC, HTTP) until their data
   * path moves into the addon. The stream owns the socket from here on.
   */
  stream(down: Downstream): import('node:net').Socket;
  /**
   * Like `stream`, but the bytes read are handed to `onBytes` (a copy the callee owns) instead of
   * 'data' events, skipping Node's Readable plumbing per read. 'end', 'close', pause() and
   * resume() behave as usual. null when this engine or this downstream cannot (the caller then
   * uses `stream`). Optional: the reference engine does not offer it. With `onRead`, reads go
   * there instead as `buf[off, end)`, valid only during the call (the callee copies what it keeps).
   */
  streamWithReader?(down: Downstream, onBytes: (chunk: Buffer) => void, onRead?: (buf: Buffer, off: number, end: number) => void): import('node:net').Socket | null;
  /**
   * Like `streamWithReader`, without a net.Socket: the connection driven from its fd
   * (src/io/direct_socket.ts), which owns it from here. Its reads go to the `owner` the caller
   * sets before returning to the loop. null when this engine or this downstream cannot (TLS, a
   * stream already, no batch reader). Optional.
   */
  directStream?(down: Downstream): import('./direct_socket.js').DirectSocket | null;
  /**
   * The connection's fd, taken (the caller owns it from here), when the bytes the peer has
   * already sent begin with `prefix`; they stay in the socket. -1, with nothing touched, when
   * fewer bytes have arrived, they differ, or this downstream is not a plain fd. Optional.
   */
  takeIfStartsWith?(down: Downstream, prefix: Buffer): number;
  /** Human-readable errno name for a negative status (`ECONNREFUSED`). */
  errnoName(status: number): string;
}
