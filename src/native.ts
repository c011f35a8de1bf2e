import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { NativeLoadError } from './errors.js';

/** An address as the addon reports it; unix sockets carry their path (or '') as `address`. */
export interface SockAddr {
  readonly family: 'IPv4' | 'IPv6' | 'unix';
  readonly address: string;
  readonly port: number;
}

/** A running splice; see native/io/pipe.h. */
export interface NativePipe {
  /** Abortive close of both sockets; onClose(LOCAL) runs synchronously. Idempotent. */
  close(): void;
  readonly bytesAtoB: number;
  readonly bytesBtoA: number;
}

export interface NativeAcceptor {
  pause(): void;
  resume(): void;
  /** Stops polling and closes the listening fd. */
  close(): void;
}

/** The addon's exports (native/addon.cc). */
export interface NativeBinding {
  readonly version: string;
  /** A non-blocking listening TCP socket (SO_REUSEADDR, SO_REUSEPORT when asked). Throws with `code` = errno name. */
  listenTcp(host: string, port: number, backlog: number, reusePort: boolean): number;
  /** A non-blocking listening unix socket; a stale socket file at `path` is replaced. */
  listenUnix(path: string, backlog: number): number;
  localAddress(fd: number): SockAddr;
  closeFd(fd: number): void;
  /** Polls a listening fd; onAccept runs once per accepted socket (TCP_NODELAY already set). */
  Acceptor: new (
    fd: number,
    onAccept: (fd: number, family: SockAddr['family'], address: string, port: number) => void,
    onError: (code: string) => void,
  ) => NativeAcceptor;
  /**
   * Non-blocking connect. `port < 0` means `host` is a unix socket path. The callback always
   * runs from the loop, never synchronously: status 0 with a connected fd, or a negative
   * errno (-ETIMEDOUT when timeoutMs elapsed first; 0 = no timeout). cancel() closes the fd
   * and suppresses the callback.
   */
  connect(host: string, port: number, timeoutMs: number, callback: (status: number, fd: number) => void): { cancel(): void };
  /** Splices fdA (downstream) and fdB (upstream); owns both fds from here on. */
  Pipe: new (
    fdA: number,
    fdB: number,
    opts: { idleTimeoutMs: number; highWaterMark: number },
    onClose: (reason: number, bytesAtoB: number, bytesBtoA: number) => void,
  ) => NativePipe;
  /** Process-wide data-path figures. */
  stats(): { poolChunks: number; poolChunksInUse: number; poolBytes: number; pipesActive: number; readCalls: number; writevCalls: number };
  /** -111 → 'ECONNREFUSED'. */
  errnoName(code: number): string;
}

/** 64 KiB: the addon's buffer chunk size (native/io/buffer_pool.h). */
export const NATIVE_CHUNK_SIZE = 64 * 1024;

const ADDON_PATH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../build/Release/strait_native.node');

let binding: NativeBinding | null = null;

/** The addon, loaded on first use. A missing or broken build throws: never a silent fallback. */
export function native(): NativeBinding {
  if (binding) return binding;
  try {
    binding = createRequire(import.meta.url)(ADDON_PATH) as NativeBinding;
  } catch (err) {
    throw new NativeLoadError(`cannot load the native addon at ${ADDON_PATH}: ${(err as Error).message}; run "npm ci" (it runs node-gyp rebuild), or use --io-engine node`, { cause: err });
  }
  return binding;
}
