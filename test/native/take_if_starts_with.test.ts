// NativeEngine.takeIfStartsWith: the peek at an accepted connection that lets an HTTP/2 client
// skip the HTTP/1 sniffing (serveH2IfPreface). The bytes must stay in the socket, and a
// connection that does not match must be left exactly as it was.
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { Downstream } from '../../src/io/engine.js';
import { createEngine } from '../../src/io/index.js';
import { b, sleep, until } from './helpers.js';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const engine = createEngine('native');
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A listener on the engine and one client connection that has written `bytes` (and waited for them to arrive). */
async function accepted(bytes: Buffer | null): Promise<{ down: Downstream & { fd: number }; client: net.Socket }> {
  let down: (Downstream & { fd: number }) | null = null;
  const l = await engine.listen({ kind: 'tcp', host: '127.0.0.1', port: 0 }, 8, (d) => (down = d as Downstream & { fd: number }));
  cleanups.push(() => l.close());
  const client = net.connect(l.address.port, '127.0.0.1');
  client.on('error', () => {});
  cleanups.push(() => client.destroy());
  await until(() => down !== null);
  if (bytes) {
    client.write(bytes);
    const peek = Buffer.alloc(64);
    await until(() => b.peekFd!(down!.fd, peek) >= bytes.length);
  } else {
    await sleep(20);
  }
  cleanups.push(() => down!.close());
  return { down: down!, client };
}

describe('NativeEngine.takeIfStartsWith', () => {
  it('takes the fd when the preface is there, and leaves the bytes in the socket', async () => {
    const rest = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]); // an empty SETTINGS after it
    const { down } = await accepted(Buffer.concat([PREFACE, rest]));
    const fd = engine.takeIfStartsWith!(down, PREFACE);
    expect(fd).toBeGreaterThanOrEqual(0);
    expect(down.fd).toBe(-1); // the caller owns it now
    const again = Buffer.alloc(64);
    const n = b.peekFd!(fd, again);
    expect(again.subarray(0, n)).toEqual(Buffer.concat([PREFACE, rest]));
    b.closeFd(fd);
  });

  it('leaves the connection alone when only part of the preface has arrived', async () => {
    const { down } = await accepted(PREFACE.subarray(0, 10));
    const fd = down.fd;
    expect(engine.takeIfStartsWith!(down, PREFACE)).toBe(-1);
    expect(down.fd).toBe(fd);
  });

  it('leaves an HTTP/1 connection alone', async () => {
    const { down } = await accepted(Buffer.from('GET / HTTP/1.1\r\nhost: x\r\n\r\n', 'latin1'));
    const fd = down.fd;
    expect(engine.takeIfStartsWith!(down, PREFACE)).toBe(-1);
    expect(down.fd).toBe(fd);
    const got = Buffer.alloc(64);
    expect(b.peekFd!(fd, got)).toBe(27); // nothing was read
  });

  it('leaves a connection that has sent nothing alone (EAGAIN)', async () => {
    const { down } = await accepted(null);
    const fd = down.fd;
    expect(b.peekFd!(fd, Buffer.alloc(8))).toBe(-11);
    expect(engine.takeIfStartsWith!(down, PREFACE)).toBe(-1);
    expect(down.fd).toBe(fd);
  });
});
