// Also the writers' reads from registered tables (KNOW_SRC_SLAB, KNOW_TAIL_ARENA): a head copied
// into the parser's slab and a body tail in the reader's arena are not passed as Buffers to read.
//
// The head writers' kept lines worked out by the addon (KNOW_RUNS_FROM_HEAD in
// src/protocols/http1/encoder.ts, RunsFromHeadOut in native/http1/http1_js.cc): for a head the
// native parser returned last, whose fields are still its HEAD_OUT results, encodeHeadStagedAt
// and encodeHeadSendAt hand the addon the drop mask instead of runs collected in JavaScript. The
// bytes must be encodeHeadJs's; a head whose fields are not the table's any more (another parse
// since, fields cut, a drop function, another parser registered) must go the JavaScript way.
import { describe, expect, it } from 'vitest';
import { h1DropUnderscored } from '../../src/filters/network/http_connection_manager/underscores.js';
import { loadNative, registeredTable, setTable, tableArg, TableSlot } from '../../src/native.js';
import { encodeHeadJs, encodeHeadSendAt, encodeHeadStagedAt, HEAD_NOT_SENT, keptBuffer, keptLength, lastHeadSent, lastKnownBits, lastRunsFromHead, resetStage, stagedBuffer, stagedLength, type Drop } from '../../src/protocols/http1/encoder.js';
import { nativeHeadParser, RequestHas, ResponseHas } from '../../src/protocols/http1/native_head.js';
import { fieldsInTables, flagsInTables, HTTP1_PARSER, parseRequestHeadOwned, parseResponseHead, parseResponseHeadOwned } from '../../src/protocols/http1/parser.js';
import type { MessageHead } from '../../src/protocols/http1/types.js';
import { rng } from '../helpers/rng.js';

const REQUEST = 'GET /api/v1/users/12345?fields=name HTTP/1.1\r\nHost: service.example.com\r\nUser-Agent: wrk\r\nAccept: */*\r\nConnection: keep-alive, x-hop\r\nX-Hop: 1\r\nTE: trailers\r\nExpect: 100-continue\r\nX-Two: two  \r\nX-Cafe: caf\xe9\r\n\r\n';
const RESPONSE = 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\nServer: nginx\r\nKeep-Alive: timeout=5\r\nUpgrade: h2c\r\nX-A:\r\n\r\nhello';
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;


function parse(request: boolean, b: Buffer): MessageHead | null {
  const h = request ? parseRequestHeadOwned(b, 0, b.length) : parseResponseHead(b, 0, b.length);
  return typeof h === 'number' ? null : h;
}

function staged(first: string, h: MessageHead, drop: Drop, extra: string, tail: Buffer | null = null, ts = 0, te = 0): Buffer {
  const at = encodeHeadStagedAt(first, h, drop, extra, tail, ts, te);
  expect(at).toBeGreaterThanOrEqual(0);
  return Buffer.from(stagedBuffer().subarray(at, at + stagedLength()));
}

function kept(first: string, h: MessageHead, drop: Drop, extra: string, fromEnd = 0): Buffer {
  const at = encodeHeadSendAt(-1, first, h, drop, extra, fromEnd);
  expect(at).toBeGreaterThanOrEqual(0);
  expect(lastHeadSent()).toBe(HEAD_NOT_SENT);
  return Buffer.from(keptBuffer().subarray(at, at + keptLength()));
}

describe('head writers with the kept lines worked out by the addon', () => {
  it('write encodeHeadJs\'s bytes for 4000 mutated heads the native parser returned last, drop masks, additions and tails', () => {
    expect(HTTP1_PARSER).toBe('native');
    const r = rng(0x40a);
    const srcs = [Buffer.from(REQUEST, 'latin1'), Buffer.from(RESPONSE, 'latin1')];
    let heads = 0;
    let merged = 0;
    const diffs: string[] = [];
    resetStage();
    for (let i = 0; i < 4000; i++) {
      const request = i % 2 === 0;
      let b = Buffer.from(srcs[i % 2]!);
      for (let e = 0; e < Math.floor(r() * 3); e++) {
        const at = Math.floor(r() * b.length);
        const op = r();
        if (op < 0.4) b = Buffer.concat([b.subarray(0, at), Buffer.from('x-ins: ' + 'y'.repeat(Math.floor(r() * 20)) + '\r\n'), b.subarray(at)]);
        else if (op < 0.7) b[at] = 0x20 + Math.floor(r() * 0xdf);
        else b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1)]);
      }
      const h = parse(request, b);
      if (h === null) continue;
      heads++;
      // Every kind bit, OTHER's (bit 0) included: OTHER fields are kept whatever the mask says.
      const drop: Drop = r() < 0.15 ? null : Math.floor(r() * 2048);
      if (typeof drop === 'number' && (drop & 0x7fe) !== 0) merged++;
      const extra = r() < 0.3 ? '' : `x-forwarded-for: 10.0.0.${i % 256}\r\nx-\xe9: \xff\r\n`;
      const first = request ? `${h.method} /p${i} HTTP/1.1` : `HTTP/1.1 ${h.status} OK`;
      let got: Buffer;
      let want: Buffer;
      if (request) {
        expect(fieldsInTables(h)).toBe(true);
        got = kept(first, h, drop, extra);
        want = encodeHeadJs(first, h, drop, extra);
      } else {
        const withTail = r() < 0.5;
        const ts = h.headBytes;
        const te = withTail ? Math.min(b.length, ts + Math.floor(r() * 6)) : 0;
        got = staged(first, h, drop, extra, withTail ? b : null, withTail ? ts : 0, te);
        want = encodeHeadJs(first, h, drop, extra, withTail ? b : null, withTail ? ts : 0, te);
        if (stagedBuffer().length - stagedLength() < 2048) resetStage();
      }
      expect(lastRunsFromHead).toBe(true);
      if (!got.equals(want) && diffs.length < 3) diffs.push(`${JSON.stringify(b.toString('latin1'))} mask ${drop} → addon ${JSON.stringify(got.toString('latin1'))} js ${JSON.stringify(want.toString('latin1'))}`);
    }
    expect(diffs).toEqual([]);
    expect(heads).toBeGreaterThan(1500);
    expect(merged).toBeGreaterThan(1000);
    resetStage();
  });

  it('write encodeHeadJs\'s bytes for repeated heads (parsed from the kept head), masks changing, other heads between', () => {
    // The parser answers a repeat from its kept head (HeadMemo) and stamps it with the kept head's
    // number; the writers reuse the kept lines they worked out for that number and mask.
    const r = rng(0x5eed);
    const resp = [RESPONSE, RESPONSE.replace('Server: nginx', 'Server: nginX'), RESPONSE.replace('X-A:', 'X-AB: 1')];
    const reqs = [REQUEST, REQUEST.replace('User-Agent: wrk', 'User-Agent: wrk2')];
    const masks: Drop[] = [0, 1 << 5, (1 << 5) | (1 << 7), 0x7fe, null];
    const diffs: string[] = [];
    let n = 0;
    resetStage();
    for (let i = 0; i < 3000; i++) {
      const request = r() < 0.5;
      // Mostly the same head as before, at another place of another buffer.
      const text = request ? reqs[r() < 0.8 ? 0 : 1]! : resp[r() < 0.7 ? 0 : r() < 0.5 ? 1 : 2]!;
      const lead = Math.floor(r() * 16);
      const b = Buffer.from('~'.repeat(lead) + text, 'latin1');
      const h = request ? parseRequestHeadOwned(b, lead, b.length) : parseResponseHead(b, lead, b.length);
      if (typeof h === 'number') throw new Error(`parse: ${h}`);
      const drop = masks[r() < 0.7 ? 1 : Math.floor(r() * masks.length)]!;
      const extra = r() < 0.5 ? '' : 'x-forwarded-proto: http\r\n';
      const first = request ? 'GET /p HTTP/1.1' : 'HTTP/1.1 200 OK';
      const got = request ? kept(first, h, drop, extra) : staged(first, h, drop, extra);
      const want = encodeHeadJs(first, h, drop, extra);
      if (stagedBuffer().length - stagedLength() < 2048) resetStage();
      if (typeof drop === 'number') {
        expect(lastRunsFromHead).toBe(true);
        n++;
      }
      if (!got.equals(want) && diffs.length < 3) diffs.push(`${i}: ${JSON.stringify(text.slice(0, 40))} mask ${drop} → ${JSON.stringify(got.toString('latin1'))}`);
      // Now and then a head the table does not keep: another parser's, or a plain parse into it.
      if (r() < 0.05) parseResponseHeadOwned(Buffer.from(resp[2]!, 'latin1'), 0, resp[2]!.length);
    }
    expect(diffs).toEqual([]);
    expect(n).toBeGreaterThan(2000);
    resetStage();
  });

  it('hand out only the bytes written: the next head follows right after, and the request id lands at its distance from the end', () => {
    resetStage();
    const b = Buffer.from(RESPONSE, 'latin1');
    const h = parse(false, b)!;
    const mask = (1 << 5) | (1 << 7); // keep-alive and upgrade
    const a = encodeHeadStagedAt('HTTP/1.1 200 OK', h, mask, 'server: strait\r\n', null, 0, 0);
    const aLen = stagedLength();
    expect(lastRunsFromHead).toBe(true);
    // Smaller than the bound reserved (the head's own bytes and the additions): the rest is handed out again.
    expect(aLen).toBeLessThan('HTTP/1.1 200 OK'.length + 2 + h.headBytes + 'server: strait\r\n'.length + 2);
    const next = encodeHeadStagedAt('HTTP/1.1 204 No Content', h, null, '', null, 0, 0);
    expect(next).toBe(a + aLen);
    expect(stagedBuffer().subarray(a, a + aLen).toString('latin1')).toBe(
      'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\nServer: nginx\r\nX-A:\r\nserver: strait\r\n\r\n',
    );
    resetStage();

    const q = Buffer.from('GET /p HTTP/1.1\r\nHost: h\r\nConnection: x-hop\r\nX-Keep: 2\r\n\r\n', 'latin1');
    const hq = parse(true, q)!;
    const extra = 'x-forwarded-proto: http\r\nx-request-id: 00000000-0000-4000-8000-000000000000\r\n';
    const fromEnd = 2 + 36 + 2;
    const want = encodeHeadJs('GET /q HTTP/1.1', hq, 1 << 4, extra);
    const ids = new Set<string>();
    let prevEnd = -1;
    for (let i = 0; i < 50; i++) {
      const at = encodeHeadSendAt(-1, 'GET /q HTTP/1.1', hq, 1 << 4, extra, fromEnd);
      expect(lastRunsFromHead).toBe(true);
      const got = Buffer.from(keptBuffer().subarray(at, at + keptLength()));
      expect(got.length).toBe(want.length);
      const id = got.toString('latin1', got.length - fromEnd, got.length - fromEnd + 36);
      expect(id).toMatch(UUID_V4);
      const e = Buffer.from(want);
      e.write(id, e.length - fromEnd, 'latin1');
      expect(got.equals(e)).toBe(true);
      ids.add(id);
      // Kept heads are 8-byte aligned, one after another in the slab.
      if (prevEnd >= 0 && at > prevEnd) expect(at).toBe((prevEnd + 7) & ~7);
      prevEnd = at + keptLength();
    }
    expect(ids.size).toBe(50);
  });

  it('read an owned head from the registered head slab and a tail from the registered arena, not from their arguments', () => {
    const KNOW_SRC_SLAB = 128;
    const KNOW_TAIL_ARENA = 256;
    resetStage();
    const arenaBefore = registeredTable(TableSlot.ARENA);
    // A read as the batch reader's arena holds it: the head is copied into the slab, the body stays.
    const arena = Buffer.alloc(1024, 0x2e);
    arena.write(RESPONSE, 100, 'latin1');
    setTable(TableSlot.ARENA, arena);
    try {
      const r = parseResponseHeadOwned(arena, 100, 100 + RESPONSE.length);
      expect(typeof r).not.toBe('number');
      const h = r as MessageHead;
      expect(h.buf).not.toBe(arena);
      expect(tableArg(TableSlot.HEAD_SLAB, h.buf)).toBeNull();
      const ts = 100 + h.headBytes;
      const want = encodeHeadJs('HTTP/1.1 200 OK', h, 1 << 5, 'server: strait\r\n', arena, ts, ts + 5);
      // Through the addon's runs and through JavaScript's (a drop function): both read the tables.
      for (const drop of [1 << 5, (_h: MessageHead, i: number) => i === 3] as Drop[]) {
        expect(staged('HTTP/1.1 200 OK', h, drop, 'server: strait\r\n', arena, ts, ts + 5).equals(want)).toBe(true);
        expect(lastKnownBits() & (KNOW_SRC_SLAB | KNOW_TAIL_ARENA)).toBe(KNOW_SRC_SLAB | KNOW_TAIL_ARENA);
      }
      expect(want.toString('latin1').endsWith('\r\n\r\nhello')).toBe(true);
      // A tail elsewhere is read from its argument.
      const tail = Buffer.from('hello', 'latin1');
      expect(staged('HTTP/1.1 200 OK', h, 1 << 5, '', tail, 0, 5).equals(encodeHeadJs('HTTP/1.1 200 OK', h, 1 << 5, '', tail, 0, 5))).toBe(true);
      expect(lastKnownBits() & KNOW_TAIL_ARENA).toBe(0);
      // A forwarded request head, copied into the slab as well.
      const q = parse(true, Buffer.from('GET /p HTTP/1.1\r\nHost: h\r\nX-Keep: 2\r\n\r\n', 'latin1'))!;
      expect(kept('GET /q HTTP/1.1', q, 0, 'a: 1\r\n').toString('latin1')).toBe('GET /q HTTP/1.1\r\nHost: h\r\nX-Keep: 2\r\na: 1\r\n\r\n');
      expect(lastKnownBits() & KNOW_SRC_SLAB).toBe(KNOW_SRC_SLAB);
    } finally {
      if (arenaBefore !== null) setTable(TableSlot.ARENA, arenaBefore as Uint8Array);
      resetStage();
    }
  });

  it('flag the request fields the upstream head replaces or appends to, for the parser\'s last head only', () => {
    const ALL = RequestHas.REQUEST_ID | RequestHas.FORWARDED_PROTO | RequestHas.FORWARDED_FOR | RequestHas.CLIENT_CERT;
    const names: Array<[string, number]> = [
      ['X-Request-Id', RequestHas.REQUEST_ID],
      ['x-forwarded-proto', RequestHas.FORWARDED_PROTO],
      ['X-FORWARDED-FOR', RequestHas.FORWARDED_FOR],
      ['x-Forwarded-Client-Cert', RequestHas.CLIENT_CERT],
    ];
    for (let mask = 0; mask < 16; mask++) {
      let text = 'GET / HTTP/1.1\r\nHost: a\r\n';
      let want = 0;
      names.forEach(([n, bit], i) => {
        if ((mask >> i) & 1) {
          text += `${n}: v\r\n`;
          want |= bit;
        }
      });
      // Names one letter off, or of the same length, flag nothing.
      text += 'x-request-ie: 1\r\nx-forwarded-prot: 1\r\nx-forwarded-fox: 1\r\n\r\n';
      const h = parse(true, Buffer.from(text, 'latin1'))!;
      expect(flagsInTables(h) & ALL).toBe(want);
    }
    // Not the parser's last head any more, or fields cut from it: unknown.
    const a = parse(true, Buffer.from('GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: 1\r\n\r\n', 'latin1'))!;
    parse(true, Buffer.from('GET / HTTP/1.1\r\nHost: b\r\n\r\n', 'latin1'));
    expect(flagsInTables(a)).toBe(-1);
    const u = parse(true, Buffer.from('GET / HTTP/1.1\r\nHost: a\r\nX_A: 1\r\nX-Request-Id: 1\r\n\r\n', 'latin1'))!;
    expect(flagsInTables(u) & ALL).toBe(RequestHas.REQUEST_ID);
    h1DropUnderscored(u);
    expect(flagsInTables(u)).toBe(-1);
    // A response's own flags: x-request-id, not the forwarding fields.
    const r = parse(false, Buffer.from('HTTP/1.1 200 OK\r\nX-Request-Id: 1\r\nX-Forwarded-Proto: h\r\nContent-Length: 0\r\n\r\n', 'latin1'))!;
    expect(flagsInTables(r) & (ALL | ResponseHas.DATE)).toBe(ResponseHas.REQUEST_ID);
  });

  it('go the JavaScript way, with the same bytes, when the fields are not the parser\'s last results', () => {
    resetStage();
    const b1 = Buffer.from(RESPONSE, 'latin1');
    const h1 = parse(false, b1)!;
    const mask = 1 << 5;
    const want1 = encodeHeadJs('HTTP/1.1 200 OK', h1, mask, '');
    // Another head parsed since: the table holds its fields.
    const h2 = parse(true, Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n\r\n', 'latin1'))!;
    expect(fieldsInTables(h1)).toBe(false);
    expect(staged('HTTP/1.1 200 OK', h1, mask, '').equals(want1)).toBe(true);
    expect(lastRunsFromHead).toBe(false);
    // A drop function: the addon takes masks only.
    expect(fieldsInTables(h2)).toBe(true);
    const dropFn = (_h: MessageHead, i: number) => i === 0;
    expect(kept('GET / HTTP/1.1', h2, dropFn, '').equals(encodeHeadJs('GET / HTTP/1.1', h2, dropFn, ''))).toBe(true);
    expect(lastRunsFromHead).toBe(false);
    // Fields cut out of the head after the parse (headers_with_underscores_action DROP_HEADER).
    const h3 = parse(true, Buffer.from('GET / HTTP/1.1\r\nHost: a\r\nX_Under: 1\r\nX-Ok: 2\r\n\r\n', 'latin1'))!;
    expect(h1DropUnderscored(h3)).toBe(1);
    expect(fieldsInTables(h3)).toBe(false);
    const got3 = kept('GET / HTTP/1.1', h3, null, '');
    expect(lastRunsFromHead).toBe(false);
    expect(got3.toString('latin1')).toBe('GET / HTTP/1.1\r\nHost: a\r\nX-Ok: 2\r\n\r\n');
    // A failed parse since leaves no head in the table.
    const h4 = parse(true, Buffer.from('GET / HTTP/1.1\r\nHost: b\r\n\r\n', 'latin1'))!;
    expect(parse(true, Buffer.from('GET / HTTP/1.1\r\nHost: b\r\n', 'latin1'))).toBe(null);
    expect(fieldsInTables(h4)).toBe(false);
    // Another parser registered its own results table.
    const h5 = parse(false, b1)!;
    expect(fieldsInTables(h5)).toBe(true);
    nativeHeadParser(loadNative());
    expect(fieldsInTables(h5)).toBe(false);
    expect(staged('HTTP/1.1 200 OK', h5, mask, '').equals(want1)).toBe(true);
    expect(lastRunsFromHead).toBe(false);
    resetStage();
  });
});

type WriteAt = (out: Buffer, firstLine: string, src: Buffer | null, extra: string, tail: Buffer | null) => number;
type WriteSendAt = (out: Buffer, firstLine: string, src: Buffer | null, extra: string) => number;
type BoundWrite = (to: Buffer, firstLine: string, src: Buffer | null, nRuns: number, extra: string, tail: Buffer | null, tailStart: number, tailEnd: number) => number;
const wa = loadNative() as unknown as { http1RunsFromHeadOut?: boolean; bindHttp1HeadWriter: (runs: Int32Array, args?: Int32Array) => [BoundWrite, unknown, unknown, WriteAt?, WriteSendAt?] };

describe('writeAt and writeSendAt with KNOW_RUNS_FROM_HEAD (the HEAD_OUT table read by the addon)', () => {
  // KNOWN 8, KNOW_SRC 1, KNOW_LENGTHS 4, KNOW_RUNS_FROM_HEAD 64; slots 10 (drop mask) and 11 (size, written back).
  const BITS = 8 | 1 | 4 | 64;
  const src = Buffer.from('xxHost: a\r\nX-One: 1\r\nX-Two: 2\r\nX-Far: 3\r\n', 'latin1');
  // kind, name start, name end, value start, value end; X-Far is not adjacent to X-Two in this table.
  const fields = [1, 2, 6, 8, 9, 0, 11, 16, 18, 19, 0, 21, 26, 28, 29, 9, 31, 36, 38, 39];
  const table = new Int32Array(16 + 5 * 8);
  table[11] = 4;
  table.set(fields, 16);
  const runs = new Int32Array(16);
  const args = new Int32Array(12);
  const [write, , , writeAt, writeSendAt] = wa.bindHttp1HeadWriter(runs, args);

  it('keeps the fields whose kind has no bit in the mask, adjacent ones as one run, and gives the size back', () => {
    expect(wa.http1RunsFromHeadOut).toBe(true);
    setTable(TableSlot.HEAD_OUT, table);
    const first = 'HTTP/1.1 200 OK';
    const out = Buffer.alloc(256, 0x2e);
    for (const [mask, keptRuns] of [
      [0, [2, 39]],
      [1 << 1, [11, 39]],
      [(1 << 1) | (1 << 9), [11, 29]],
      [1 << 9, [2, 29]],
      [0xffff, [11, 29]],
    ] as const) {
      runs.set(keptRuns);
      const want = Buffer.alloc(256);
      const size = write(want, first, src, 1, 'x-e: 1\r\n', null, 0, 0);
      args.fill(0);
      args.set([99, 0, 0, 4, 0, 0, 0, BITS, first.length, 'x-e: 1\r\n'.length, mask]);
      expect(writeAt!(out, first, src, 'x-e: 1\r\n', null)).toBe(size);
      expect(args[11]).toBe(size);
      expect(out.subarray(4, 4 + size).equals(want.subarray(0, size))).toBe(true);
    }
    // Not adjacent in the source: two runs, the same bytes as given as two.
    table.set([0, 21, 26, 28, 29, 0, 2, 6, 8, 9], 16);
    table[11] = 2;
    runs.set([21, 29, 2, 9]);
    const want = Buffer.alloc(256);
    const size = write(want, first, src, 2, '', null, 0, 0);
    args.set([0, 0, 0, 0, 0, 0, 0, BITS, first.length, 0, 0]);
    expect(writeAt!(out, first, src, '', null)).toBe(size);
    expect(out.subarray(0, size).equals(want.subarray(0, size))).toBe(true);
    table.set(fields, 16);
    table[11] = 4;
  });

  it('writeSendAt: the request id at its distance from the end', () => {
    setTable(TableSlot.HEAD_OUT, table);
    const extra = 'x-request-id: 00000000-0000-4000-8000-000000000000\r\n';
    const fromEnd = 2 + 36 + 2;
    runs.set([11, 29]);
    const want = Buffer.alloc(256);
    const size = write(want, 'GET / HTTP/1.1', src, 1, extra, null, 0, 0);
    const out = Buffer.alloc(300);
    args.set([0, 0, 0, 16, -1, fromEnd, -1, BITS, 'GET / HTTP/1.1'.length, extra.length, (1 << 1) | (1 << 9)]);
    expect(writeSendAt!(out, 'GET / HTTP/1.1', src, extra)).toBe(size);
    expect(args[11]).toBe(size);
    const id = out.toString('latin1', 16 + size - fromEnd, 16 + size - fromEnd + 36);
    expect(id).toMatch(UUID_V4);
    const e = Buffer.from(want.subarray(0, size));
    e.write(id, size - fromEnd, 'latin1');
    expect(out.subarray(16, 16 + size).equals(e)).toBe(true);
    // Farther from the end than the head is long (its size known only in the call).
    args.set([0, 0, 0, 0, -1, 4096, -1, BITS, 'GET / HTTP/1.1'.length, extra.length, 0]);
    expect(() => writeSendAt!(out, 'GET / HTTP/1.1', src, extra)).toThrow(/keepAt\/keepLen out of range/);
  });

  it('with KNOW_SRC_SLAB and KNOW_TAIL_ARENA, src is the registered head slab and the tail the registered arena', () => {
    const slabBefore = registeredTable(TableSlot.HEAD_SLAB);
    const arenaBefore = registeredTable(TableSlot.ARENA);
    try {
      const slab = Buffer.alloc(128, 0x7a);
      src.copy(slab);
      const arena = Buffer.alloc(64, 0x7a);
      arena.write('--body--', 10, 'latin1');
      setTable(TableSlot.HEAD_SLAB, slab);
      setTable(TableSlot.ARENA, arena);
      setTable(TableSlot.HEAD_OUT, table);
      const first = 'HTTP/1.1 200 OK';
      runs.set([2, 39]);
      const want = Buffer.alloc(256);
      const size = write(want, first, src, 1, '', Buffer.from('--body--', 'latin1'), 2, 6);
      const out = Buffer.alloc(256);
      // Decoys in place of both: what is read is the tables'.
      args.set([0, 2 + 10, 6 + 10, 0, 0, 0, 0, BITS | 2 | 128 | 256, first.length, 0, 0]);
      expect(writeAt!(out, first, Buffer.alloc(1), '', Buffer.alloc(1))).toBe(size);
      expect(out.subarray(0, size).equals(want.subarray(0, size))).toBe(true);
      args.set([0, 60, 70, 0, 0, 0, 0, BITS | 2 | 128 | 256, first.length, 0, 0]);
      expect(() => writeAt!(out, first, Buffer.alloc(1), '', Buffer.alloc(1))).toThrow(/tailStart\/tailEnd out of range/);
      setTable(TableSlot.HEAD_SLAB, new Int32Array(4));
      args.set([0, 0, 0, 0, 0, 0, 0, BITS | 128, first.length, 0, 0]);
      expect(() => writeAt!(out, first, Buffer.alloc(1), '', null)).toThrow(/no Uint8Array is registered as the head slab/);
    } finally {
      if (slabBefore !== null) setTable(TableSlot.HEAD_SLAB, slabBefore as Uint8Array);
      if (arenaBefore !== null) setTable(TableSlot.ARENA, arenaBefore as Uint8Array);
      args.fill(0);
    }
  });

  it('refuses what it cannot read safely: a short args array, no results table, a field outside src, a count past the table, no src', () => {
    const first = 'HTTP/1.1 200 OK';
    const out = Buffer.alloc(256);
    const [, , , writeAt10] = wa.bindHttp1HeadWriter(runs, new Int32Array(10).fill(0).map((_, i) => (i === 7 ? BITS : i === 8 ? first.length : 0)));
    setTable(TableSlot.HEAD_OUT, table);
    expect(() => writeAt10!(out, first, src, '', null)).toThrow(/args array of 12 slots/);
    args.set([0, 0, 0, 0, 0, 0, 0, BITS, first.length, 0, 0]);
    setTable(TableSlot.HEAD_OUT, new Uint8Array(64));
    expect(() => writeAt!(out, first, src, '', null)).toThrow(/no Int32Array is registered as the head parser's results/);
    const bad = new Int32Array(table);
    bad[16 + 4] = src.length + 1;
    setTable(TableSlot.HEAD_OUT, bad);
    expect(() => writeAt!(out, first, src, '', null)).toThrow(/a field is outside src/);
    const many = new Int32Array(table);
    many[11] = 9;
    setTable(TableSlot.HEAD_OUT, many);
    expect(() => writeAt!(out, first, src, '', null)).toThrow(/field count is past the results table/);
    setTable(TableSlot.HEAD_OUT, table);
    args.set([0, 0, 0, 0, 0, 0, 0, 8 | 4 | 64, first.length, 0, 0]);
    expect(() => writeAt!(out, first, null, '', null)).toThrow(/runs from the head need its src/);
    args.fill(0);
  });
});
