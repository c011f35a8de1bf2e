// The addon's HTTP/2 server session (native/http2) behind a native Acceptor, driven by the real
// node:http2 client (and raw bytes where a client would refuse to misbehave).
import crypto from 'node:crypto';
import http2 from 'node:http2';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { chunkIsFinal, H2SessionEnd, holdFinal, NEVER_INDEXED, setNeverIndexed, type H2Headers, type NativeH2Settings, type NativeH2Stream } from '../../src/protocols/http2/native_session.js';
import { h2ResponseFlatOf, h2ResponseFlatPairs, h2ResponseParts } from '../../src/filters/network/http_connection_manager/h2_session.js';
import { b, KiB, MiB, nativeH2Server, sha256, sleep, until, type NativeH2TestServer } from './helpers.js';
import { CALL_ARGS } from '../../src/native.js';

type Handler = (s: NativeH2Stream, h: H2Headers, endStream: boolean) => void;

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  // Every session has ended and handed its chunks back.
  await until(() => b.stats().poolChunksInUse === 0);
  expect(b.stats().poolChunksInUse).toBe(0);
});

/** Polls a condition (never a fixed wait as the assertion itself). */
/** Waits until `read()` stops changing (the sender is blocked by flow control). */
async function stalled(read: () => number): Promise<number> {
  let last = -1;
  let same = 0;
  for (let i = 0; i < 1000 && same < 15; i++) {
    await sleep(20);
    const v = read();
    same = v === last ? same + 1 : 0;
    last = v;
  }
  return last;
}

function serve(handler: Handler, settings: Partial<NativeH2Settings> = {}): NativeH2TestServer {
  const srv = nativeH2Server({ onStream: handler }, settings);
  cleanups.push(() => srv.close());
  return srv;
}

function client(port: number): http2.ClientHttp2Session {
  const s = http2.connect(`http://127.0.0.1:${port}`);
  s.on('error', () => {});
  cleanups.push(() => new Promise<void>((r) => (s.destroyed || s.closed ? r() : s.close(() => r()))));
  return s;
}

function ask(s: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body: Buffer | null): Promise<{ headers: http2.IncomingHttpHeaders; body: Buffer; trailers: http2.IncomingHttpHeaders | null }> {
  return new Promise((resolve, reject) => {
    const rq = s.request(headers, { endStream: body === null });
    let head: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders | null = null;
    const chunks: Buffer[] = [];
    rq.on('response', (h) => (head = h));
    rq.on('trailers', (t) => (trailers = t));
    rq.on('data', (d: Buffer) => chunks.push(d));
    rq.on('end', () => resolve({ headers: head, body: Buffer.concat(chunks), trailers }));
    rq.on('error', reject);
    if (body) rq.end(body);
  });
}

/** Echoes method, path and a digest of the body; `x-trailers` asks for trailers. */
const echo: Handler = (s, h, endStream) => {
  const hash = crypto.createHash('sha256');
  let n = 0;
  const answer = () => {
    const wantTrailers = h['x-trailers'] !== undefined;
    s.respond({ ':status': '200', 'content-type': 'application/json', 'set-cookie': ['a=1', 'b=2'] }, { endStream: false, waitForTrailers: wantTrailers });
    if (wantTrailers) s.on('wantTrailers', () => s.sendTrailers({ 'x-sum': String(n) }));
    s.end(Buffer.from(JSON.stringify({ method: h[':method'], path: h[':path'], cookie: h.cookie, n, sha: hash.digest('hex') })));
  };
  if (endStream) return answer();
  s.on('data', (d: Buffer) => {
    n += d.length;
    hash.update(d);
  });
  s.on('end', answer);
};

describe('native HTTP/2 session', () => {
  it('sends trailers given while the body still waits on flow control, each intact, on 40 streams at once', async () => {
    // The trailers' fields are parsed when given and submitted when the body has gone, which
    // here is many window updates later: what nghttp2 gets then must still be those fields.
    const srv = serve((s, h) => {
      const n = Number(String(h[':path']).slice(1));
      const t: H2Headers = { 'grpc-status': String(n % 17), 'x-long': 'v'.repeat(n * 37), 'x-short': String(n) };
      if (n % 3 === 0) setNeverIndexed(t, 'x-short');
      s.respond({ ':status': '200' }, { waitForTrailers: true });
      s.on('wantTrailers', () => s.sendTrailers(t));
      s.end(Buffer.alloc(256 * KiB, n));
    });
    const c = client(srv.port);
    const never = (h: http2.IncomingHttpHeaders | null) => (h as Record<symbol, string[]> | null)?.[http2.sensitiveHeaders] ?? [];
    const rs = await Promise.all(Array.from({ length: 40 }, (_, n) => ask(c, { ':path': `/${n}` }, null)));
    rs.forEach((r, n) => {
      expect(r.body.length).toBe(256 * KiB);
      expect(r.body[r.body.length - 1]).toBe(n);
      expect(r.trailers?.['grpc-status']).toBe(String(n % 17));
      expect(r.trailers?.['x-long']).toBe('v'.repeat(n * 37));
      expect(r.trailers?.['x-short']).toBe(String(n));
      expect(never(r.trailers).includes('x-short')).toBe(n % 3 === 0);
    });
  });

  it('answers GET and POST with bodies both ways, trailers and joined cookies', async () => {
    const srv = serve(echo);
    const c = client(srv.port);
    const get = await ask(c, { ':method': 'GET', ':path': '/g?x=1', cookie: ['a=1', 'b=2'] }, null);
    expect(get.headers[':status']).toBe(200);
    expect(get.headers['set-cookie']).toEqual(['a=1', 'b=2']);
    expect(get.headers.date).toBeTruthy();
    expect(JSON.parse(get.body.toString())).toMatchObject({ method: 'GET', path: '/g?x=1', cookie: 'a=1; b=2', n: 0 });
    const body = crypto.randomBytes(3 * MiB);
    const post = await ask(c, { ':method': 'POST', ':path': '/p', 'x-trailers': '1' }, body);
    expect(JSON.parse(post.body.toString())).toMatchObject({ method: 'POST', n: body.length, sha: sha256(body) });
    expect(post.trailers?.['x-sum']).toBe(String(body.length));
    // Both requests went over one connection.
    expect(srv.conns.length).toBe(1);
  });

  it('serves 300 concurrent streams on one connection, each its own answer', async () => {
    const srv = serve((s, h) => {
      // Answer in reverse-ish order so responses interleave.
      setTimeout(() => {
        s.respond({ ':status': '200' }, { endStream: false });
        s.end(Buffer.from(String(h[':path'])));
      }, Number(String(h[':path']).slice(1)) % 7);
    });
    const c = client(srv.port);
    const rs = await Promise.all(Array.from({ length: 300 }, (_, i) => ask(c, { ':path': `/${i}` }, null)));
    rs.forEach((r, i) => expect(r.body.toString()).toBe(`/${i}`));
    // Stream ends noticed while writing reach JavaScript with the next read (here a PING).
    await new Promise((r) => c.ping(r));
    expect(srv.conns[0]!.openStreams).toBe(0);
  });

  it('sends per-request fields never indexed, intact over 300 concurrent streams, while the rest stay indexed', async () => {
    // x-request-id and grpc-timeout go out as HPACK "never indexed" literals (a value that never
    // repeats would only churn the dynamic table); node:http2 lists such fields in sensitiveHeaders.
    const srv = serve((s, h) => {
      setTimeout(() => s.respond({ ':status': '200', 'x-request-id': `rid-${String(h[':path']).slice(1)}`, 'grpc-timeout': `${h[':path']!.length}m`, 'x-kept': 'same' }, { endStream: true }), Number(String(h[':path']).slice(1)) % 5);
    });
    const c = client(srv.port);
    const rs = await Promise.all(Array.from({ length: 300 }, (_, i) => ask(c, { ':path': `/${i}` }, null)));
    rs.forEach((r, i) => {
      expect(r.headers['x-request-id']).toBe(`rid-${i}`);
      expect(r.headers['grpc-timeout']).toBe(`${String(i).length + 1}m`);
      expect(r.headers['x-kept']).toBe('same');
      const never = (r.headers as Record<symbol, string[]>)[http2.sensitiveHeaders] ?? [];
      expect(never).toEqual(expect.arrayContaining(['x-request-id', 'grpc-timeout']));
      expect(never).not.toContain('x-kept');
    });
  });

  it('hands on which fields the client sent never indexed, and sends never indexed what it is told to', async () => {
    // RFC 7541 §7.1.3: a proxy must forward a never-indexed field never indexed. The names come
    // with the request (object: under NEVER_INDEXED; flat: an extra argument, only when there are
    // any) and go back with respond() and the trailers.
    const got: Array<string[] | string | undefined> = [];
    const srv = serve((s, h) => {
      got.push((h as Record<symbol, string[]>)[NEVER_INDEXED]);
      const head: H2Headers = { ':status': '200', 'x-resp-secret': 'rs', 'x-resp-plain': 'rp' };
      const trailers: H2Headers = { 'x-trailer-secret': 'ts', 'x-trailer-plain': 'tp' };
      if (h[':path'] === '/secret') {
        setNeverIndexed(head, 'x-resp-secret');
        setNeverIndexed(trailers, 'x-trailer-secret');
      }
      s.respond(head, { endStream: false, waitForTrailers: true });
      s.on('wantTrailers', () => s.sendTrailers(trailers));
      s.end(Buffer.from('ok'));
    });
    const c = client(srv.port);
    const secret = await ask(c, { ':path': '/secret', 'x-api-key': 'k', 'x-plain': 'p', [http2.sensitiveHeaders]: ['x-api-key'] }, null);
    const plain = await ask(c, { ':path': '/plain', 'x-api-key': 'k', 'x-plain': 'p' }, null);
    expect(got[0]).toEqual(['x-api-key']);
    // A request without any: no list at all.
    expect(got[1]).toBeUndefined();
    const never = (h: object | null) => (h as Record<symbol, string[]>)[http2.sensitiveHeaders] ?? [];
    expect(secret.headers['x-resp-secret']).toBe('rs');
    expect(never(secret.headers)).toContain('x-resp-secret');
    expect(never(secret.headers)).not.toContain('x-resp-plain');
    expect(secret.trailers?.['x-trailer-secret']).toBe('ts');
    expect(never(secret.trailers)).toContain('x-trailer-secret');
    expect(never(secret.trailers)).not.toContain('x-trailer-plain');
    expect(never(plain.headers)).not.toContain('x-resp-secret');
    expect(never(plain.trailers)).not.toContain('x-trailer-secret');

    // The flat forms: the names as onStreamFlat's extra argument, back through respondFlatString.
    const flat: Array<string | undefined> = [];
    const srv2 = nativeH2Server({
      onStreamFlat(s, _f, _end, neverIndexed?: string) {
        flat.push(neverIndexed);
        s.respondFlatString(':status\x00200\x00x-resp-secret\x00rs\x00x-resp-plain\x00rp\x00', 3, { endStream: true }, neverIndexed === undefined ? undefined : 'x-resp-secret');
      },
    });
    cleanups.push(() => srv2.close());
    const c2 = client(srv2.port);
    const f1 = await ask(c2, { ':path': '/f', 'x-api-key': 'k', 'x-other': 'o', 'x-plain': 'p', [http2.sensitiveHeaders]: ['x-api-key', 'x-other'] }, null);
    const f2 = await ask(c2, { ':path': '/f' }, null);
    expect(flat).toEqual(['x-api-key\x00x-other', undefined]);
    expect(never(f1.headers)).toContain('x-resp-secret');
    expect(never(f1.headers)).not.toContain('x-resp-plain');
    expect(never(f2.headers)).not.toContain('x-resp-secret');
  });

  it("respondRuns (the addon joins an upstream head's kept runs and the added pairs) sends what the joined list sends", async () => {
    // h2ResponseFlatOf is the reference: each upstream list is answered once joined in JavaScript
    // and once joined by the addon, and the client must get the same fields in the same order.
    const lists = [
      // Dropped fields between kept ones, and the last pair (no NUL after it) kept.
      ':status\x00200\x00content-type\x00application/grpc\x00connection\x00close\x00server\x00up\x00grpc-encoding\x00identity\x00x-last\x00caf\u00e9',
      // Its own date and x-request-id kept, the last pair dropped.
      ':status\x00503\x00date\x00Thu, 01 Jan 1970 00:00:00 GMT\x00x-request-id\x00up-id\x00keep-alive\x00timeout=5',
      ':status\x00204',
      // Past the addon's 1 KiB stack buffer for string arguments.
      `:status\x00200\x00x-big\x00${'b'.repeat(1500)}\x00connection\x00close\x00x-last\x00z`,
    ];
    let list = '';
    const srv = serve((st, h) => {
      if (h[':path'] === '/joined') {
        const flat = h2ResponseFlatOf(list, 'OVERWRITE', 'strait', 'rid-1');
        st.respondFlatString(flat, h2ResponseFlatPairs(), { endStream: true });
      } else {
        const p = h2ResponseParts(list, 'OVERWRITE', 'strait', 'rid-1');
        st.respondRuns(list, p.runs, p.nRuns, p.extra, p.pairs, { endStream: true });
      }
    });
    const c = client(srv.port);
    for (const l of lists) {
      list = l;
      const a = await ask(c, { ':path': '/joined' }, null);
      const r = await ask(c, { ':path': '/parts' }, null);
      // `date` is the proxy's clock when the upstream sent none: equal but for a second boundary.
      const { date: da, ...ja } = a.headers;
      const { date: dr, ...jr } = r.headers;
      expect(jr).toEqual(ja);
      expect(Object.keys(jr)).toEqual(Object.keys(ja));
      expect(typeof dr).toBe('string');
      if (l.includes('\x00date\x00')) expect(dr).toBe(da);
      expect(jr.server).toBe('strait');
      expect(jr[':status']).toBe(Number(l.split('\x00')[1]));
    }
  });

  it('respondRuns refuses runs outside the list, a run count the array does not hold, a wrong pair count and strings that are not', async () => {
    const errors: string[] = [];
    const srv = serve((st) => {
      const h = (st.session as unknown as { h: { respondRuns: (...a: unknown[]) => boolean } }).h;
      const runs = new Int32Array([0, 11]); // the whole of the list
      for (const args of [
        [st.id, ':status\x00200', new Int32Array([0, 99]), 1, '', 1, true],
        [st.id, ':status\x00200', runs, 2, '', 1, true],
        [st.id, ':status\x00200', [0, 10], 1, '', 1, true],
        [st.id, ':status\x00200', runs, 1, 'x-a\x00b\x00', 1, true],
        // Types: checked by the reads of the bytes, not beforehand.
        [st.id, 42, runs, 1, '', 1, true],
        [st.id, ':status\x00200', runs, 1, null, 1, true],
      ]) {
        try {
          h.respondRuns(...args);
        } catch (err) {
          errors.push((err as Error).message);
        }
      }
      try {
        (h as unknown as { trailers: (...a: unknown[]) => void }).trailers(st.id, 42, 0);
      } catch (err) {
        errors.push((err as Error).message);
      }
      st.respondRuns(':status\x00200', runs, 1, 'x-a\x00b\x00', 2, { endStream: true });
    });
    const r = await ask(client(srv.port), { ':path': '/' }, null);
    expect(r.headers[':status']).toBe(200);
    expect(r.headers['x-a']).toBe('b');
    expect(errors[0]).toMatch(/a run is outside src/);
    expect(errors[1]).toMatch(/nRuns out of range/);
    expect(errors[2]).toMatch(/runs must be an Int32Array/);
    expect(errors[3]).toMatch(/invalid header name or value/);
    expect(errors[4]).toMatch(/src must be a string/);
    expect(errors[5]).toMatch(/H2Session.respondRuns: extra must be a string/);
    expect(errors[6]).toMatch(/H2Session.trailers: trailers must be a string or a Uint8Array with its length/);
  });

  it('dataArgs and trailersArgs (numbers in CALL_ARGS) send the body and trailers, and refuse numbers out of range, an unknown session and arguments of the wrong type', async () => {
    const errors: string[] = [];
    const results: unknown[] = [];
    const calls = b.H2Session.calls as unknown as { dataArgs: (c: unknown) => boolean; trailersArgs: (t: unknown, n?: string) => void };
    const srv = serve((st) => {
      const sid = st.session.h.sid();
      const set = (third: number, over: Record<number, number> = {}) => {
        CALL_ARGS.set([sid, st.id, third]);
        for (const [k, v] of Object.entries(over)) CALL_ARGS[Number(k)] = v;
      };
      const tryIt = (f: () => unknown): void => {
        try {
          results.push(f());
        } catch (err) {
          errors.push(`${(err as Error).name}: ${(err as Error).message}`);
        }
      };
      st.respond({ ':status': 200 }, { waitForTrailers: true });
      set(0, { 1: 0.5 });
      tryIt(() => calls.dataArgs(Buffer.from('x')));
      set(0, { 0: 987654321 });
      tryIt(() => calls.dataArgs(Buffer.from('x')));
      set(0);
      tryIt(() => calls.dataArgs('text'));
      set(-1);
      tryIt(() => calls.trailersArgs('grpc-status\x000'));
      set(1);
      tryIt(() => calls.trailersArgs(42));
      set(2);
      tryIt(() => calls.trailersArgs('grpc-status\x000'));
      // A stream this session does not have: the bytes have nowhere to go (true), no error.
      set(0, { 1: st.id + 1000 });
      tryIt(() => calls.dataArgs(Buffer.from('lost')));
      set(0);
      tryIt(() => calls.dataArgs(Buffer.from('body ')));
      tryIt(() => calls.dataArgs(Buffer.from('more')));
      set(2);
      tryIt(() => calls.trailersArgs('grpc-status\x000\x00x-secret\x00s', 'x-secret'));
    });
    const r = await ask(client(srv.port), { ':path': '/' }, null);
    expect(errors).toEqual([
      "RangeError: H2Session.dataArgs: the call-args table's streamId must be a positive integer",
      'TypeError: H2Session.dataArgs: no session has the number given',
      'TypeError: H2Session.dataArgs: chunk must be a Buffer or null',
      "RangeError: H2Session.trailersArgs: the call-args table's pairs must be an integer not negative",
      'TypeError: H2Session.trailersArgs: trailers must be a string',
      'TypeError: H2Session.trailersArgs: invalid header name or value',
    ]);
    expect(results).toEqual([true, true, true, undefined]);
    expect(r.body.toString()).toBe('body more');
    expect(r.trailers).toMatchObject({ 'grpc-status': '0', 'x-secret': 's' });
    expect((r.trailers as Record<symbol, string[]> | null)?.[http2.sensitiveHeaders]).toContain('x-secret');
  });

  it('tells a data handler when the chunk is the last one, its END next in the batch; a chunk held for the END is flushed when the END is held back', async () => {
    const seen: Record<string, string[]> = {};
    const flushed: string[] = [];
    const srv = serve((st, h) => {
      const path = String(h[':path']);
      const log = (seen[path] = [] as string[]);
      // /paused: the stream pauses on the final chunk, so its END is held back; a holder of that
      // chunk must then be told to send it as it is.
      st.on('data', (d: Buffer) => {
        const final = chunkIsFinal();
        log.push(`${d.toString()}${final ? ' final' : ''}`);
        if (final && path === '/paused') {
          holdFinal({ flushFinal: () => flushed.push(d.toString()) });
          st.pause();
          setTimeout(() => st.resume(), 20);
        }
      });
      st.on('end', () => {
        log.push('end');
        st.respond({ ':status': '200' }, { endStream: true });
      });
    });
    const c = client(srv.port);
    // One DATA frame with END_STREAM: the chunk is final.
    await ask(c, { ':method': 'POST', ':path': '/one' }, Buffer.from('a'));
    // A chunk, then the end in a later frame: neither chunk is final.
    await new Promise<void>((resolve) => {
      const rq = c.request({ ':method': 'POST', ':path': '/two' });
      rq.on('response', () => {});
      rq.on('close', () => resolve());
      rq.resume();
      rq.write('b');
      setTimeout(() => rq.end('c'), 30);
    });
    await ask(c, { ':method': 'POST', ':path': '/paused' }, Buffer.from('d'));
    expect(seen['/one']).toEqual(['a final', 'end']);
    // 'c' rides with END_STREAM in node's client, so it is final; 'b' went alone.
    expect(seen['/two']).toEqual(['b', 'c final', 'end']);
    expect(seen['/paused']).toEqual(['d final', 'end']);
    expect(flushed).toEqual(['d']);
  });

  it('holds at most one stream window of a request body while the reader is paused', async () => {
    let held: NativeH2Stream | null = null;
    let got = 0;
    const hash = crypto.createHash('sha256');
    const srv = serve((s) => {
      held = s;
      s.pause();
      s.on('data', (d: Buffer) => {
        got += d.length;
        hash.update(d);
      });
      s.on('end', () => {
        s.respond({ ':status': '200' }, { endStream: false });
        s.end(Buffer.from(String(got)));
      });
    });
    const c = client(srv.port);
    const body = crypto.randomBytes(8 * MiB);
    const rq = c.request({ ':method': 'POST', ':path': '/up' });
    let acked = 0;
    const piece = 64 * KiB;
    // Each write's callback runs once nghttp2 has sent that piece: what the window let through.
    for (let off = 0; off < body.length; off += piece) rq.write(body.subarray(off, off + piece), () => (acked += piece));
    rq.end();
    const res = new Promise<string>((resolve, reject) => {
      const chunks: Buffer[] = [];
      rq.on('data', (d: Buffer) => chunks.push(d));
      rq.on('end', () => resolve(Buffer.concat(chunks).toString()));
      rq.on('error', reject);
    });
    await until(() => held !== null);
    const sent = await stalled(() => acked);
    // Paused from its first byte: the peer got only the initial 64 KiB window, never handed back.
    expect(sent).toBeLessThanOrEqual(128 * KiB);
    const heldBytes = ((held as unknown as { held: Buffer[] | null }).held ?? []).reduce((a, x) => a + x.length, 0);
    expect(heldBytes).toBeLessThanOrEqual(65535);
    expect(got).toBe(0);
    held!.resume();
    expect(await res).toBe(String(body.length));
    expect(hash.digest('hex')).toBe(sha256(body));
  });

  it('queues a bounded amount of response for a client that does not read, then delivers it all', async () => {
    const total = 32 * MiB;
    const body = crypto.randomBytes(total);
    let accepted = 0;
    let done = false;
    const srv = serve((s) => {
      s.respond({ ':status': '200' }, { endStream: false });
      let off = 0;
      const pump = () => {
        while (off < total) {
          const n = Math.min(256 * KiB, total - off);
          const ok = s.write(body.subarray(off, off + n));
          off += n;
          accepted = off;
          if (!ok) {
            s.once('drain', pump);
            return;
          }
        }
        s.end();
        done = true;
      };
      pump();
    });
    const c = client(srv.port);
    const rq = c.request({ ':path': '/down' });
    rq.pause();
    const chunks: Buffer[] = [];
    const res = new Promise<void>((resolve, reject) => {
      rq.on('data', (d: Buffer) => chunks.push(d));
      rq.on('end', resolve);
      rq.on('error', reject);
    });
    const at = await stalled(() => accepted);
    expect(done).toBe(false);
    // The producer was told to wait long before the whole body: a stream window plus the high-water mark and one write.
    expect(at).toBeLessThan(2 * MiB);
    const st = srv.conns[0]!.h.stats();
    expect(st.queuedBodyBytes).toBeLessThanOrEqual(64 * KiB + 256 * KiB);
    expect(st.outputBytes).toBeLessThanOrEqual(2 * MiB);
    rq.resume();
    await res;
    expect(sha256(Buffer.concat(chunks))).toBe(sha256(body));
  });

  it('tells the handler of a client reset mid-body; the connection serves on', async () => {
    const closed: number[] = [];
    let firstData: () => void = () => {};
    const dataSeen = new Promise<void>((r) => (firstData = r));
    const srv = serve((s, h, end) => {
      if (h[':path'] === '/slow') {
        s.on('data', () => firstData());
        s.on('close', function (this: NativeH2Stream) {
          closed.push(this.rstCode!);
        });
        return;
      }
      echo(s, h, end);
    });
    const c = client(srv.port);
    const rq = c.request({ ':method': 'POST', ':path': '/slow' });
    rq.on('error', () => {});
    rq.write(Buffer.alloc(10 * KiB));
    await dataSeen;
    rq.close(http2.constants.NGHTTP2_CANCEL);
    await until(() => closed.length > 0);
    expect(closed).toEqual([http2.constants.NGHTTP2_CANCEL]);
    const r = await ask(c, { ':path': '/after' }, null);
    expect(JSON.parse(r.body.toString()).path).toBe('/after');
  });

  it('resets a request whose body falls short of its content-length with PROTOCOL_ERROR, counted; the connection serves on', async () => {
    const seen: string[] = [];
    const srv = serve((s, h, end) => {
      seen.push(String(h[':path']));
      if (h[':path'] === '/short') {
        s.on('error', () => {});
        s.resume();
        return;
      }
      echo(s, h, end);
    });
    const c = client(srv.port);
    const rst = await new Promise<number>((resolve) => {
      const rq = c.request({ ':method': 'POST', ':path': '/short', 'content-length': '10' });
      rq.on('error', () => {});
      rq.on('close', () => resolve(rq.rstCode ?? -1));
      rq.end('abc');
      rq.resume();
    });
    expect(rst).toBe(http2.constants.NGHTTP2_PROTOCOL_ERROR);
    expect(srv.conns[0]!.h.stats().malformedMessages).toBe(1);
    const r = await ask(c, { ':path': '/after' }, null);
    expect(JSON.parse(r.body.toString()).path).toBe('/after');
    expect(srv.conns[0]!.h.stats().malformedMessages).toBe(1);
  });

  it('answers a header list over the limit with 431 without showing it to JavaScript; the connection serves on', async () => {
    const seen: string[] = [];
    const srv = serve((s, h, end) => {
      seen.push(String(h[':path']));
      echo(s, h, end);
    }, { maxHeaderListSize: 4 * KiB });
    const c = client(srv.port);
    const big = await new Promise<{ status: number; rst: number }>((resolve) => {
      const rq = c.request({ ':path': '/big', 'x-big': 'x'.repeat(8 * KiB) });
      let status = 0;
      rq.on('response', (h) => (status = Number(h[':status'])));
      rq.on('error', () => {});
      rq.on('close', () => resolve({ status, rst: rq.rstCode ?? -1 }));
      rq.resume();
    });
    expect(big.status).toBe(431);
    expect(srv.conns[0]!.h.stats().rejectedHeaders).toBe(1);
    // Too many fields is the same limit (maxHeaderPairs).
    const many: http2.OutgoingHttpHeaders = { ':path': '/many' };
    for (let i = 0; i < 120; i++) many[`x-h${i}`] = 'v';
    const r2 = await ask(c, many, null);
    expect(r2.headers[':status']).toBe(431);
    const r = await ask(c, { ':path': '/small' }, null);
    expect(JSON.parse(r.body.toString()).path).toBe('/small');
    expect(seen).toEqual(['/small']);
  });

  it('ends a connection that breaks the protocol with GOAWAY, and only that one', async () => {
    const srv = serve(echo);
    const good = client(srv.port);
    await ask(good, { ':path': '/1' }, null);
    const raw = net.connect(srv.port, '127.0.0.1');
    raw.on('error', () => {});
    // Preface, empty SETTINGS, then DATA on stream 0: a connection error (RFC 9113 §6.1).
    raw.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]), Buffer.from([0, 0, 1, 0, 0, 0, 0, 0, 0, 0])]));
    const goawayCode = await new Promise<number>((resolve) => {
      let got = Buffer.alloc(0);
      raw.on('data', (d: Buffer) => {
        got = Buffer.concat([got, d]);
        for (let off = 0; off + 9 <= got.length; off += 9 + got.readUIntBE(off, 3)) {
          if (got[off + 3] === 7 && off + 17 <= got.length) resolve(got.readUInt32BE(off + 13));
        }
      });
      raw.on('close', () => resolve(-1));
    });
    raw.destroy();
    expect(goawayCode).toBe(http2.constants.NGHTTP2_PROTOCOL_ERROR);
    await until(() => srv.ends.length > 0);
    expect(srv.ends).toEqual([H2SessionEnd.PROTOCOL_ERROR]);
    // Garbage instead of a preface ends that connection too, never the process.
    const junk = net.connect(srv.port, '127.0.0.1');
    junk.on('error', () => {});
    junk.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
    await until(() => srv.ends.length > 1);
    expect(srv.ends[1]).toBe(H2SessionEnd.PROTOCOL_ERROR);
    junk.destroy();
    const r = await ask(good, { ':path': '/2' }, null);
    expect(JSON.parse(r.body.toString()).path).toBe('/2');
  });

  it('closes gracefully: GOAWAY, the open stream still answered, then the end', async () => {
    let pending: NativeH2Stream | null = null;
    const srv = serve((s) => {
      pending = s;
    });
    const c = client(srv.port);
    let goaway = false;
    c.on('goaway', () => (goaway = true));
    const res = ask(c, { ':path': '/late' }, null);
    await until(() => pending !== null);
    srv.conns[0]!.close();
    await until(() => goaway);
    expect(goaway).toBe(true);
    expect(srv.ends).toEqual([]);
    pending!.respond({ ':status': '200' }, { endStream: false });
    pending!.end(Buffer.from('late'));
    expect((await res).body.toString()).toBe('late');
    await until(() => srv.ends.length > 0);
    expect(srv.ends).toEqual([H2SessionEnd.DONE]);
  });

  it('survives random frames from many peers: each session ends, the process and a good client go on', async () => {
    const srv = serve(echo);
    const good = client(srv.port);
    // Seeded: a failure reproduces.
    let seed = 0x5eed;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const peers = 60;
    for (let p = 0; p < peers; p++) {
      const frames: Buffer[] = [Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])];
      for (let f = 0; f < 20; f++) {
        const len = rnd(40);
        const h = Buffer.alloc(9);
        h.writeUIntBE(len, 0, 3);
        h[3] = rnd(11);
        h[4] = rnd(256);
        h.writeUInt32BE(rnd(8), 5);
        frames.push(h, Buffer.from(Array.from({ length: len }, () => rnd(256))));
      }
      const raw = net.connect(srv.port, '127.0.0.1');
      raw.on('error', () => {});
      raw.on('data', () => {});
      raw.end(Buffer.concat(frames));
    }
    await until(() => srv.ends.length === peers, 1000);
    expect(srv.ends.length).toBe(peers);
    const r = await ask(good, { ':path': '/still' }, null);
    expect(JSON.parse(r.body.toString()).path).toBe('/still');
  });

  it('rejects bad options with an error naming the field, and still owns (closes) the fd', () => {
    const fd1 = b.listenTcp('127.0.0.1', 0, 1, false);
    expect(() => new b.H2Session!(fd1, { maxHeaderListSize: 'x' } as never, null, () => {})).toThrow(/H2Session: maxConcurrentStreams must be a number/);
    expect(() => b.closeFd(fd1)).toThrow(/EBADF/);
    const fd2 = b.listenTcp('127.0.0.1', 0, 1, false);
    const opts = { maxConcurrentStreams: 10, initialWindowSize: 65535, maxHeaderListSize: 1, maxHeaderPairs: 1, highWaterMark: 1, streamHighWaterMark: 1, idleTimeoutMs: 0 };
    expect(() => new b.H2Session!(fd2, opts, null, () => {})).toThrow(/H2Session: maxHeaderListSize out of range/);
    expect(() => b.closeFd(fd2)).toThrow(/EBADF/);
  });
});
