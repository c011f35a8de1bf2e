// The addon's writeHttp1HeadFromFlat (native/http1/http1_js.cc): the HTTP/1.1 head of a request
// that came as HTTP/2, from its flat field list (FlatRequest in
// src/filters/network/http_connection_manager/upstream_try.ts). Written into a Buffer it must be
// FlatRequest.h1HeadJs's bytes; in send mode the peer must receive exactly those bytes, and a
// head of another size than the caller expects must not be sent at all.
import { describe, expect, it } from 'vitest';
import { upstreamFlatOf, type UpstreamEdits } from '../../src/filters/network/http_connection_manager/h2_session.js';
import { XfccAction } from '../../src/filters/network/http_connection_manager/xfcc.js';
import { HEAD_NOT_SENT } from '../../src/protocols/http1/encoder.js';
import { directFd } from '../../src/protocols/http1/send.js';
import { loadNative } from '../../src/native.js';
import { tcpPair } from '../helpers/net.js';

type FromFlat = (out: Buffer | number, method: string, path: string, authority: string, src: string, runs: Int32Array, nRuns: number, extra: string, chunked: boolean, size?: number) => number;
const fromFlat = (loadNative() as unknown as { writeHttp1HeadFromFlat: FromFlat }).writeHttp1HeadFromFlat;

function request(extraFields = '') {
  const flat = `:method\0GET\0:scheme\0http\0:authority\0svc.local:8080\0:path\0/a?b=c\0user-agent\0h2load\0accept\0*/*${extraFields}`;
  const e: UpstreamEdits = { method: 'GET', path: '/a?b=c', authority: 'svc.local:8080', ip: '10.0.0.7', emptyBody: true, generateRequestId: true, xfcc: XfccAction.DROP, xfccElement: '', requestId: null };
  return upstreamFlatOf(flat, e, true)!;
}

/** A connected pair and the fd of its client side, which the addon sends on. */
async function pair() {
  const p = await tcpPair();
  return { ...p, fd: directFd(p.client), got: p.received };
}

describe('writeHttp1HeadFromFlat', () => {
  it("writes FlatRequest.h1HeadJs's bytes, exactly h1Size long", () => {
    for (const fields of ['', '\0x-last\0', '\0x-a\0caf\u00e9\0x-b\0']) {
      const fr = request(fields);
      for (const chunked of [false, true]) {
        const b = fr.h1Head(chunked);
        expect(b.length).toBe(fr.h1Size(chunked));
        expect(b.equals(fr.h1HeadJs(chunked))).toBe(true);
      }
    }
  });

  it('sends the head in one call; the peer gets exactly its bytes', async () => {
    const p = await pair();
    try {
      expect(p.fd).toBeGreaterThanOrEqual(0);
      const fr = request();
      const size = fr.h1Size(false);
      expect(fr.sendH1Head(p.fd, size)).toBe(size);
      expect((await p.waitFor(size)).equals(fr.h1HeadJs(false))).toBe(true);
    } finally {
      p.close();
    }
  });

  it('sends nothing when the head is not the size the caller expects', async () => {
    const p = await pair();
    try {
      const fr = request();
      const size = fr.h1Size(false);
      expect(fr.sendH1Head(p.fd, size + 1)).toBe(HEAD_NOT_SENT);
      expect(fr.sendH1Head(p.fd, size - 1)).toBe(HEAD_NOT_SENT);
      // Then the right one: the peer sees only it.
      expect(fr.sendH1Head(p.fd, size)).toBe(size);
      const got = await p.waitFor(size);
      await new Promise((r) => setTimeout(r, 20));
      expect(p.got().length).toBe(size);
      expect(got.equals(fr.h1HeadJs(false))).toBe(true);
    } finally {
      p.close();
    }
  });

  it('throws on bad arguments, naming them, and on an out too small', () => {
    const fr = request();
    const runs = new Int32Array([0, 4]);
    expect(() => fromFlat(Buffer.alloc(8), 'GET', '/', 'h', 'ab\0c', runs, 1, '', false)).toThrow(/out is too small/);
    expect(() => fromFlat(Buffer.alloc(64), 'GET', '/', 'h', 'ab\0c', runs, 2, '', false)).toThrow(/nRuns out of range/);
    expect(() => fromFlat(Buffer.alloc(64), 'GET', '/', 'h', 'ab\0c', new Int32Array([0, 9]), 1, '', false)).toThrow(/a run is outside src/);
    expect(() => fromFlat(-1, 'GET', '/', 'h', 'ab\0c', runs, 1, '', false, 10)).toThrow(/fd must be a non-negative number/);
    expect(() => fromFlat(3, 'GET', '/', 'h', 'ab\0c', runs, 1, '', false)).toThrow(/size must be/);
    expect(() => fromFlat({} as Buffer, 'GET', '/', 'h', 'ab\0c', runs, 1, '', false)).toThrow(/out must be a Buffer/);
    expect(fr.h1Head(false).length).toBeGreaterThan(0);
  });
});
