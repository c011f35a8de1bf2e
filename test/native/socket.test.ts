// Set-up calls: listen, addresses, errno names, argument checks.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { NativeLoadError } from '../../src/errors.js';
import { loadNative, native, PipeCloseReason } from '../../src/native.js';
import { b, hasIPv6 } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'strait-native-'));
const toClose: number[] = [];
afterEach(() => {
  for (const fd of toClose.splice(0)) b.closeFd(fd);
});

describe('loading', () => {
  it('loads once and exposes the documented surface', () => {
    expect(loadNative()).toBe(native());
    expect(typeof b.version).toBe('string');
    for (const fn of ['listenTcp', 'listenUnix', 'localAddress', 'closeFd', 'Acceptor', 'connect', 'Pipe', 'stats', 'errnoName'] as const) {
      expect(typeof b[fn]).toBe('function');
    }
    expect(Object.keys(b.stats()).sort()).toEqual(['h2H1HeadsReused', 'h2ListsReused', 'http1HeadsRepeated', 'pipesActive', 'poolBytes', 'poolChunks', 'poolChunksInUse', 'readCalls', 'writevCalls']);
    expect(PipeCloseReason).toEqual({ DONE: 0, IDLE_TIMEOUT: 1, RESET_A: 2, RESET_B: 3, LOCAL: 4, ERROR: 5 });
  });

  it('resolves build/ relative to the module and throws NativeLoadError with the rebuild hint when it is missing', async () => {
    // Compile src/native.ts + src/errors.ts into a scratch tree: first without build/ next to
    // it (must throw, never fall back), then with build/ linked in (must load).
    const ts = (await import('typescript')).default;
    const root = fs.mkdtempSync(path.join(tmp, 'tree-'));
    fs.mkdirSync(path.join(root, 'dist'));
    fs.writeFileSync(path.join(root, 'package.json'), '{"type":"module"}');
    for (const f of ['native', 'errors']) {
      const src = fs.readFileSync(new URL(`../../src/${f}.ts`, import.meta.url), 'utf8');
      const out = ts.transpileModule(src, { compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 } });
      fs.writeFileSync(path.join(root, 'dist', `${f}.js`), out.outputText);
    }
    const mod = (await import(/* @vite-ignore */ `${pathToFileURL(path.join(root, 'dist', 'native.js')).href}?missing`)) as typeof import('../../src/native.js');
    let err: unknown;
    try {
      mod.loadNative();
    } catch (e) {
      err = e;
    }
    expect((err as Error).name).toBe('NativeLoadError');
    expect((err as { code: string }).code).toBe('STRAIT_ERR_NATIVE_LOAD');
    expect((err as Error).message).toContain(path.join(root, 'build', 'Release', 'strait_native.node'));
    expect((err as Error).message).toContain('run "npm ci" (node-gyp rebuild)');
    fs.symlinkSync(fileURLToPath(new URL('../../build', import.meta.url)), path.join(root, 'build'));
    expect(typeof mod.loadNative().stats).toBe('function');
    expect(NativeLoadError).toBeTypeOf('function');
  });
});

describe('listenTcp / localAddress / closeFd', () => {
  it('binds an ephemeral IPv4 port and reports it', () => {
    const fd = b.listenTcp('127.0.0.1', 0, 16, false);
    toClose.push(fd);
    const a = b.localAddress(fd);
    expect(a.family).toBe('IPv4');
    expect(a.address).toBe('127.0.0.1');
    expect(a.port).toBeGreaterThan(0);
  });

  it.skipIf(!hasIPv6)('binds IPv6 literals, brackets tolerated', () => {
    const fd = b.listenTcp('[::1]', 0, 16, false);
    toClose.push(fd);
    expect(b.localAddress(fd)).toMatchObject({ family: 'IPv6', address: '::1' });
  });

  it('throws EADDRINUSE with the errno name as code, and SO_REUSEPORT shares a port', async () => {
    const fd = b.listenTcp('127.0.0.1', 0, 16, false);
    toClose.push(fd);
    const port = b.localAddress(fd).port;
    let err: (Error & { code?: string; errno?: number }) | undefined;
    try {
      b.listenTcp('127.0.0.1', port, 16, false);
    } catch (e) {
      err = e as Error;
    }
    expect(err?.message).toMatch(/bind 127\.0\.0\.1:\d+: EADDRINUSE/);
    expect(err?.code).toBe('EADDRINUSE');
    expect(err?.errno).toBe(-os.constants.errno.EADDRINUSE);

    const r1 = b.listenTcp('127.0.0.1', 0, 16, true);
    toClose.push(r1);
    const r2 = b.listenTcp('127.0.0.1', b.localAddress(r1).port, 16, true);
    toClose.push(r2);
    expect(b.localAddress(r2).port).toBe(b.localAddress(r1).port);
  });

  it('rejects names and bad arguments with TypeError/RangeError', () => {
    expect(() => b.listenTcp('localhost', 0, 16, false)).toThrow(TypeError);
    expect(() => b.listenTcp('127.0.0.1', 70000, 16, false)).toThrow(RangeError);
    expect(() => b.listenTcp(1 as unknown as string, 0, 16, false)).toThrow(TypeError);
    expect(() => b.localAddress(-1)).toThrow(RangeError);
    expect(() => new b.Pipe(1, 1, { idleTimeoutMs: 0, highWaterMark: 1 }, () => {})).toThrow(/must differ/);
    expect(() => new b.Pipe(100000, 100001, { idleTimeoutMs: 0 } as never, () => {})).toThrow(/highWaterMark/);
    expect(() => new b.Acceptor(0, null as never, () => {})).toThrow(/onAccept must be a function/);
    expect(() => b.connect('127.0.0.1', 1, 0, undefined as never)).toThrow(TypeError);
  });

  it('closeFd throws EBADF on a double close', () => {
    const fd = b.listenTcp('127.0.0.1', 0, 1, false);
    b.closeFd(fd);
    expect(() => b.closeFd(fd)).toThrow(/EBADF/);
  });
});

describe('errnoName', () => {
  it('maps negative (and positive) errnos to names', () => {
    expect(b.errnoName(-os.constants.errno.ECONNREFUSED)).toBe('ECONNREFUSED');
    expect(b.errnoName(os.constants.errno.ETIMEDOUT)).toBe('ETIMEDOUT');
    expect(b.errnoName(-os.constants.errno.ECONNRESET)).toBe('ECONNRESET');
    // Not in libuv's table: glibc's name.
    expect(b.errnoName(-os.constants.errno.ENOLINK)).toBe('ENOLINK');
    expect(b.errnoName(-99999)).toMatch(/Unknown/);
  });
});

describe('listenUnix', () => {
  it('listens on a path and reports it', () => {
    const p = path.join(tmp, 'a.sock');
    const fd = b.listenUnix(p, 16);
    toClose.push(fd);
    expect(b.localAddress(fd)).toEqual({ family: 'unix', address: p, port: 0 });
    expect(fs.lstatSync(p).isSocket()).toBe(true);
  });

  it('replaces a stale socket file, refuses a live one and never deletes other files', async () => {
    const p = path.join(tmp, 'stale.sock');
    b.closeFd(b.listenUnix(p, 16)); // the file outlives the fd: a crashed process's leftover
    expect(fs.existsSync(p)).toBe(true);
    const fd = b.listenUnix(p, 16); // stale: replaced
    toClose.push(fd);
    expect(() => b.listenUnix(p, 16)).toThrow(/in use.*EADDRINUSE/); // live: refused
    const c = net.connect(p); // and the live one still works
    await new Promise<void>((r, j) => c.once('connect', () => r()).once('error', j));
    c.destroy();

    const f = path.join(tmp, 'regular-file');
    fs.writeFileSync(f, 'keep me');
    expect(() => b.listenUnix(f, 16)).toThrow(/not a socket.*EADDRINUSE/);
    expect(fs.readFileSync(f, 'utf8')).toBe('keep me');
  });

  it('supports the Linux abstract namespace ("@name")', () => {
    const name = `@strait-native-test-${process.pid}`;
    const fd = b.listenUnix(name, 16);
    toClose.push(fd);
    expect(b.localAddress(fd)).toEqual({ family: 'unix', address: name, port: 0 });
    expect(() => b.listenUnix(name, 16)).toThrow(/EADDRINUSE/);
  });

  it('rejects a path longer than sun_path', () => {
    expect(() => b.listenUnix(path.join(tmp, 'x'.repeat(120)), 16)).toThrow(/too long/);
  });
});
