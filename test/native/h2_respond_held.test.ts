// respondRuns for a response head a native upstream stream keeps (respondHeldArgs): the addon cuts
// the kept runs from the client session's own block instead of reading the head back from the
// string JavaScript was given. Real node:http2 upstream and client, the addon's sessions between.
import http2 from 'node:http2';
import { afterEach, describe, expect, it } from 'vitest';
import { h2ResponseFlatOf, h2ResponseFlatPairs, h2ResponseParts } from '../../src/filters/network/http_connection_manager/h2_session.js';
import { CALL_ARGS, RESPONSE_NOT_HELD, RUNS_TABLE } from '../../src/native.js';
import { NativeH2ClientConnection, type H2Headers, type NativeH2ClientStreamUser, type NativeH2Stream } from '../../src/protocols/http2/native_session.js';
import { b, DownRelay, nativeH2Client, nativeH2Server, requestClosed, sleep, until } from './helpers.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await until(() => b.stats().poolChunksInUse === 0);
  expect(b.stats().poolChunksInUse).toBe(0);
});

/** The upstream's heads, by the number in the request's path. */
const HEADS: http2.OutgoingHttpHeaders[] = [
  { ':status': 200, 'content-type': 'application/grpc', server: 'up', 'grpc-encoding': 'identity', 'x-last': 'caf\u00e9' },
  { ':status': 503, date: 'Thu, 01 Jan 1970 00:00:00 GMT', 'x-request-id': 'up-id', 'set-cookie': ['a=1', 'b=2'] },
  { ':status': 404 },
  // Past the addon's 1 KiB stack buffer for strings, and a field the upstream sends never indexed.
  { ':status': 200, 'x-big': 'b'.repeat(1500), 'x-secret': 's', 'x-end': 'e', [http2.sensitiveHeaders]: ['x-secret'] },
];

async function upstream(): Promise<number> {
  const srv = http2.createServer();
  const sessions = new Set<http2.ServerHttp2Session>();
  srv.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  srv.on('stream', (s, h) => {
    s.on('error', () => {});
    const [, mode, i] = String(h[':path']).split('/');
    const head = HEADS[Number(i)]!;
    // "whole": the head ends the stream, which the addon then closes (and forgets) before
    // JavaScript sees the head; otherwise the body follows later and the stream stays open.
    if (mode === 'whole') s.respond(head, { endStream: true });
    else {
      s.respond(head);
      setTimeout(() => s.end('tail'), 30);
    }
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        for (const s of sessions) s.destroy();
        srv.close(() => r());
      }),
  );
  return (srv.address() as { port: number }).port;
}

async function dial(port: number): Promise<NativeH2ClientConnection> {
  const c = await nativeH2Client(port);
  cleanups.push(() => c.destroy());
  return c;
}

/** Forwards one upstream response to a downstream stream, its head through `onHead`. */
class Relay extends DownRelay implements NativeH2ClientStreamUser {
  id = 0;
  constructor(
    down: NativeH2Stream,
    private readonly onHead: (flat: string, end: boolean, never: string | undefined, relay: Relay) => void,
  ) {
    super(down);
  }
  h2Headers(_h: H2Headers): void {
    throw new Error('h2HeadersFlat is given');
  }
  h2HeadersFlat(flat: string, end: boolean, never?: string): void {
    this.onHead(flat, end, never, this);
  }
}

function client(port: number): http2.ClientHttp2Session {
  const c = http2.connect(`http://127.0.0.1:${port}`);
  c.on('error', () => {});
  cleanups.push(() => c.destroy());
  return c;
}

async function ask(c: http2.ClientHttp2Session, path: string): Promise<{ headers: http2.IncomingHttpHeaders; body: string; raw: string[] }> {
  return new Promise((resolve, reject) => {
    const rq = c.request({ ':path': path }, { endStream: true });
    let headers: http2.IncomingHttpHeaders = {};
    let raw: string[] = [];
    let body = '';
    rq.on('response', (h, _f, r) => {
      headers = h;
      raw = r;
    });
    rq.setEncoding('latin1');
    rq.on('data', (d: string) => (body += d));
    rq.on('error', reject);
    rq.on('close', () => resolve({ headers, body, raw }));
  });
}

describe('respondHeldArgs', () => {
  it("sends what the joined list sends, cut from the upstream stream's kept head; a head whose stream is gone goes as respondRuns", async () => {
    const up = await dial(await upstream());
    // What respondHeld answered, per downstream path (the stream id is its first argument).
    const answers = new Map<string, number>();
    const paths = new Map<number, string>();
    const wrapped = new Set<unknown>();
    const down = nativeH2Server({
      onStreamFlat: (st, reqFlat) => {
        const f = reqFlat.split('\0');
        const path = f[f.indexOf(':path') + 1]!;
        const [, how, mode, i] = path.split('/');
        paths.set(st.id, path);
        const h = st.session.h;
        if (!wrapped.has(h)) {
          wrapped.add(h);
          const respondHeld = h.respondHeld!.bind(h);
          h.respondHeld = (...a) => {
            const r = respondHeld(...a);
            answers.set(paths.get(a[0])!, r);
            return r;
          };
        }
        const relay = new Relay(st, (flat, end, never, r) => {
          if (how === 'joined') {
            st.respondFlatString(h2ResponseFlatOf(flat, 'OVERWRITE', 'strait', 'rid-1'), h2ResponseFlatPairs(), { endStream: end }, never);
            return;
          }
          const p = h2ResponseParts(flat, 'OVERWRITE', 'strait', 'rid-1');
          RUNS_TABLE.set(p.runs);
          st.respondRuns(flat, null, p.nRuns, p.extra, p.pairs, { endStream: end }, never, up.h.sid(), r.id);
        });
        relay.id = up.request({ ':method': 'GET', ':scheme': 'http', ':authority': 'up', ':path': `/${mode}/${i}` }, true, relay);
      },
    });
    cleanups.push(() => down.close());
    const c = client(down.port);
    for (const mode of ['open', 'whole']) {
      for (let i = 0; i < HEADS.length; i++) {
        const a = await ask(c, `/joined/${mode}/${i}`);
        const r = await ask(c, `/held/${mode}/${i}`);
        // The same fields in the same order (`date`: the proxy's clock when the upstream sent none).
        const strip = (raw: string[]) => raw.flatMap((v, k) => (k % 2 === 0 && v !== 'date' ? [v, raw[k + 1]!] : []));
        expect(strip(r.raw)).toEqual(strip(a.raw));
        expect(r.headers.server).toBe('strait');
        expect(r.headers['x-request-id']).toBe(i === 1 ? 'up-id' : 'rid-1');
        expect(r.body).toBe(mode === 'whole' ? '' : 'tail');
        if (i === 3) {
          // Still never indexed: node:http2 lists such fields under sensitiveHeaders.
          expect((r.headers as Record<symbol, unknown>)[http2.sensitiveHeaders]).toContain('x-secret');
        }
      }
    }
    // Held while the upstream stream was open; after it closed, the runs came from the string.
    for (let i = 0; i < HEADS.length; i++) {
      expect(answers.get(`/held/open/${i}`)).toBe(1);
      expect(answers.get(`/held/whole/${i}`)).toBe(RESPONSE_NOT_HELD);
    }
  });

  it('refuses numbers that are not integers in range, runs off the fields, a wrong pair count and an extra that is no string; the stream can still be answered', async () => {
    const up = await dial(await upstream());
    const errors: string[] = [];
    let answered = -2;
    const calls = b.H2Session.calls as unknown as { respondHeldArgs: (...a: unknown[]) => number };
    const down = nativeH2Server({
      onStreamFlat: (st) => {
        const relay = new Relay(st, (flat, end, _never, r) => {
          // The head is ':status\0200\0content-type\0...': the first pair's run, with its NUL, is [0, 12).
          const set = (over: Partial<Record<number, number>>) => {
            const v = [st.session.h.sid(), st.id, up.h.sid(), r.id, 1, 1, end ? 1 : 0];
            for (const [k, x] of Object.entries(over)) v[Number(k)] = x!;
            CALL_ARGS.set(v);
          };
          RUNS_TABLE.set([0, 12]);
          for (const [over, extra] of [
            [{ 1: 1.5 }, ''],
            [{ 3: -1 }, ''],
            [{ 4: RUNS_TABLE.length }, ''],
            [{ 0: 987654321 }, ''],
            [{ 5: 2 }, ''],
            [{}, 42],
          ] as [Partial<Record<number, number>>, unknown][]) {
            set(over);
            try {
              calls.respondHeldArgs(extra);
            } catch (err) {
              errors.push(`${(err as Error).name}: ${(err as Error).message}`);
            }
          }
          RUNS_TABLE.set([0, 5]);
          set({});
          try {
            calls.respondHeldArgs('');
          } catch (err) {
            errors.push(`${(err as Error).name}: ${(err as Error).message}`);
          }
          RUNS_TABLE.set([0, 12]);
          set({ 5: 2 });
          answered = calls.respondHeldArgs('x-a\0b\0');
          // Answered once: a second answer is refused (0), as respondRuns' false.
          set({ 5: 2 });
          errors.push(`second: ${calls.respondHeldArgs('x-a\0b\0')}`);
        });
        relay.id = up.request({ ':method': 'GET', ':scheme': 'http', ':authority': 'up', ':path': '/open/0' }, true, relay);
      },
    });
    cleanups.push(() => down.close());
    const r = await ask(client(down.port), '/x');
    expect(answered).toBe(1);
    expect(r.headers[':status']).toBe(200);
    expect(r.headers['x-a']).toBe('b');
    expect(r.headers['content-type']).toBeUndefined();
    expect(r.body).toBe('tail');
    expect(errors[0]).toMatch(/^RangeError: H2Session.respondHeldArgs: the call-args table's streamId/);
    expect(errors[1]).toMatch(/^RangeError: H2Session.respondHeldArgs: the call-args table's streamId/);
    expect(errors[2]).toMatch(/^RangeError: H2Session.respondHeldArgs: nRuns out of range/);
    expect(errors[3]).toMatch(/^TypeError: H2Session.respondHeldArgs: no server session has the number given/);
    expect(errors[4]).toMatch(/^TypeError: H2Session.respondHeldArgs: invalid header name or value/);
    expect(errors[5]).toMatch(/^TypeError: H2Session.respondHeldArgs: extra must be a string/);
    expect(errors[6]).toMatch(/^RangeError: H2Session.respondHeldArgs: a run does not end at a field/);
    expect(errors[7]).toBe('second: 0');
    expect(errors).toHaveLength(8);
    await sleep(10);
  });
});
