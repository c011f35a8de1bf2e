// The addon's writeHttp1HeadFromFlat (native/http1/http1_js.cc): the HTTP/1.1 head of a request
// that came as HTTP/2, from its flat field list (FlatRequest in
// src/filters/network/http_connection_manager/upstream_try.ts). Written into a Buffer it must be
// FlatRequest.h1HeadJs's bytes; in send mode the peer must receive exactly those bytes, and a
// head of another size than the caller expects must not be sent at all.
import { describe, expect, it } from 'vitest';
import { upstreamFlatOf, type UpstreamEdits } from '../../src/filters/network/http_connection_manager/h2_session.js';
import { XfccAction } from '../../src/filters/network/http_connection_manager/xfcc.js';
import http2 from 'node:http2';
import { HELD_AUTHORITY, HELD_METHOD, HELD_PATH } from '../../src/filters/network/http_connection_manager/upstream_try.js';
import { HEAD_NOT_HELD, HEAD_NOT_SENT } from '../../src/protocols/http1/encoder.js';
import { directFd } from '../../src/protocols/http1/send.js';
import { CALL_ARGS, loadNative, RUNS_TABLE } from '../../src/native.js';
import { tcpPair } from '../helpers/net.js';
import { nativeH2Server, requestClosed, until } from './helpers.js';
/** The builders' inputs in one record: method, :path and :authority are their arguments. */
type Edits = UpstreamEdits & { method: string; path: string; authority: string };

type FromFlat = (out: Buffer | number, method: string, path: string, authority: string, src: string, runs: Int32Array | null, nRuns: number, extra: string, chunked: boolean, size?: number) => number;
const fromFlat = (loadNative() as unknown as { writeHttp1HeadFromFlat: FromFlat }).writeHttp1HeadFromFlat;

function request(extraFields = '') {
  const flat = `:method\0GET\0:scheme\0http\0:authority\0svc.local:8080\0:path\0/a?b=c\0user-agent\0h2load\0accept\0*/*${extraFields}`;
  const e: Edits = { method: 'GET', path: '/a?b=c', authority: 'svc.local:8080', ip: '10.0.0.7', emptyBody: true, generateRequestId: true, xfcc: XfccAction.DROP, xfccElement: '', requestId: null };
  return upstreamFlatOf(flat, e.method, e.path, e.authority, e, true)!;
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

  it('reads RUNS_TABLE for null runs; lists longer than its scratch and an out filled to the last byte are written whole', () => {
    // src and extra past the 256 bytes the scratch starts with; a run per field.
    const fields = Array.from({ length: 40 }, (_, i) => `x-f${i}\0${String(i).repeat(60)}`);
    const src = fields.join('\0');
    const runs: number[] = [];
    let at = 0;
    for (const f of fields) {
      runs.push(at, at + f.length + 1 > src.length ? src.length : at + f.length + 1);
      at += f.length + 1;
    }
    const extra = `x-extra\0${'e'.repeat(700)}\0`;
    const own = new Int32Array(runs);
    const big = Buffer.alloc(16384);
    const n = fromFlat(big, 'POST', '/p', 'svc', src, own, fields.length, extra, false);
    const head = big.subarray(0, n).toString('latin1');
    expect(head.startsWith(`POST /p HTTP/1.1\r\nhost: svc\r\nx-f0: ${'0'.repeat(60)}\r\nx-f1: 1`)).toBe(true);
    expect(head).toContain(`x-f39: ${'39'.repeat(60)}\r\nx-extra: ${'e'.repeat(700)}\r\n\r\n`);
    RUNS_TABLE.set(runs);
    const viaTable = Buffer.alloc(16384);
    expect(fromFlat(viaTable, 'POST', '/p', 'svc', src, null, fields.length, extra, false)).toBe(n);
    expect(viaTable.subarray(0, n).equals(big.subarray(0, n))).toBe(true);
    // Exactly as long as the head: written; a byte shorter: refused.
    const exact = Buffer.alloc(n);
    expect(fromFlat(exact, 'POST', '/p', 'svc', src, null, fields.length, extra, false)).toBe(n);
    expect(exact.equals(big.subarray(0, n))).toBe(true);
    expect(() => fromFlat(Buffer.alloc(n - 1), 'POST', '/p', 'svc', src, null, fields.length, extra, false)).toThrow(/out is too small/);
    // A path that reaches out's end, with and without room for V8's closing NUL.
    const path = `/${'p'.repeat(300)}`;
    for (const cap of [5 + path.length, 5 + path.length + 1]) expect(() => fromFlat(Buffer.alloc(cap), 'POST', path, 'svc', src, null, 0, '', false)).toThrow(/out is too small/);
    expect(() => fromFlat(Buffer.alloc(64), 'GET', '/', 'h', 'ab', 7 as unknown as Int32Array, 0, '', false)).toThrow(/runs must be an Int32Array, or null/);
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

  it('sendH1Head with the request a native HTTP/2 stream holds (sendHttp1HeadHeld) sends the same bytes; a stream gone falls back', async () => {
    // The downstream list comes from a native server session, which keeps the request block of
    // each stream: the addon cuts the kept runs (and the method, path and authority that are the
    // request's own) from it. A rewritten path still comes from JavaScript.
    type SendHeld = (fd: number, size: number, downSession: number, downStream: number, same: number, method: string, path: string, authority: string, runs: Int32Array | null, nRuns: number, extra: string) => number;
    const sendHeld = (loadNative() as unknown as { sendHttp1HeadHeld: SendHeld }).sendHttp1HeadHeld;
    type SendHeldArgs = (method: string, path: string, authority: string, runs: Int32Array | null, extra: string) => number;
    const sendHeldArgs = (loadNative() as unknown as { sendHttp1HeadHeldArgs: SendHeldArgs }).sendHttp1HeadHeldArgs;
    const p = await pair();
    const results: { path: string; ok: boolean; direct: number; held: boolean; errors: string[] }[] = [];
    let expected = 0;
    const down = nativeH2Server({
      onStreamFlat: (st, flat) => {
        const f = flat.split('\0');
        const get = (n: string) => f[f.indexOf(n) + 1]!;
        const inPath = get(':path');
        const rewrite = inPath.startsWith('/rw');
        const path = rewrite ? '/rewritten' : inPath;
        const e: Edits = { method: get(':method'), path, authority: get(':authority'), ip: '10.0.0.7', emptyBody: true, generateRequestId: true, xfcc: XfccAction.DROP, xfccElement: '', requestId: null };
        const fr = upstreamFlatOf(flat, e.method, e.path, e.authority, e, true)!;
        const sid = st.session.h.sid();
        const gone = inPath === '/gone';
        fr.hold(sid, gone ? st.id + 1000 : st.id, HELD_METHOD | HELD_AUTHORITY | (rewrite ? 0 : HELD_PATH));
        const size = fr.h1Size(false);
        const want = fr.h1HeadJs(false);
        const errors: string[] = [];
        // The addon's own answer for this stream (and for one it does not have).
        const direct = sendHeld(p.fd, size + 1, sid, st.id, 0, e.method, path, e.authority, null, 0, '');
        const missing = sendHeld(p.fd, size, sid, st.id + 1000, 0, e.method, path, e.authority, null, 0, '');
        // sendHttp1HeadHeldArgs: the same answers with the numbers in CALL_ARGS
        // [fd, size, downSession, downStream, same, nRuns, fillId].
        const args = (n: readonly number[]) => CALL_ARGS.set(n);
        args([p.fd, size + 1, sid, st.id, 0, 0, 0]);
        const directArgs = sendHeldArgs(e.method, path, e.authority, null, '');
        args([p.fd, size, sid, st.id + 1000, 0, 0, 0]);
        const missingArgs = sendHeldArgs(e.method, path, e.authority, null, '');
        for (const bad of [
          () => sendHeld(p.fd, size, sid, st.id, 0, e.method, path, e.authority, new Int32Array([0, flat.length + 1]), 1, ''),
          () => sendHeld(p.fd, size, sid, st.id, 0, e.method, path, e.authority, new Int32Array([0, 1]), 2, ''),
          () => (sendHeld as unknown as (...a: unknown[]) => number)(p.fd, size, sid, st.id),
          () => (args([p.fd, size, sid, st.id, 0, 1, 0]), sendHeldArgs(e.method, path, e.authority, new Int32Array([0, flat.length + 1]), '')),
          () => (args([-1, size, sid, st.id, 0, 0, 0]), sendHeldArgs(e.method, path, e.authority, null, '')),
          () => (args([p.fd, 1.5, sid, st.id, 0, 0, 0]), sendHeldArgs(e.method, path, e.authority, null, '')),
        ]) {
          try {
            bad();
            errors.push('accepted');
          } catch (err) {
            errors.push(`${(err as Error).name}: ${(err as Error).message}`);
          }
        }
        const sent = fr.sendH1Head(p.fd, size);
        // Still held after the send: the held path sent it (a fallback forgets the stream).
        const held = (fr as unknown as { heldStream: number }).heldStream !== 0;
        expected += want.length;
        void p.waitFor(expected).then((all) => {
          results.push({
            path: inPath,
            ok: sent === size && all.subarray(all.length - want.length).equals(want),
            direct: direct === HEAD_NOT_SENT && missing === HEAD_NOT_HELD && directArgs === HEAD_NOT_SENT && missingArgs === HEAD_NOT_HELD ? 1 : 0,
            held,
            errors,
          });
          st.respond({ ':status': '204' }, { endStream: true });
        });
      },
    });
    const client = http2.connect(`http://127.0.0.1:${down.port}`);
    try {
      const ask = (h: http2.OutgoingHttpHeaders) => requestClosed(client, h);
      const lists: http2.OutgoingHttpHeaders[] = [
        { ':path': '/x?y=1', accept: '*/*', 'x-request-id': 'abc', 'x-v': 'caf\u00e9', 'x-last': 'z' },
        { ':path': '/rw/a', 'x-a': '1', 'x-b': ['2', '3'], te: 'trailers' },
        { ':path': '/', ':method': 'POST', 'content-length': '0' },
        { ':path': '/gone', 'x-a': '1' },
        { ':path': `/${'p'.repeat(1100)}`, 'x-big': 'b'.repeat(1500), 'x-end': 'e' },
      ];
      for (const h of lists) await ask(h);
      await until(() => results.length === lists.length);
      for (const r of results) {
        expect(r.ok, r.path.slice(0, 20)).toBe(true);
        expect(r.direct, r.path.slice(0, 20)).toBe(1);
        expect(r.held, r.path.slice(0, 20)).toBe(r.path !== '/gone');
        expect(r.errors[0]).toMatch(/^RangeError: sendHttp1HeadHeld: a run is outside the held request/);
        expect(r.errors[1]).toMatch(/^RangeError: sendHttp1HeadHeld: nRuns out of range/);
        expect(r.errors[2]).toMatch(/^TypeError: sendHttp1HeadHeld: arguments must be/);
        expect(r.errors[3]).toMatch(/^RangeError: sendHttp1HeadHeldArgs: a run is outside the held request/);
        expect(r.errors[4]).toMatch(/^TypeError: sendHttp1HeadHeldArgs: the call-args table's fd, size/);
        expect(r.errors[5]).toMatch(/^TypeError: sendHttp1HeadHeldArgs: the call-args table's fd, size/);
      }
    } finally {
      client.destroy();
      down.close();
      p.close();
    }
  });

  it('sendH1Head sends h1HeadJs\'s bytes request after request, whether its added lines repeat the last request\'s or not', async () => {
    // Consecutive held sends number each new extra (CALL_ARGS[7]) and copy the lines of a repeated
    // one: the x-forwarded-for line changes with the client address, the request id each time.
    const p = await pair();
    const ips = ['10.0.0.1', '10.0.0.1', '10.0.0.2', '10.0.0.2', '10.0.0.1', '10.0.0.33', '10.0.0.33'];
    const results: boolean[] = [];
    let n = 0;
    let expected = 0;
    const down = nativeH2Server({
      onStreamFlat: (st, flat) => {
        const f = flat.split('\0');
        const get = (k: string) => f[f.indexOf(k) + 1]!;
        const e: Edits = { method: get(':method'), path: get(':path'), authority: get(':authority'), ip: ips[n++ % ips.length]!, emptyBody: true, generateRequestId: false, xfcc: XfccAction.DROP, xfccElement: '', requestId: null };
        const fr = upstreamFlatOf(flat, e.method, e.path, e.authority, e, true)!;
        fr.hold(st.session.h.sid(), st.id, HELD_METHOD | HELD_PATH | HELD_AUTHORITY);
        const size = fr.h1Size(false);
        const want = fr.h1HeadJs(false);
        const sent = fr.sendH1Head(p.fd, size);
        expected += want.length;
        void p.waitFor(expected).then((all) => {
          results.push(sent === size && all.subarray(all.length - want.length).equals(want));
          st.respond({ ':status': '204' }, { endStream: true });
        });
      },
    });
    const client = http2.connect(`http://127.0.0.1:${down.port}`);
    try {
      for (let i = 0; i < ips.length; i++) await requestClosed(client, { ':path': `/r${i}`, 'x-i': String(i) });
      await until(() => results.length === ips.length);
      expect(results).toEqual(ips.map(() => true));
    } finally {
      client.destroy();
      down.close();
      p.close();
    }
  });

  it('sendHttp1HeadHeldArgs copies the header lines of the extra numbered in CALL_ARGS[7], under that number only', async () => {
    // kHeldExtraGen (8 in `same`): the extra is the string JavaScript numbered CALL_ARGS[7]; the
    // lines made of the extra last under that number are copied and the argument is not read.
    // A call without the bit, or whose lines were not made whole, leaves nothing to copy.
    type SendHeld = (fd: number, size: number, downSession: number, downStream: number, same: number, method: string, path: string, authority: string, runs: Int32Array | null, nRuns: number, extra: string) => number;
    const sendHeld = (loadNative() as unknown as { sendHttp1HeadHeld: SendHeld }).sendHttp1HeadHeld;
    type SendHeldArgs = (method: string, path: string, authority: string, runs: Int32Array | null, extra: string) => number;
    const sendHeldArgs = (loadNative() as unknown as { sendHttp1HeadHeldArgs: SendHeldArgs }).sendHttp1HeadHeldArgs;
    const EXTRA_GEN = 8;
    const RUNS_TABLE_BIT = 16;
    const p = await pair();
    const got: string[] = [];
    let results: number[] = [];
    let size = 0;
    let done = false;
    const down = nativeH2Server({
      onStreamFlat: (st, flat) => {
        const f = flat.split('\0');
        const get = (n: string) => f[f.indexOf(n) + 1]!;
        const [m, path, auth] = [get(':method'), get(':path'), get(':authority')];
        const sid = st.session.h.sid();
        const same = HELD_METHOD | HELD_PATH | HELD_AUTHORITY;
        const head = (v: string) => `${m} ${path} HTTP/1.1\r\nhost: ${auth}\r\nx-a: ${v}\r\n\r\n`;
        size = head('one').length;
        // Far above FlatRequest's own numbers, which count from 1 in this process.
        const G = 1e12;
        const viaArgs = (bits: number, gen: number, extra: string, sz = size) => {
          CALL_ARGS.set([p.fd, sz, sid, st.id, same | bits, 0, 0, gen]);
          return sendHeldArgs(m, path, auth, null, extra);
        };
        results = [
          viaArgs(EXTRA_GEN | RUNS_TABLE_BIT, G, 'x-a\0one\0'), // made and kept under G
          viaArgs(EXTRA_GEN | RUNS_TABLE_BIT, G, 'x-a\0two\0'), // G: the kept lines ("one"), not the argument
          viaArgs(EXTRA_GEN, G + 1, 'x-a\0two\0'), // another number: read
          viaArgs(0, G + 1, 'x-a\0one\0'), // no bit: read, and kept under no number
          viaArgs(EXTRA_GEN, G + 1, 'x-a\0two\0'), // so G + 1 is read again
          sendHeld(p.fd, size, sid, st.id, same | EXTRA_GEN, m, path, auth, null, 0, 'x-a\0one\0'), // positional: no number
          viaArgs(EXTRA_GEN, G + 2, 'x-a\0six\0', size - 6), // no room for its line: nothing sent, nothing kept
          viaArgs(EXTRA_GEN, G + 2, 'x-a\0ten\0'), // so read
        ];
        // Only the seven heads sent are awaited: an assertion here would be lost in the session's event.
        void p.waitFor(7 * size).then((all) => {
          for (let i = 0; i < 7; i++) got.push(all.toString('latin1', i * size, (i + 1) * size));
          got.push(head('one'), head('one'), head('two'), head('one'), head('two'), head('one'), head('ten'));
          done = true;
          st.respond({ ':status': '204' }, { endStream: true });
        });
      },
    });
    const client = http2.connect(`http://127.0.0.1:${down.port}`);
    try {
      await requestClosed(client, { ':path': '/same-lines', 'x-q': '1' });
      await until(() => done);
      expect(results).toEqual([size, size, size, size, size, size, HEAD_NOT_SENT, size]);
      expect(got).toHaveLength(14);
      expect(got.slice(0, 7)).toEqual(got.slice(7));
    } finally {
      client.destroy();
      down.close();
      p.close();
    }
  });
});
