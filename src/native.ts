// TEMPORARY placeholder until the addon lands; replaced by the real loader.
import { NativeLoadError } from './errors.js';
export interface SockAddr { family: 'IPv4' | 'IPv6' | 'unix'; address: string; port: number }
export interface NativePipe { close(): void; readonly bytesAtoB: number; readonly bytesBtoA: number }
export interface NativeBinding {
  listenTcp(host: string, port: number, backlog: number, reusePort: boolean): number;
  listenUnix(path: string, backlog: number): number;
  localAddress(fd: number): SockAddr;
  closeFd(fd: number): void;
  Acceptor: new (fd: number, onAccept: (fd: number, family: string, address: string, port: number) => void, onError: (code: string) => void) => { pause(): void; resume(): void; close(): void };
  connect(host: string, port: number, timeoutMs: number, callback: (status: number, fd: number) => void): { cancel(): void };
  Pipe: new (fdA: number, fdB: number, opts: { idleTimeoutMs: number; highWaterMark: number }, onClose: (reason: number, a: number, b: number) => void) => NativePipe;
  errnoName(code: number): string;
}
export function native(): NativeBinding { throw new NativeLoadError('native addon not built'); }
