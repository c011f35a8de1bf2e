// The addon's HTTP/2 session in client mode (native/http2, opts.client) over the addon's own
// connect(), against a real node:http2 server.
import crypto from 'node:crypto';
import http2 from 'node:http2';
import { afterEach, describe, expect, it } from 'vitest';
import { upstreamFlatOf, type UpstreamEdits } from '../../src/filters/network/http_connection_manager/h2_session.js';
import { HELD_AUTHORITY, HELD_METHOD, HELD_PATH } from '../../src/filters/network/http_connection_manager/upstream_try.js';
import { XfccAction } from '../../src/filters/network/http_connection_manager/xfcc.js';
import { H2SessionEnd, NativeH2ClientConnection, NEVER_INDEXED, setNeverIndexed, type H2Headers, type NativeH2ClientStreamUser } from '../../src/protocols/http2/native_session.js';
import { b, MiB, nativeH2Server, requestClosed, sleep } from './helpers.js';
import { CALL_ARGS, REQUEST_NOT_HELD, RUNS_TABLE } from '../../src/native.js';
/** The builders' inputs in one record: method, :path and :authority are their arguments. */
type Edits = UpstreamEdits & { method: string; path: string; authority: string };

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await until(() => b.stats().poolChunksInUse === 0);
  expect(b.stats().poolChunksInUse).toBe(0);
});

async function until(cond: () => boolean, tries = 500): Promise<void> {
  for (let i = 0; i < tries && !cond(); i++) await sleep(10);
}

async function server(handler: (s: http2.ServerHttp2Stream, h: http2.IncomingHttpHeaders, raw: string[]) => void, settings: http2.Settings = {}) {
  const srv = http2.createServer({ settings });
  srv.on('stream', (s, h, _flags, raw) => {
    s.on('error', () => {}); // resets are what some tests are about
    handler(s, h, raw);
  });
  const sessions = new Set<http2.ServerHttp2Session>();
  srv.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        for (const s of sessions) s.destroy();
        srv.close(() => r());
      }),
  );
  return { port, sessions };
}

interface Pool {
  settings: number[];
  goaways: [number, number][];
  ends: H2SessionEnd[];
}

/** Where a flat list's regular fields start (after its pseudo-headers) and how many it has. */
function regularFields(flat: string): { at: number; regular: number } {
  const f = flat.split('\0');
  let at = 0;
  let k = 0;
  while (f[k]!.startsWith(':')) {
    at += f[k]!.length + f[k + 1]!.length + 2;
    k += 2;
  }
  return { at, regular: (f.length - k) / 2 };
}

async function dial(port: number, initialWindowSize?: number): Promise<{ c: NativeH2ClientConnection; p: Pool }> {
  const fd = await new Promise<number>((resolve, reject) => {
    b.connect('127.0.0.1', port, 5000, (status, fd) => (status === 0 ? resolve(fd) : reject(new Error(`connect ${status}`))));
  });
  const p: Pool = { settings: [], goaways: [], ends: [] };
  const c = new NativeH2ClientConnection(fd, { initialWindowSize }, {
    onSettings: (n) => p.settings.push(n),
    onGoaway: (last, code) => p.goaways.push([last, code]),
    onEnd: (r) => p.ends.push(r),
  });
  cleanups.push(() => c.destroy());
  return { c, p };
}

/** A stream user that records everything, consuming DATA at once unless `hold` is set. */
class Rec implements NativeH2ClientStreamUser {
  id = 0;
  headers: H2Headers | null = null;
  headersEnd = false;
  chunks: Buffer[] = [];
  bytes = 0;
  trailers: H2Headers | null = null;
  endSeen = false;
  closeCode: number | undefined;
  drains = 0;
  hold = false;
  constructor(private readonly c: NativeH2ClientConnection) {}
  h2Headers(h: H2Headers, end: boolean): void {
    this.headers = h;
    this.headersEnd = end;
  }
  h2Data(d: Buffer): boolean {
    this.chunks.push(d);
    this.bytes += d.length;
    // Held chunks stay unconsumed until the test consumes them; the rest the addon consumes.
    return this.hold;
  }
  h2Trailers(t: H2Headers): void {
    this.trailers = t;
  }
  h2End(): void {
    this.endSeen = true;
  }
  h2Close(code: number): void {
    this.closeCode = code;
  }
  h2Drain(): void {
    this.drains++;
  }
  get body(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

function req(c: NativeH2ClientConnection, headers: H2Headers, end: boolean): Rec {
  const r = new Rec(c);
  r.id = c.request({ ':method': 'POST', ':scheme': 'http', ':authority': 'x', ':path': '/', ...headers }, end, r);
  return r;
}

describe('native HTTP/2 client session', () => {
  it('sends a request with a body and gets the response, its trailers and the peer settings', async () => {
    const { port } = await server(
      (s, h) => {
        const parts: Buffer[] = [];
        s.on('data', (d: Buffer) => parts.push(d));
        s.on('end', () => {
          s.respond({ ':status': 200, 'x-path': String(h[':path']), 'x-m': String(h['x-m']) }, { waitForTrailers: true });
          s.on('wantTrailers', () => s.sendTrailers({ 'grpc-status': '0', 'grpc-message': 'ok' }));
          s.end(Buffer.concat([Buffer.from('echo:'), ...parts]));
        });
      },
      { maxConcurrentStreams: 7 },
    );
    const { c, p } = await dial(port);
    const r = req(c, { ':path': '/a', 'x-m': 'v' }, false);
    expect(r.id).toBe(1);
    expect(c.h.data(r.id, Buffer.from('hello'), false)).toBe(true);
    c.h.data(r.id, null, true);
    await until(() => r.closeCode !== undefined);
    expect(r.headers![':status']).toBe('200');
    expect(r.headers!['x-path']).toBe('/a');
    expect(r.headers!['x-m']).toBe('v');
    expect(r.body.toString()).toBe('echo:hello');
    expect(r.trailers).toMatchObject({ 'grpc-status': '0', 'grpc-message': 'ok' });
    expect(r.endSeen).toBe(true);
    expect(r.closeCode).toBe(0);
    expect(p.settings).toContain(7);
    expect(c.openStreams).toBe(0);
  });

  it('sends x-request-id never indexed (but for the seeding lists) and intact, 300 streams at once, each answer to its own stream', async () => {
    // A value new on every request goes out as an HPACK "never indexed" literal; node:http2 lists
    // such fields in sensitiveHeaders. One list in 256 (the session's 1st, 257th, ...) sends it
    // indexed, so that later ones can send the name as an index. Many streams at once,
    // answered out of order.
    const seen: string[][] = [];
    const { port } = await server((s, h) => {
      seen.push((h as Record<symbol, string[]>)[http2.sensitiveHeaders] ?? []);
      setTimeout(() => s.respond({ ':status': 200, 'x-echo': String(h['x-request-id']) }, { endStream: true }), Number(h['x-n']) % 5);
    });
    const { c } = await dial(port);
    const ids = Array.from({ length: 300 }, () => crypto.randomUUID());
    const rs = ids.map((id, i) => req(c, { 'x-request-id': id, 'x-n': String(i) }, true));
    await until(() => rs.every((r) => r.closeCode !== undefined));
    rs.forEach((r, i) => {
      expect(r.closeCode).toBe(0);
      expect(r.headers!['x-echo']).toBe(ids[i]);
    });
    expect(seen.length).toBe(300);
    seen.forEach((never, i) => {
      if (i === 0 || i === 256) expect(never, `request ${i}`).not.toContain('x-request-id');
      else expect(never, `request ${i}`).toContain('x-request-id');
      expect(never).not.toContain('x-n');
    });
    expect(c.openStreams).toBe(0);
  });

  // nghttp2 is told not to copy a request's fields (NGHTTP2_NV_FLAG_NO_COPY_*): each stream keeps
  // its own list until its HEADERS frame goes out. Past max_concurrent_streams 1 the requests wait
  // in nghttp2's queue while later ones are submitted; one is cancelled there. Lists of every
  // size (the shortest fit in a std::string's inline buffer) and a name in upper case, which must
  // go out lower-cased.
  it('keeps each queued request\'s fields until it is sent: 40 requests past max_concurrent_streams 1, one cancelled while queued', async () => {
    const { port } = await server(
      (s, h) => {
        setTimeout(() => s.respond({ ':status': 200, 'x-echo': String(h['x-v']), 'x-name': String(h['x-mixed-case'] ?? 'missing') }, { endStream: true }), 1);
      },
      { maxConcurrentStreams: 1 },
    );
    const { c, p } = await dial(port);
    await until(() => p.settings.length > 0); // nghttp2 knows the limit once the server's SETTINGS came
    const values = Array.from({ length: 40 }, (_, i) => 'v'.repeat((i * 7) % 41) + i);
    const rs = values.map((v, i) => {
      const r = new Rec(c);
      const list = i === 0 ? ':method\0GET\0:scheme\0http\0:path\0/\0:authority\0x\0x-v\0' + v : ':method\0GET\0:scheme\0http\0:path\0/\0:authority\0x\0X-Mixed-Case\0m' + i + '\0x-v\0' + v;
      r.id = c.requestFlat(list, i === 0 ? 5 : 6, true, r);
      return r;
    });
    c.h.rst(rs[5]!.id, 8); // CANCEL, while it waits in the queue
    await until(() => rs.every((r) => r.closeCode !== undefined));
    rs.forEach((r, i) => {
      if (i === 5) {
        expect(r.headers).toBe(null);
        expect(r.closeCode).toBe(8);
        return;
      }
      expect(r.closeCode).toBe(0);
      expect(r.headers!['x-echo']).toBe(values[i]);
      expect(r.headers!['x-name']).toBe(i === 0 ? 'missing' : `m${i}`);
    });
    expect(c.openStreams).toBe(0);
  });

  it('sends never indexed the fields it is told to, and hands on those the server sent so', async () => {
    // RFC 7541 §7.1.3, the proxy's upstream side: requestFlat's names (or an object's
    // NEVER_INDEXED list) go never indexed; the response's and trailers' come back listed.
    const seen: string[][] = [];
    const { port } = await server((s, h) => {
      seen.push((h as Record<symbol, string[]>)[http2.sensitiveHeaders] ?? []);
      s.respond({ ':status': 200, 'x-resp-secret': 'rs', 'x-resp-plain': 'rp', [http2.sensitiveHeaders]: ['x-resp-secret'] }, { waitForTrailers: true });
      s.on('wantTrailers', () => s.sendTrailers({ 'x-trailer-secret': 'ts', 'x-trailer-plain': 'tp', [http2.sensitiveHeaders]: ['x-trailer-secret'] }));
      s.end('ok');
    });
    const { c } = await dial(port);
    const flat = new Rec(c);
    flat.id = c.requestFlat(':method\x00GET\x00:scheme\x00http\x00:authority\x00x\x00:path\x00/f\x00x-api-key\x00k\x00x-plain\x00p\x00', 6, true, flat, 'x-api-key');
    const obj = new Rec(c);
    obj.id = c.request(setNeverIndexed({ ':method': 'GET', ':scheme': 'http', ':authority': 'x', ':path': '/o', 'x-other': 'o', 'x-plain': 'p' }, 'x-other'), true, obj);
    await until(() => flat.closeCode !== undefined && obj.closeCode !== undefined);
    expect(seen[0]).toContain('x-api-key');
    expect(seen[0]).not.toContain('x-plain');
    expect(seen[1]).toContain('x-other');
    expect(seen[1]).not.toContain('x-plain');
    for (const r of [flat, obj]) {
      expect(r.body.toString()).toBe('ok');
      expect(r.headers!['x-resp-secret']).toBe('rs');
      expect((r.headers as Record<symbol, string[]>)[NEVER_INDEXED]).toEqual(['x-resp-secret']);
      expect(r.trailers!['x-trailer-secret']).toBe('ts');
      expect((r.trailers as Record<symbol, string[]>)[NEVER_INDEXED]).toEqual(['x-trailer-secret']);
    }
  });

  it('requestOn with the request a native downstream stream holds (requestHeld) sends what requestFlat(flat) sends', async () => {
    // The downstream list comes from a native server session this time, which keeps the request
    // block for the stream: the addon cuts the kept runs from it. Pseudo-header values the proxy
    // changed (a rewritten path) still come from JavaScript; a stream gone sends the parts.
    const raws: string[][] = [];
    const { port } = await server((s, _h, raw) => {
      raws.push(raw);
      s.respond({ ':status': 200 }, { endStream: true });
    });
    const { c } = await dial(port);
    // What the addon answered each requestHeld: a stream id, or REQUEST_NOT_HELD for the one gone.
    const answers: number[] = [];
    const requestHeld = c.requestHeld.bind(c);
    c.requestHeld = (...a: Parameters<typeof requestHeld>) => {
      const r = requestHeld(...a);
      answers.push(r);
      return r;
    };
    const results: { held: number; same: boolean; flat: string }[] = [];
    let pending = 0;
    const down = nativeH2Server({
      onStreamFlat: (st, flat) => {
        pending++;
        void (async () => {
          const f = flat.split('\0');
          const get = (n: string) => f[f.indexOf(n) + 1]!;
          const method = get(':method');
          const rewrite = get(':path').startsWith('/rw');
          const path = rewrite ? '/rewritten' : get(':path');
          const authority = get(':authority');
          const e: Edits = { method, path, authority, ip: '10.0.0.7', emptyBody: true, generateRequestId: true, xfcc: XfccAction.DROP, xfccElement: '', requestId: null };
          const fr = upstreamFlatOf(flat, e.method, e.path, e.authority, e, false)!;
          const joined = new Rec(c);
          joined.id = c.requestFlat(fr.flat, fr.pairs, true, joined);
          await until(() => joined.closeCode !== undefined);
          const sid = st.session.h.sid();
          // A stream id no stream has: not held, so the parts go instead.
          const gone = get(':path') === '/gone';
          fr.hold(sid, gone ? st.id + 1000 : st.id, HELD_METHOD | HELD_AUTHORITY | (rewrite ? 0 : HELD_PATH));
          const held = new Rec(c);
          held.id = fr.requestOn(c, true, held);
          await until(() => held.closeCode !== undefined);
          const [a, b2] = raws.slice(-2);
          results.push({ held: held.id, same: JSON.stringify(a) === JSON.stringify(b2), flat: JSON.stringify([a, b2]) });
          st.respond({ ':status': '204' }, { endStream: true });
          pending--;
        })();
      },
    });
    cleanups.push(() => down.close());
    const client = http2.connect(`http://127.0.0.1:${down.port}`);
    cleanups.push(() => client.destroy());
    const ask = (h: http2.OutgoingHttpHeaders) => requestClosed(client, h);
    for (const h of [
      { ':path': '/pkg.Svc/Call', ':method': 'POST', 'content-type': 'application/grpc', te: 'trailers', 'user-agent': 'grpc-node-js/1.9' },
      { ':path': '/x?y=1', accept: '*/*', 'x-request-id': 'abc', 'x-v': 'caf\u00e9', 'x-last': 'z' },
      { ':path': '/rw/a', 'x-a': '1', 'x-b': ['2', '3'] },
      { ':path': '/' },
      { ':path': '/gone', 'x-a': '1' },
      { ':path': `/${'p'.repeat(1100)}`, 'x-big': 'b'.repeat(1500), 'x-end': 'e' },
    ] as http2.OutgoingHttpHeaders[]) {
      await ask(h);
    }
    await until(() => pending === 0 && results.length === 6);
    for (const r of results) expect(r.same, r.flat).toBe(true);
    expect(results.map((r) => r.held > 0)).toEqual([true, true, true, true, true, true]);
    expect(answers.map((r) => (r > 0 ? 'id' : r))).toEqual(['id', 'id', 'id', 'id', REQUEST_NOT_HELD, 'id']);
  });

  it("requestOn (the addon joins a forwarded request's parts) sends what requestFlat(flat) sends", async () => {
    // FlatRequest.flat is the reference: for each downstream list, the same request goes out once
    // joined in JavaScript and once joined by the addon, and the server must see the same fields
    // in the same order, never-indexed names included.
    const raws: string[][] = [];
    const nevers: string[][] = [];
    const { port } = await server((s, h, raw) => {
      raws.push(raw);
      nevers.push((h as Record<symbol, string[]>)[http2.sensitiveHeaders] ?? []);
      s.respond({ ':status': 200 }, { endStream: true });
    });
    const { c } = await dial(port);
    const lists = [
      // The last pair of src has no NUL after it: its run ends at src's end.
      ':method\0POST\0:scheme\0http\0:authority\0svc:8080\0:path\0/pkg.Svc/Call\0content-type\0application/grpc\0te\0trailers\0user-agent\0grpc-node-js/1.9',
      // Dropped fields between kept ones (several runs), an existing x-request-id, obs-text.
      ':method\0GET\0:scheme\0http\0:authority\0a.example\0:path\0/x?y=1\0accept\0*/*\0connection\0close\0x-request-id\0abc\0x-v\0caf\u00e9\0host\0h\0x-last\0z',
      // Nothing kept from src: only the pseudo-headers and the proxy's own pairs.
      ':method\0GET\0:scheme\0http\0:authority\0b\0:path\0/',
      // Past the addon's 1 KiB stack buffer for string arguments (a path and a list over it), and
      // lists of 1,022 and 1,023 bytes (the last one that fits, the first that may be cut).
      `:method\0GET\0:scheme\0http\0:authority\0c\0:path\0/${'p'.repeat(1100)}\0x-big\0${'b'.repeat(1500)}\0x-end\0e`,
      ...[1022, 1023].map((n) => {
        const head = ':method\0GET\0:scheme\0http\0:authority\0d\0:path\0/\0x-pad\0';
        return head + 'q'.repeat(n - head.length);
      }),
    ];
    for (const [n, list] of lists.entries()) {
      const method = list.split('\0')[1]!;
      const path = list.split('\0')[7]!;
      const authority = list.split('\0')[5]!;
      const e: Edits = { method, path, authority, ip: '10.0.0.7', emptyBody: method === 'GET', generateRequestId: true, xfcc: XfccAction.DROP, xfccElement: '', requestId: null };
      const fr = upstreamFlatOf(list, e.method, e.path, e.authority, e, false)!;
      const never = n === 0 ? 'user-agent' : undefined;
      const joined = new Rec(c);
      joined.id = c.requestFlat(fr.flat, fr.pairs, true, joined, never);
      await until(() => joined.closeCode !== undefined);
      const parts = new Rec(c);
      parts.id = fr.requestOn(c, true, parts, never);
      await until(() => parts.closeCode !== undefined);
      expect(joined.headers?.[':status']).toBe('200');
      expect(parts.headers?.[':status']).toBe('200');
      const [a, b2] = raws.slice(-2);
      expect(b2).toEqual(a);
      // x-forwarded-for and x-forwarded-proto were added; x-request-id generated (once, shared by both).
      expect(b2).toContain('x-forwarded-for');
      expect(b2).toContain('x-request-id');
      // x-request-id aside: whether it goes never indexed depends on the list's place in the
      // session (one in 256 seeds the name into the table), not on how the list was joined.
      const [na, nb] = nevers.slice(-2).map((n) => n!.filter((x) => x !== 'x-request-id'));
      expect(nb).toEqual(na);
      // Long values arrived whole (x-pad's is what makes a list 1,022 or 1,023 bytes).
      for (const v of list.split('\0').filter((f, i) => i % 2 === 1 && f.length > 900)) expect(b2).toContain(v);
    }
    expect(raws[0]).toContain('user-agent');
    expect(nevers[1]).toContain('user-agent');
  });

  it('requestRuns refuses runs outside the list, a run count the array does not hold and arguments that are not strings', async () => {
    const { port } = await server((s) => s.respond({ ':status': 200 }, { endStream: true }));
    const { c } = await dial(port);
    const runs = new Int32Array([0, 4]);
    expect(() => c.h.requestRuns('GET', '/', 'h', 'ab\0c', new Int32Array([0, 9]), 1, '', 5, true)).toThrow(/a run is outside src/);
    expect(() => c.h.requestRuns('GET', '/', 'h', 'ab\0c', runs, 2, '', 5, true)).toThrow(/nRuns out of range/);
    expect(() => c.h.requestRuns('GET', '/', 'h', 'ab\0c', [0, 4] as unknown as Int32Array, 1, '', 5, true)).toThrow(/runs must be an Int32Array/);
    // The pair count must match what was joined (4 pseudo-headers + ab:c).
    expect(() => c.h.requestRuns('GET', '/', 'h', 'ab\0c', runs, 1, '', 6, true)).toThrow(/invalid header/);
    // Each string's type is checked by the read of its bytes.
    const usage = /H2Session.requestRuns: arguments must be \(method, path/;
    expect(() => c.h.requestRuns(1, '/', 'h', 'ab\0c', runs, 1, '', 5, true)).toThrow(usage);
    expect(() => c.h.requestRuns('GET', null, 'h', 'ab\0c', runs, 1, '', 5, true)).toThrow(usage);
    expect(() => c.h.requestRuns('GET', '/', undefined, 'ab\0c', runs, 1, '', 5, true)).toThrow(usage);
    expect(() => c.h.requestRuns('GET', '/', 'h', 7, runs, 1, '', 5, true)).toThrow(/H2Session.requestRuns: src must be a string/);
    expect(() => c.h.requestRuns('GET', '/', 'h', 'ab\0c', runs, 1, {}, 5, true)).toThrow(/H2Session.requestRuns: extra must be a string/);
    const r = new Rec(c);
    r.id = c.requestRuns('GET', '/', 'h', 'ab\0c', runs, 1, '', 5, true, r);
    await until(() => r.closeCode !== undefined);
    expect(r.headers?.[':status']).toBe('200');
  });

  it('requestHeldArgs (numbers in CALL_ARGS) sends what the argument form sends, and refuses numbers out of range, runs off the fields and strings that are not', async () => {
    const raws: string[][] = [];
    const { port } = await server((s, _h, raw) => {
      raws.push(raw);
      s.respond({ ':status': 200 }, { endStream: true });
    });
    const { c } = await dial(port);
    const calls = b.H2Session.calls as unknown as { requestHeldArgs: (...a: unknown[]) => number };
    const errors: string[] = [];
    const ids: number[] = [];
    let done = false;
    const down = nativeH2Server({
      onStreamFlat: (st, flat) => {
        void (async () => {
          // The held list's regular fields, from the first one to the end: one run.
          const { at, regular } = regularFields(flat);
          const set = (over: Partial<Record<number, number>>) => {
            const v = [c.h.sid(), st.session.h.sid(), st.id, HELD_METHOD | HELD_PATH | HELD_AUTHORITY, 1, 4 + regular + 1, 1, 0];
            for (const [i, x] of Object.entries(over)) v[Number(i)] = x!;
            CALL_ARGS.set(v);
          };
          RUNS_TABLE.set([at, flat.length]);
          for (const [over, args] of [
            [{ 2: 0 }, []],
            [{ 3: 16 }, []],
            [{ 0: st.session.h.sid() }, []],
            [{ 4: RUNS_TABLE.length }, []],
            [{ 5: 4 + regular }, []],
            [{ 3: HELD_PATH | HELD_AUTHORITY }, [7]],
            [{}, ['GET', '/', 'h', null]],
          ] as [Partial<Record<number, number>>, unknown[]][]) {
            set(over);
            const a = ['GET', '/', 'h', 'x-added\0yes\0'];
            a.splice(0, args.length, ...args);
            try {
              errors.push(`answered ${calls.requestHeldArgs(...a)}`);
            } catch (err) {
              errors.push(`${(err as Error).name}: ${(err as Error).message}`);
            }
          }
          RUNS_TABLE.set([at + 1, flat.length]);
          set({});
          try {
            calls.requestHeldArgs('GET', '/', 'h', 'x-added\0yes\0');
          } catch (err) {
            errors.push(`${(err as Error).name}: ${(err as Error).message}`);
          }
          // A stream this session never had: not held (the caller sends the parts).
          set({ 2: st.id + 1000 });
          ids.push(calls.requestHeldArgs('GET', '/', 'h', 'x-added\0yes\0'));
          // Both forms for real: the numbers from memory, then as arguments with an own runs array.
          RUNS_TABLE.set([at, flat.length]);
          for (const own of [false, true]) {
            const r = new Rec(c);
            const runs = own ? new Int32Array([at, flat.length]) : null;
            r.id = c.requestHeld(st.session.h.sid(), st.id, HELD_METHOD | HELD_PATH | HELD_AUTHORITY, '', '', '', runs, 1, 'x-added\0yes\0', 4 + regular + 1, true, r);
            ids.push(r.id);
            await until(() => r.closeCode !== undefined);
          }
          st.respond({ ':status': '204' }, { endStream: true });
          done = true;
        })();
      },
    });
    cleanups.push(() => down.close());
    const client = http2.connect(`http://127.0.0.1:${down.port}`);
    cleanups.push(() => client.destroy());
    await requestClosed(client, { ':path': '/held', ':method': 'POST', 'x-a': '1', 'x-b': 'caf\u00e9' });
    await until(() => done);
    expect(errors).toEqual([
      expect.stringMatching(/^RangeError: H2Session.requestHeldArgs: the call-args table's downStream and pairs must be positive integers/),
      expect.stringMatching(/^RangeError: H2Session.requestHeldArgs: the call-args table's downStream and pairs must be positive integers, same in \[0, 15\]/),
      expect.stringMatching(/^TypeError: H2Session.requestHeldArgs: no client session has the number given/),
      expect.stringMatching(/^RangeError: H2Session.requestHeldArgs: nRuns out of range/),
      expect.stringMatching(/^TypeError: H2Session.requestHeldArgs: invalid header name or value/),
      expect.stringMatching(/^TypeError: H2Session.requestHeldArgs: method, path and authority must be strings/),
      expect.stringMatching(/^TypeError: H2Session.requestHeldArgs: extra must be a string/),
      expect.stringMatching(/^RangeError: H2Session.requestHeldArgs: a run does not start at a field/),
    ]);
    expect(ids[0]).toBe(REQUEST_NOT_HELD);
    expect(ids[1]).toBeGreaterThan(0);
    expect(ids[2]).toBeGreaterThan(ids[1]!);
    const [a, b2] = raws.slice(-2);
    expect(raws).toHaveLength(2);
    expect(b2).toEqual(a);
    expect(a).toEqual(expect.arrayContaining([':path', '/held', 'x-a', '1', 'x-b', 'caf\u00e9', 'x-added', 'yes']));
  });

  it('requestHeld numbers its extra pairs: a repeated string is sent from the addon\'s copy, every other one as given', async () => {
    // CALL_ARGS[8] with bit 8 in `same` (kSameExtraGen): the addon appends the pairs it read
    // last under that number instead of reading the string. Through the connection's
    // requestHeld the pairs must always be the ones given; called directly with a number, the
    // addon must take its copy (so a second string under one number shows the first's bytes),
    // and a call without the bit keeps nothing under a number.
    const got: string[] = [];
    const { port } = await server((s, h) => {
      got.push(String(h['x-added']));
      s.respond({ ':status': 200 }, { endStream: true });
    });
    const { c } = await dial(port);
    const calls = b.H2Session.calls as unknown as { requestHeldArgs: (...a: unknown[]) => number };
    const extras = ['x-added\0one\0', 'x-added\0one\0', 'x-added\0two\0', `x-added\0${'two'}\0`, 'x-added\0one\0', 'x-added\0six\0'];
    const want: string[] = [];
    let done = false;
    const down = nativeH2Server({
      onStreamFlat: (st, flat) => {
        void (async () => {
          const { at, regular } = regularFields(flat);
          const pairs = 4 + regular + 1;
          const send = async (extra: string): Promise<void> => {
            const r = new Rec(c);
            RUNS_TABLE.set([at, flat.length]);
            r.id = c.requestHeld(st.session.h.sid(), st.id, HELD_METHOD | HELD_PATH | HELD_AUTHORITY, '', '', '', null, 1, extra, pairs, true, r);
            await until(() => r.closeCode !== undefined);
          };
          for (const e of extras) {
            await send(e);
            want.push(e.split('\0')[1]!);
          }
          // Directly, under numbers of this test's own (far above the connection's).
          const direct = async (bits: number, gen: number, extra: string): Promise<void> => {
            const r = new Rec(c);
            RUNS_TABLE.set([at, flat.length]);
            CALL_ARGS.set([c.h.sid(), st.session.h.sid(), st.id, HELD_METHOD | HELD_PATH | HELD_AUTHORITY | bits, 1, pairs, 1, 0, gen]);
            r.id = calls.requestHeldArgs('', '', '', extra);
            c.streams.set(r.id, r);
            await until(() => r.closeCode !== undefined);
          };
          const G = 1e12;
          await direct(8, G, 'x-added\0ten\0');
          await direct(8, G, 'x-added\0two\0'); // G: the bytes kept ("ten")
          await direct(0, G, 'x-added\0one\0'); // no bit: read, kept under no number
          await direct(8, G, 'x-added\0six\0'); // so read again
          want.push('ten', 'ten', 'one', 'six');
          st.respond({ ':status': '204' }, { endStream: true });
          done = true;
        })();
      },
    });
    cleanups.push(() => down.close());
    const client = http2.connect(`http://127.0.0.1:${down.port}`);
    cleanups.push(() => client.destroy());
    await requestClosed(client, { ':path': '/held', ':method': 'POST', 'x-a': '1' });
    await until(() => done);
    expect(got).toEqual(want);
    expect(got).toHaveLength(extras.length + 4);
  });

  it('reports a response ended by its HEADERS frame, and 1xx answers not at all', async () => {
    const { port } = await server((s) => {
      s.additionalHeaders({ ':status': 103, link: '</a>' });
      s.respond({ ':status': 204 }, { endStream: true });
    });
    const { c } = await dial(port);
    const r = req(c, { ':method': 'GET' }, true);
    await until(() => r.closeCode !== undefined);
    expect(r.headers![':status']).toBe('204');
    expect(r.headersEnd).toBe(true);
    expect(r.closeCode).toBe(0);
  });

  it('hands on each head and trailers as received when some repeat the last ones and some differ in a byte', async () => {
    // A list with the bytes of the last one of its kind comes as KEPT_LIST and the connection
    // takes the string it kept (PushReceived in session.cc): every value must still be the one
    // this response carried. The values differ in a byte but not in length, so only a compare of
    // the bytes tells the lists apart; repeats come before and after a run of differing ones.
    const tag = (i: number): string => (i < 3 || i >= 20 ? 'same-00' : `diff-${String(i).padStart(2, '0')}`);
    const status = (i: number): string => (i % 7 === 5 ? '14' : '0');
    const { port } = await server((s, h) => {
      const i = Number(h['x-i']);
      s.on('data', () => {});
      s.on('end', () => {
        s.respond({ ':status': 200, 'content-type': 'application/grpc', 'x-tag': tag(i) }, { waitForTrailers: true });
        s.on('wantTrailers', () => s.sendTrailers({ 'grpc-status': status(i), 'x-t': tag(i) }));
        s.end('x');
      });
    });
    const { c } = await dial(port);
    const check = (r: Rec, i: number): void => {
      expect(r.headers!['x-tag']).toBe(tag(i));
      expect(r.trailers!['grpc-status']).toBe(status(i));
      expect(r.trailers!['x-t']).toBe(tag(i));
    };
    // One at a time: each list is compared with the previous response's.
    for (let i = 0; i < 30; i++) {
      const r = req(c, { 'x-i': String(i) }, true);
      await until(() => r.closeCode !== undefined);
      check(r, i);
    }
    // 30 at once: heads and trailers of many streams in one batch of events.
    const rs = Array.from({ length: 30 }, (_, i) => req(c, { 'x-i': String(i) }, true));
    await until(() => rs.every((r) => r.closeCode !== undefined));
    rs.forEach((r, i) => check(r, i));
  });

  it('passes a stream reset with its code', async () => {
    const { port } = await server((s) => s.close(http2.constants.NGHTTP2_REFUSED_STREAM));
    const { c } = await dial(port);
    const r = req(c, {}, true);
    await until(() => r.closeCode !== undefined);
    expect(r.headers).toBeNull();
    expect(r.closeCode).toBe(http2.constants.NGHTTP2_REFUSED_STREAM);
  });

  it('holds the upstream to one window while DATA is not consumed, and carries 8 MiB once it is', async () => {
    const big = crypto.randomBytes(8 * MiB);
    const { port } = await server((s) => {
      s.respond({ ':status': 200 });
      s.end(big);
    });
    const { c } = await dial(port);
    const r = req(c, { ':method': 'GET' }, true);
    r.hold = true;
    await until(() => r.bytes >= 65535);
    await sleep(200);
    // Not consumed: the server may send no more than the stream's initial window.
    expect(r.bytes).toBe(65535);
    expect(r.endSeen).toBe(false);
    r.hold = false;
    c.h.consume(r.id, r.bytes);
    await until(() => r.closeCode !== undefined);
    expect(r.closeCode).toBe(0);
    expect(r.body.equals(big)).toBe(true);
  });

  it('sends an 8 MiB request body under the peer flow control, with drain', async () => {
    const big = crypto.randomBytes(8 * MiB);
    const { port } = await server((s) => {
      const h = crypto.createHash('sha256');
      let n = 0;
      s.on('data', (d: Buffer) => {
        h.update(d);
        n += d.length;
      });
      s.on('end', () => s.respond({ ':status': 200, 'x-n': String(n), 'x-sha': h.digest('hex') }, { endStream: true }));
    });
    const { c } = await dial(port);
    const r = req(c, {}, false);
    let off = 0;
    const pump = () => {
      while (off < big.length) {
        const chunk = big.subarray(off, off + 256 * 1024);
        off += chunk.length;
        if (!c.h.data(r.id, chunk, off >= big.length)) return;
      }
    };
    pump();
    expect(off).toBeLessThan(big.length); // the high-water mark stopped the writer
    while (off < big.length) {
      const d = r.drains;
      await until(() => r.drains > d);
      pump();
    }
    await until(() => r.closeCode !== undefined);
    expect(r.headers!['x-n']).toBe(String(big.length));
    expect(r.headers!['x-sha']).toBe(crypto.createHash('sha256').update(big).digest('hex'));
  });

  it('hears GOAWAY with the last stream id; streams above it close as REFUSED_STREAM', async () => {
    const started: http2.ServerHttp2Stream[] = [];
    const { port, sessions } = await server((s) => started.push(s));
    const { c, p } = await dial(port);
    const a = req(c, {}, true);
    await until(() => started.length === 1);
    const [sess] = [...sessions];
    // The server will process stream 1 only; stream 3 is sent after (or races) the GOAWAY.
    sess!.goaway(http2.constants.NGHTTP2_NO_ERROR, 1);
    await until(() => p.goaways.length === 1);
    expect(p.goaways[0]).toEqual([1, 0]);
    expect(c.isClosing).toBe(true);
    // A closing connection opens no stream.
    expect(c.request({ ':method': 'GET', ':scheme': 'http', ':authority': 'x', ':path': '/' }, true, new Rec(c))).toBe(0);
    started[0]!.respond({ ':status': 200 }, { endStream: true });
    await until(() => a.closeCode !== undefined);
    expect(a.headers![':status']).toBe('200');
  });

  it('closes open streams with CANCEL and ends when the server goes away', async () => {
    const { port, sessions } = await server(() => {});
    const { c, p } = await dial(port);
    const r = req(c, {}, true);
    await until(() => sessions.size === 1);
    for (const s of sessions) s.destroy();
    await until(() => p.ends.length === 1);
    expect(r.closeCode).toBe(http2.constants.NGHTTP2_CANCEL);
    expect(r.headers).toBeNull();
  });

  it('rejects request() on a server session and bad headers with a clear error', async () => {
    const { port } = await server(() => {});
    const { c } = await dial(port);
    expect(() => c.h.request('a\0b\0', 3, true)).toThrow(/H2Session.request: invalid header/);
  });
});
