// The addon hands each header block it delivers with a field table (FIELD_TABLE): per field the
// offsets of its two NULs and a FieldToken, so that JavaScript neither searches the list for NULs
// nor compares names. Whatever passes read a list (the request's fields, the upstream request,
// the response and trailers lists) must see exactly what flatIndex() finds and fieldTokenOf()
// gives on its own, including when a batch has more blocks than the table holds. Driven by the
// real node:http2 client and server against the addon's sessions.
import http2 from 'node:http2';
import { afterEach, describe, expect, it } from 'vitest';
import { FIELD_TABLE, flatForget, flatIndexOf, flatPrimedCount, NativeH2ClientConnection, type NativeH2ClientStreamUser, type NativeH2Stream } from '../../src/protocols/http2/native_session.js';
import { b, nativeH2Server, sleep } from './helpers.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function until(cond: () => boolean, tries = 500): Promise<void> {
  for (let i = 0; i < tries && !cond(); i++) await sleep(10);
}

/** The index flatIndex() gives `s` as the addon primed it, and the one it finds itself. */
function bothIndexes(s: string): { primed: ReturnType<typeof flatIndexOf>; own: ReturnType<typeof flatIndexOf> } {
  const primed = flatIndexOf(s);
  flatForget();
  const own = flatIndexOf(s);
  return { primed, own };
}

/** The record at FIELD_TABLE[1] (the batch's first block) as flatIndexOf's shape. */
function firstRecord(): { nuls: number[]; toks: number[] } {
  const n = FIELD_TABLE[1]!;
  const nuls: number[] = [];
  const toks: number[] = [];
  for (let j = 0; j < n; j++) {
    nuls.push(FIELD_TABLE[2 + 3 * j]!, FIELD_TABLE[3 + 3 * j]!);
    toks.push(FIELD_TABLE[4 + 3 * j]!);
  }
  return { nuls, toks };
}

// Every name a token stands for that a request may carry, names of the same lengths that are not
// them, and names of other lengths.
const REQUEST_FIELDS: [string, string][] = [
  ['host', 'h.example'],
  ['hosu', 'not host'],
  ['date', 'Sat, 05 Dec 2026 10:00:00 GMT'],
  ['content-type', 'application/grpc'],
  ['content-typf', 'x'],
  ['grpc-timeout', '5S'],
  ['x-request-id', 'a-b-c'],
  ['x-request-iz', 'x'],
  ['te', 'trailers'],
  ['tf', 'x'],
  ['cookie', 'a=1'],
  ['cookie', 'b=2'],
  ['server', 'sent anyway'],
  ['serveq', 'x'],
  ['content-length', '0'],
  ['x-forwarded-for', '10.0.0.1'],
  ['x-forwarded-fox', 'x'],
  ['x-forwarded-proto', 'https'],
  ['x-envoy-original-path', '/orig'],
  ['x-forwarded-client-cert', 'By=spiffe://x'],
  ['x-forwarded-client-ceru', 'x'],
  ['a', ''],
  ['x-long-name-of-thirty-one-chars', 'v'],
];

describe('the addon field table', () => {
  it("gives each field of a request its NULs and token exactly as flatIndex and fieldTokenOf find them", async () => {
    const seen: { flat: string; record: ReturnType<typeof firstRecord>; both: ReturnType<typeof bothIndexes> }[] = [];
    const srv = nativeH2Server({
      onStreamFlat: (s, flat) => {
        seen.push({ flat, record: firstRecord(), both: bothIndexes(flat) });
        s.respondFlatString(':status\x00204', 1, { endStream: true });
      },
    });
    cleanups.push(() => srv.close());
    const c = http2.connect(`http://127.0.0.1:${srv.port}`);
    c.on('error', () => {});
    cleanups.push(() => new Promise<void>((r) => c.close(() => r())));
    const headers: http2.OutgoingHttpHeaders = { ':method': 'POST', ':path': '/svc/Method?q=1', ':authority': 'a.example' };
    // An array value goes as one field per element (two cookie fields).
    for (const [k, v] of REQUEST_FIELDS) headers[k] = headers[k] === undefined ? v : [headers[k] as string, v].flat();
    await new Promise<void>((resolve) => {
      const rq = c.request(headers, { endStream: true });
      rq.on('response', () => {});
      rq.on('close', () => resolve());
      rq.on('error', () => resolve());
      rq.resume();
    });
    expect(seen).toHaveLength(1);
    const { flat, record, both } = seen[0]!;
    const names = flat.split('\0').filter((_, i) => i % 2 === 0);
    expect(names).toContain('x-forwarded-client-cert');
    expect(record.toks.length).toBe(names.length);
    // The addon's record, the index primed from it, and the one found in JavaScript agree.
    expect(record).toEqual(both.own);
    expect(both.primed).toEqual(both.own);
    // And the tokens are the names' (spot checks against the enum's values).
    const tokOf = (name: string): number[] => names.flatMap((n, i) => (n === name ? [record.toks[i]!] : []));
    expect(tokOf(':method')).toEqual([1]);
    expect(tokOf(':path')).toEqual([2]);
    expect(tokOf(':authority')).toEqual([3]);
    expect(tokOf(':scheme')).toEqual([4]);
    expect(tokOf('host')).toEqual([7]);
    expect(tokOf('hosu')).toEqual([0]);
    expect(tokOf('cookie')).toEqual([11, 11]);
    expect(tokOf('x-request-iz')).toEqual([0]);
    expect(tokOf('x-forwarded-client-cert')).toEqual([23]);
    expect(tokOf('x-forwarded-client-ceru')).toEqual([0]);
    expect(tokOf('content-type')).toEqual([26]); // application/grpc
    expect(tokOf('te')).toEqual([27]); // trailers
  });

  it('marks content-type by whether its value starts with application/grpc, as fieldTokenOf does', async () => {
    const seen: { ct: string; record: ReturnType<typeof firstRecord>; own: ReturnType<typeof flatIndexOf> }[] = [];
    const srv = nativeH2Server({
      onStreamFlat: (s, flat) => {
        const record = firstRecord();
        flatForget();
        seen.push({ ct: /content-type\x00([^\x00]*)/.exec(flat)![1]!, record, own: flatIndexOf(flat) });
        s.respondFlatString(':status\x00204', 1, { endStream: true });
      },
    });
    cleanups.push(() => srv.close());
    const c = http2.connect(`http://127.0.0.1:${srv.port}`);
    c.on('error', () => {});
    cleanups.push(() => new Promise<void>((r) => c.close(() => r())));
    const cts = ['application/grpc', 'application/grpc+proto', 'application/grp', 'application/grpd', 'text/plain', ''];
    for (const ct of cts) {
      await new Promise<void>((resolve) => {
        const rq = c.request({ ':method': 'POST', 'content-type': ct }, { endStream: true });
        rq.on('close', () => resolve());
        rq.on('error', () => resolve());
        rq.resume();
      });
    }
    expect(seen.map((x) => x.ct)).toEqual(cts);
    for (const { record, own } of seen) expect(record).toEqual(own);
    // The content-type field's token: 26 when gRPC, 8 otherwise.
    expect(seen.map((x) => x.record.toks.filter((t) => t === 8 || t === 26))).toEqual([[26], [26], [8], [8], [8], [8]]);
  });

  it('pairs records with blocks in order when a batch holds more blocks than the table', async () => {
    // A request of 700 fields makes a record of 2,113 entries: the table (4,096) holds one, so
    // in any batch of two blocks or more the later ones come without a record and are searched.
    const results: { k: number; same: boolean }[] = [];
    const primed0 = flatPrimedCount();
    const srv = nativeH2Server(
      {
        onStreamFlat: (s, flat) => {
          const k = Number(/:path\x00\/(\d+)/.exec(flat)![1]);
          const { primed, own } = bothIndexes(flat);
          results.push({ k, same: JSON.stringify(primed) === JSON.stringify(own) });
          s.respondFlatString(':status\x00204', 1, { endStream: true });
        },
      },
      { maxHeaderPairs: 1000, maxHeaderListSize: 256 * 1024 },
    );
    cleanups.push(() => srv.close());
    const c = http2.connect(`http://127.0.0.1:${srv.port}`, { maxHeaderListPairs: 2000 } as http2.ClientSessionOptions);
    c.on('error', () => {});
    cleanups.push(() => new Promise<void>((r) => c.close(() => r())));
    await new Promise<void>((r) => c.on('remoteSettings', () => r()));
    const extra: http2.OutgoingHttpHeaders = {};
    for (let f = 0; f < 700; f++) extra[`x-f${f}`] = `v${f}`;
    await Promise.all(
      Array.from(
        { length: 10 },
        (_, k) =>
          new Promise<void>((resolve) => {
            const rq = c.request({ ':path': `/${k}`, ...extra, 'x-request-id': `id-${k}` }, { endStream: true });
            rq.on('close', () => resolve());
            rq.on('error', () => resolve());
            rq.resume();
          }),
      ),
    );
    expect(results.map((r) => r.k).sort((x, y) => x - y)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    for (const r of results) expect(r.same).toBe(true);
    // Some lists were primed from a record, and some came in a batch past the table's end.
    const primed = flatPrimedCount() - primed0;
    expect(primed).toBeGreaterThan(0);
    expect(primed).toBeLessThan(10);
  });

  it('refuses a fields option that is no Int32Array, naming it', () => {
    const opts = { maxConcurrentStreams: 100, initialWindowSize: 65535, maxHeaderListSize: 65535, maxHeaderPairs: 128, highWaterMark: 1 << 20, streamHighWaterMark: 1 << 16, idleTimeoutMs: 0 };
    for (const fields of [new Uint32Array(8), new Int32Array(0), [1, 2, 3]]) {
      const fd = b.listenTcp('127.0.0.1', 0, 1, false); // closed by the constructor when it throws
      expect(() => new b.H2Session!(fd, { ...opts, fields: fields as unknown as Int32Array }, null, () => {})).toThrow(/H2Session: fields must be an Int32Array of 1 entry or more/);
    }
  });

  it('gives an upstream response and its trailers their fields as flatIndex finds them', async () => {
    const srv = http2.createServer();
    srv.on('stream', (s) => {
      s.respond({ ':status': 200, 'content-type': 'application/grpc', server: 'up', 'x-request-id': 'r', date: 'Sat, 05 Dec 2026 10:00:00 GMT', 'x-other': 'o' }, { waitForTrailers: true });
      s.on('wantTrailers', () => s.sendTrailers({ 'grpc-status': '0', 'grpc-message': 'ok' }));
      s.end('x');
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => srv.close(() => r())));
    const port = (srv.address() as { port: number }).port;
    const fd = await new Promise<number>((resolve, reject) => b.connect('127.0.0.1', port, 5000, (st, f) => (st === 0 ? resolve(f) : reject(new Error(`connect ${st}`)))));
    const c = new NativeH2ClientConnection(fd, {}, { onSettings() {}, onGoaway() {}, onEnd() {} });
    cleanups.push(() => c.destroy());
    const lists: { list: string; record: ReturnType<typeof firstRecord>; both: ReturnType<typeof bothIndexes> }[] = [];
    let closed = false;
    const user: NativeH2ClientStreamUser = {
      h2Headers() {},
      h2HeadersFlat: (list) => void lists.push({ list, record: firstRecord(), both: bothIndexes(list) }),
      h2TrailersFlat: (list) => void lists.push({ list, record: firstRecord(), both: bothIndexes(list) }),
      h2Data: () => false,
      h2Trailers() {},
      h2End() {},
      h2Close: () => void (closed = true),
      h2Drain() {},
    };
    c.requestFlat(':method\x00GET\x00:scheme\x00http\x00:path\x00/\x00:authority\x00x', 4, true, user);
    await until(() => closed);
    expect(lists).toHaveLength(2);
    for (const { both } of lists) expect(both.primed).toEqual(both.own);
    // The response came in a batch of its own here, so its record is the first.
    expect(lists[0]!.record).toEqual(lists[0]!.both.own);
    expect(lists[0]!.record.toks).toContain(24); // date
    expect(lists[0]!.record.toks).toContain(25); // server
    expect(lists[0]!.record.toks).toContain(15); // x-request-id
  });
});
