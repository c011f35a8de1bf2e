// respond() with the whole body: the response's HEADERS, its body and END_STREAM from one addon
// call (what an HTTP/1 upstream's complete content-length response is forwarded with), on the
// wire exactly as respond + data + end would put them: HEADERS without END_STREAM, then DATA
// carrying the body with END_STREAM.
import http2 from 'node:http2';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { FlatWriter } from '../../src/protocols/http2/flat_headers.js';
import { NativeH2Connection, type NativeH2Stream } from '../../src/protocols/http2/native_session.js';
import { F, frame, literal, PREFACE, T } from '../helpers/h2frames.js';
import { b, KiB, nativeH2Server, until } from './helpers.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function serve(onStream: (s: NativeH2Stream) => void): number {
  const srv = nativeH2Server({ onStream });
  cleanups.push(() => srv.close());
  return srv.port;
}

function head(w: FlatWriter, len: number): FlatWriter {
  w.reset();
  w.pair(':status', '200');
  w.pair('content-type', 'text/plain');
  w.pair('content-length', String(len));
  return w;
}

/** Whole frames in a byte stream, with their payloads. */
function frames(buf: Buffer): { type: number; flags: number; stream: number; payload: Buffer }[] {
  const out: { type: number; flags: number; stream: number; payload: Buffer }[] = [];
  for (let off = 0; off + 9 <= buf.length; ) {
    const len = buf.readUIntBE(off, 3);
    if (off + 9 + len > buf.length) break;
    out.push({ type: buf[off + 3]!, flags: buf[off + 4]!, stream: buf.readUInt32BE(off + 5) & 0x7fffffff, payload: buf.subarray(off + 9, off + 9 + len) });
    off += 9 + len;
  }
  return out;
}

describe('native HTTP/2 session: respond with the whole body', () => {
  it('sends HEADERS, then the body in DATA with END_STREAM, from one call', async () => {
    const body = Buffer.from('x'.repeat(700) + 'end');
    const port = serve((s) => s.respondFlatWhole(head(new FlatWriter(), body.length), body));
    const sock = net.connect(port, '127.0.0.1');
    cleanups.push(() => sock.destroy());
    const got: Buffer[] = [];
    sock.on('data', (d) => got.push(d));
    await new Promise<void>((r) => sock.once('connect', () => r()));
    const req = Buffer.concat([literal(':method', 'GET'), literal(':scheme', 'http'), literal(':path', '/'), literal(':authority', 'a')]);
    sock.write(Buffer.concat([PREFACE, frame(T.SETTINGS, 0, 0), frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 1, req)]));
    const ofStream = () => frames(Buffer.concat(got)).filter((f) => f.stream === 1);
    await until(() => ofStream().some((f) => f.flags & F.END_STREAM));
    const fs1 = ofStream();
    expect(fs1.map((f) => [f.type, f.flags & F.END_STREAM])).toEqual([
      [T.HEADERS, 0],
      [T.DATA, F.END_STREAM],
    ]);
    expect(fs1[1]!.payload.equals(body)).toBe(true);
  });

  it('delivers head, body and end to a real client, stream after stream', async () => {
    const port = serve((s) => {
      const body = Buffer.from(`stream ${s.id}`);
      s.respondFlatWhole(head(new FlatWriter(), body.length), body);
    });
    const c = http2.connect(`http://127.0.0.1:${port}`);
    cleanups.push(() => c.close());
    for (let i = 0; i < 3; i++) {
      const r = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const s = c.request({ ':path': '/' });
        let status = 0;
        const parts: Buffer[] = [];
        s.on('response', (h) => (status = Number(h[':status'])));
        s.on('data', (d: Buffer) => parts.push(d));
        s.on('end', () => resolve({ status, body: Buffer.concat(parts).toString() }));
        s.on('error', reject);
      });
      expect(r).toEqual({ status: 200, body: `stream ${2 * i + 1}` });
    }
   }, 10_000);

  it('refuses a body together with endStream, or one that is not bytes', () => {
    // The arguments are checked before the stream is looked up: no stream is needed.
    const conn = new NativeH2Connection(b.listenTcp('127.0.0.1', 0, 1, false), { maxHeaderListSize: 16 * KiB, maxHeaderPairs: 100 }, null, { onStream() {}, onIdle() {}, onEnd() {} });
    cleanups.push(() => conn.destroy());
    const w = head(new FlatWriter(), 1);
    const respond = conn.h.respond as unknown as (...a: unknown[]) => boolean;
    expect(() => respond.call(conn.h, 1, w.buf, w.pairs, true, w.len, Buffer.from('x'))).toThrow(/H2Session.respond: body must be a Uint8Array, and endStream false with it/);
    expect(() => respond.call(conn.h, 1, w.buf, w.pairs, false, w.len, 'x')).toThrow(/H2Session.respond: body must be a Uint8Array/);
  });
});
