// When the addon's HTTP/2 session writes what JavaScript queued outside its own poll callback.
// Responses from HTTP/1 upstreams are queued in the loop's check phase (the BatchReader hands a
// turn's reads to JavaScript there); libuv skips check handles started during that phase until
// the next turn, so the session must not wait for its check handle then: the bytes have to be on
// the socket before the next poll phase, or every response of a burst also waits for the work of
// the requests read in that poll phase. Observed without any clock: a socket read in the next
// poll phase looks at what the client has received by then.
import fs from 'node:fs';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { NativeH2Stream } from '../../src/protocols/http2/native_session.js';
import { frame, literal, PREFACE, T } from '../helpers/h2frames.js';
import { KiB, nativeH2Server, until } from './helpers.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function serve(onStream: (s: NativeH2Stream) => void): number {
  const srv = nativeH2Server({ onStream });
  cleanups.push(() => srv.close());
  return srv.port;
}

/** A connected client socket that Node never reads: the test reads its fd itself. */
function rawClient(port: number): Promise<{ sock: net.Socket; fd: number }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    // Paused before it connects: Node then starts no read of its own.
    sock.pause();
    sock.once('connect', () => resolve({ sock, fd: (sock as unknown as { _handle: { fd: number } })._handle.fd }));
    sock.once('error', reject);
    cleanups.push(() => sock.destroy());
  });
}

/** Whatever the kernel holds for `fd` now, without waiting (the fd is non-blocking). */
function readNow(fd: number): Buffer {
  const parts: Buffer[] = [];
  const buf = Buffer.alloc(64 * KiB);
  for (;;) {
    let n: number;
    try {
      n = fs.readSync(fd, buf, 0, buf.length, null);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') break;
      throw err;
    }
    if (n <= 0) break;
    parts.push(Buffer.from(buf.subarray(0, n)));
  }
  return Buffer.concat(parts);
}

/** Frame types and stream ids in a byte stream (whole frames only). */
function frames(buf: Buffer): { type: number; flags: number; stream: number }[] {
  const out: { type: number; flags: number; stream: number }[] = [];
  for (let off = 0; off + 9 <= buf.length; ) {
    const len = buf.readUIntBE(off, 3);
    out.push({ type: buf[off + 3]!, flags: buf[off + 4]!, stream: buf.readUInt32BE(off + 5) & 0x7fffffff });
    off += 9 + len;
  }
  return out;
}

/** Two connected sockets of this process; `rx` is read by Node, in the poll phase. */
async function socketPair(): Promise<{ tx: net.Socket; rx: net.Socket }> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  const rxP = new Promise<net.Socket>((r) => srv.once('connection', r));
  const tx = net.connect(port, '127.0.0.1');
  await new Promise<void>((r) => tx.once('connect', () => r()));
  const rx = await rxP;
  cleanups.push(() => {
    tx.destroy();
    rx.destroy();
    srv.close();
  });
  return { tx, rx };
}

describe('native HTTP/2 session flush timing', () => {
  it('writes a response queued in the check phase before the next poll phase', async () => {
    let stream: NativeH2Stream | null = null;
    const port = serve((s) => (stream = s));
    const { sock, fd } = await rawClient(port);
    const { tx, rx } = await socketPair();
    const req = Buffer.concat([literal(':method', 'GET'), literal(':scheme', 'http'), literal(':path', '/'), literal(':authority', 'a')]);
    sock.write(Buffer.concat([PREFACE, frame(T.SETTINGS, 0, 0), frame(T.HEADERS, 4 | 1 /* END_HEADERS | END_STREAM */, 1, req)]));
    await until(() => stream !== null);
    expect(stream).not.toBeNull();
    // The server's SETTINGS (and the ACK of ours) went out with the poll callback that read the
    // request; clear them so that only the response can show up below.
    await until(() => frames(readNow(fd)).some((f) => f.type === T.SETTINGS && f.flags === 1));

    const seen = await new Promise<{ type: number; flags: number; stream: number }[]>((resolve) => {
      rx.once('data', () => resolve(frames(readNow(fd))));
      setImmediate(() => {
        // The check phase, as when BatchReader delivers an upstream's response.
        stream!.respond({ ':status': '204' }, { endStream: true });
        // Readable for the next poll phase: its 'data' handler runs there, before any check.
        tx.write('x');
      });
    });
    expect(seen.filter((f) => f.type === T.HEADERS && f.stream === 1)).toEqual([{ type: T.HEADERS, flags: 5, stream: 1 }]);
  });
});
