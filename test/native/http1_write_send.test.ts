// The head writer's third bound function (native/http1/http1_js.cc, writeSend) and the encoder
// built on it (encodeHeadSend in src/protocols/http1/encoder.ts): a forwarded request head is
// written into a Buffer the caller keeps and sent in the same call. The bytes must be write()'s,
// except a reserved range the caller filled first, which must survive, or where the addon writes
// a fresh request id; the peer must receive exactly the Buffer; bad arguments throw, naming them.
import { describe, expect, it } from 'vitest';
import { encodeHeadJs, encodeHeadSend, encodeHeadSendAt, HEAD_NOT_SENT, keptBuffer, keptLength, lastHeadSent } from '../../src/protocols/http1/encoder.js';
import { writeUuidV4 } from '../../src/protocols/http1/request_id.js';
import { directFd } from '../../src/protocols/http1/send.js';
import { loadNative, setTable, TableSlot } from '../../src/native.js';
import { parseRequestHead } from '../../src/protocols/http1/decoder.js';
import type { MessageHead } from '../../src/protocols/http1/types.js';
import { tcpPair } from '../helpers/net.js';

type BoundHead<T> = (to: T, firstLine: string, src: Buffer | null, nRuns: number, extra: string, tail: Buffer | null, tailStart: number, tailEnd: number) => number;
type WriteSend = (out: Buffer, firstLine: string, src: Buffer | null, nRuns: number, extra: string, tail: Buffer | null, tailStart: number, tailEnd: number, fd: number, keepAt: number, keepLen: number) => number;
const w = loadNative() as unknown as { bindHttp1HeadWriter: (runs: Int32Array) => [BoundHead<Buffer>, BoundHead<number>, WriteSend?] };

describe('bindHttp1HeadWriter writeSend', () => {
  const src = Buffer.from('xxHost: a\r\nX-One: 1\r\nX-Two: 2\r\n', 'latin1');
  const runs = new Int32Array(8);
  runs.set([2, 9, 11, 19, 21, 29]);
  const [write, , writeSend] = w.bindHttp1HeadWriter(runs);

  it('is bound with the other two', () => {
    expect(typeof writeSend).toBe('function');
  });

  it("writes write()'s bytes but the kept range, and with fd -1 sends nothing and returns the size", () => {
    const extra = 'x-request-id: 00000000-0000-4000-8000-000000000000\r\n';
    const want = Buffer.alloc(256);
    const size = write(want, 'GET / HTTP/1.1', src, 3, extra, null, 0, 0);
    const out = Buffer.alloc(256, 0x41);
    const keepAt = size - 2 - extra.length + 'x-request-id: '.length;
    out.write('0123456789abcdef0123456789abcdef-id', keepAt, 'latin1');
    expect(writeSend!(out, 'GET / HTTP/1.1', src, 3, extra, null, 0, 0, -1, keepAt, 35)).toBe(size);
    const expected = Buffer.from(want.subarray(0, size));
    expected.write('0123456789abcdef0123456789abcdef-id', keepAt, 'latin1');
    expect(out.subarray(0, size).equals(expected)).toBe(true);
    // keepLen -1: a fresh UUID v4 at keepAt, each call its own, the rest write()'s bytes.
    const idAt = size - 2 - 38;
    const ids = [0, 1].map(() => {
      const o = Buffer.alloc(256);
      expect(writeSend!(o, 'GET / HTTP/1.1', src, 3, extra, null, 0, 0, -1, idAt, -1)).toBe(size);
      const id = o.toString('latin1', idAt, idAt + 36);
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      const e = Buffer.from(want.subarray(0, size));
      e.write(id, idAt, 'latin1');
      expect(o.subarray(0, size).equals(e)).toBe(true);
      return id;
    });
    expect(ids[0]).not.toBe(ids[1]);
    expect(() => writeSend!(Buffer.alloc(256), 'GET / HTTP/1.1', src, 3, extra, null, 0, 0, -1, size - 30, -1)).toThrow(/keepAt\/keepLen out of range/);
    // keepAt -1: exactly write()'s bytes.
    const plain = Buffer.alloc(256);
    expect(writeSend!(plain, 'GET / HTTP/1.1', src, 3, extra, null, 0, 0, -1, -1, 0)).toBe(size);
    expect(plain.subarray(0, size).equals(want.subarray(0, size))).toBe(true);
  });

  it('sends the Buffer it wrote on a socket, kept range included', async () => {
    const p = await tcpPair();
    try {
      const want = Buffer.alloc(256);
      const size = write(want, 'GET /x HTTP/1.1', src, 2, 'x-e: 1\r\n', null, 0, 0);
      const out = Buffer.alloc(size);
      out.write('KEPT', 3, 'latin1');
      const fd = directFd(p.client);
      expect(fd).toBeGreaterThanOrEqual(0);
      expect(writeSend!(out, 'GET /x HTTP/1.1', src, 2, 'x-e: 1\r\n', null, 0, 0, fd, 3, 4)).toBe(size);
      const got = await p.waitFor(size);
      expect(got.equals(out)).toBe(true);
      expect(got.toString('latin1', 0, 7)).toBe('GETKEPT');
      expect(got.subarray(7).equals(want.subarray(7, size))).toBe(true);
    } finally {
      p.close();
    }
  });

  it('throws for bad arguments, naming them', () => {
    const ws = writeSend as unknown as (...a: unknown[]) => number;
    expect(() => ws(Buffer.alloc(64), 'X', src, 0, '', null, 0, 0)).toThrow(/arguments must be/);
    expect(() => ws(Buffer.alloc(4), 'GET / HTTP/1.1', src, 3, '', null, 0, 0, -1, -1, 0)).toThrow(/out is too small/);
    expect(() => ws(Buffer.alloc(64), 'GET / HTTP/1.1', null, 0, '', null, 0, 0, -1, 10, 100)).toThrow(/keepAt\/keepLen out of range/);
    expect(() => ws(Buffer.alloc(64), 'GET / HTTP/1.1', null, 0, '', null, 0, 0, -1, 15, 4)).toThrow(/keepAt\/keepLen out of range/);
    expect(() => ws(Buffer.alloc(64), 'GET / HTTP/1.1', null, 0, '', null, 0, 0, 'fd', -1, 0)).toThrow(/fd, keepAt and keepLen must be numbers/);
  });
});

type WriteAt = (out: Buffer, firstLine: string, src: Buffer | null, extra: string, tail: Buffer | null) => number;
type WriteSendAt = (out: Buffer, firstLine: string, src: Buffer | null, extra: string) => number;
const wa = loadNative() as unknown as {
  bindHttp1HeadWriter: (runs: Int32Array, args?: Int32Array) => [BoundHead<Buffer>, BoundHead<number>, WriteSend, WriteAt?, WriteSendAt?];
};

describe('bindHttp1HeadWriter with an args array: writeAt and writeSendAt read their numbers there', () => {
  const src = Buffer.from('xxHost: a\r\nX-One: 1\r\nX-Two: 2\r\n', 'latin1');
  const runs = new Int32Array(8);
  runs.set([2, 9, 11, 19, 21, 29]);
  // nRuns, tailStart, tailEnd, at, fd, keepAt, keepLen, known bits, firstLine's and extra's lengths
  const args = new Int32Array(10);
  const [write, , writeSend, writeAt, writeSendAt] = wa.bindHttp1HeadWriter(runs, args);
  const tail = Buffer.from('--body--', 'latin1');

  it('are bound only with an args array, which must have its ten slots', () => {
    expect(typeof writeAt).toBe('function');
    expect(typeof writeSendAt).toBe('function');
    expect(wa.bindHttp1HeadWriter(runs).length).toBe(3);
    expect(() => wa.bindHttp1HeadWriter(runs, new Int32Array(9))).toThrow(/args must be an Int32Array of 10 slots or more/);
    expect(() => wa.bindHttp1HeadWriter(runs, new Uint8Array(8) as unknown as Int32Array)).toThrow(/args must be an Int32Array/);
  });

  it("writeAt: write()'s bytes at `at`, nRuns and the tail's range from the array", () => {
    const want = Buffer.alloc(256);
    const size = write(want, 'HTTP/1.1 200 OK', src, 2, 'x-e: 1\r\n', tail, 2, 6);
    const out = Buffer.alloc(256, 0x2e);
    args.set([2, 2, 6, 10]);
    expect(writeAt!(out, 'HTTP/1.1 200 OK', src, 'x-e: 1\r\n', tail)).toBe(size);
    expect(out.subarray(10, 10 + size).equals(want.subarray(0, size))).toBe(true);
    expect(out.toString('latin1', 0, 10)).toBe('.'.repeat(10));
    expect(out[10 + size]).toBe(0x2e);
    // Other numbers, other bytes: nothing is remembered from the call before.
    args.set([3, 0, 0, 0]);
    const size3 = write(want, 'HTTP/1.1 200 OK', src, 3, '', null, 0, 0);
    expect(writeAt!(out, 'HTTP/1.1 200 OK', src, '', null)).toBe(size3);
    expect(out.subarray(0, size3).equals(want.subarray(0, size3))).toBe(true);
    args.set([2, 0, 0, -1]);
    expect(() => writeAt!(out, 'X', src, '', null)).toThrow(/at must be a non-negative number/);
    args.set([2, 0, 0, 250]);
    expect(() => writeAt!(out, 'HTTP/1.1 200 OK', src, '', null)).toThrow(/out is too small/);
    args.set([5, 0, 0, 0]);
    expect(() => writeAt!(out, 'X', src, '', null)).toThrow(/nRuns out of range/);
    args.set([0, 2, 60, 0]);
    expect(() => writeAt!(out, 'X', null, '', tail)).toThrow(/tailStart\/tailEnd out of range/);
  });

  it('with the known bits (src and tail given or null, the strings\' lengths) the same bytes, no N-API call to learn them; wrong ones throw', () => {
    // KNOWN 8, KNOW_SRC 1, KNOW_TAIL 2, KNOW_LENGTHS 4
    const first = 'HTTP/1.1 200 OK';
    const extra = 'x-e: 1\r\n';
    const want = Buffer.alloc(256);
    const size = write(want, first, src, 2, extra, tail, 2, 6);
    const out = Buffer.alloc(256);
    args.set([2, 2, 6, 0, 0, 0, 0, 8 | 1 | 2 | 4, first.length, extra.length]);
    expect(writeAt!(out, first, src, extra, tail)).toBe(size);
    expect(out.subarray(0, size).equals(want.subarray(0, size))).toBe(true);
    // No src and no tail, known as such.
    const size0 = write(want, first, null, 0, extra, null, 0, 0);
    args.set([0, 0, 0, 0, 0, 0, 0, 8 | 4, first.length, extra.length]);
    expect(writeAt!(out, first, null, extra, null)).toBe(size0);
    expect(out.subarray(0, size0).equals(want.subarray(0, size0))).toBe(true);
    // A length that is not the string's, or no string where one is said to be: nothing is sent as if written.
    args.set([0, 0, 0, 0, 0, 0, 0, 8 | 4, first.length + 3, extra.length]);
    expect(() => writeAt!(out, first, null, extra, null)).toThrow(/firstLine and extra must be strings of their given lengths/);
    args.set([0, 0, 0, 0, 0, 0, 0, 8 | 4, 3, 0]);
    expect(() => writeAt!(out, 42 as unknown as string, null, '', null)).toThrow(/firstLine and extra must be strings of their given lengths/);
    args.set([0, 0, 0, 0, 0, 0, 0, 8 | 4, -1, 0]);
    expect(() => writeAt!(out, first, null, '', null)).toThrow(/string lengths out of range/);
    // src said to be given but null: refused, not read.
    args.set([2, 0, 0, 0, 0, 0, 0, 8 | 1, 0, 0]);
    expect(() => writeAt!(out, first, null, extra, null)).toThrow(/src must be a Buffer/);
    // src said to be null though given: its runs have nothing to point into.
    args.set([2, 0, 0, 0, 0, 0, 0, 8, 0, 0]);
    expect(() => writeAt!(out, first, src, extra, null)).toThrow(/nRuns out of range/);
    // writeSendAt never reads a tail, whatever the bits say.
    const sizeS = write(want, 'GET / HTTP/1.1', src, 3, '', null, 0, 0);
    args.set([3, 5, 9, 0, -1, -1, 0, 8 | 1 | 2 | 4, 'GET / HTTP/1.1'.length, 0]);
    expect(writeSendAt!(out, 'GET / HTTP/1.1', src, '')).toBe(sizeS);
    expect(out.subarray(0, sizeS).equals(want.subarray(0, sizeS))).toBe(true);
    args.fill(0);
  });

  it('with the table bits, out is the registered stage or kept slab and src the registered arena', () => {
    // KNOWN 8, KNOW_SRC 1, KNOW_LENGTHS 4, KNOW_OUT_TABLE 16, KNOW_SRC_ARENA 32. The encoder's
    // own slabs are no longer the registered ones afterwards: it then passes them as arguments.
    try {
      const stage = Buffer.alloc(512, 0x2e);
      const kept = Buffer.alloc(512, 0x2e);
      const arena = Buffer.alloc(256, 0x7a);
      src.copy(arena, 100);
      setTable(TableSlot.STAGE, stage);
      setTable(TableSlot.KEPT, kept);
      setTable(TableSlot.ARENA, arena);
      const first = 'HTTP/1.1 200 OK';
      const want = Buffer.alloc(256);
      const size = write(want, first, src, 2, '', null, 0, 0);
      // Runs into the arena: src's runs shifted by 100.
      runs.set([102, 109, 111, 119]);
      const decoy = Buffer.alloc(512);
      args.set([2, 0, 0, 40, 0, 0, 0, 8 | 4 | 1 | 16 | 32, first.length, 0]);
      expect(writeAt!(decoy, first, Buffer.alloc(1), '', null)).toBe(size);
      expect(stage.subarray(40, 40 + size).equals(want.subarray(0, size))).toBe(true);
      expect(decoy.equals(Buffer.alloc(512))).toBe(true);
      args.set([2, 0, 0, 8, -1, -1, 0, 8 | 4 | 1 | 16 | 32, first.length, 0]);
      expect(writeSendAt!(decoy, first, Buffer.alloc(1), '')).toBe(size);
      expect(kept.subarray(8, 8 + size).equals(want.subarray(0, size))).toBe(true);
      expect(decoy.equals(Buffer.alloc(512))).toBe(true);
      // Without the bits, the arguments are what is read and written.
      runs.set([2, 9, 11, 19]);
      args.set([2, 0, 0, 0, 0, 0, 0, 8 | 4 | 1, first.length, 0]);
      expect(writeAt!(decoy, first, src, '', null)).toBe(size);
      expect(decoy.subarray(0, size).equals(want.subarray(0, size))).toBe(true);
      // A table bit with nothing of bytes registered there throws.
      setTable(TableSlot.STAGE, new Int32Array(4));
      args.set([0, 0, 0, 0, 0, 0, 0, 8 | 4 | 16, first.length, 0]);
      expect(() => writeAt!(decoy, first, null, '', null)).toThrow(/no Uint8Array is registered as the stage/);
      // A stage too small for the head at `at` throws rather than write past it.
      setTable(TableSlot.STAGE, Buffer.alloc(16));
      expect(() => writeAt!(decoy, first, null, '', null)).toThrow(/out is too small/);
    } finally {
      runs.set([2, 9, 11, 19, 21, 29]);
      args.fill(0);
    }
  });

  it("writeSendAt: writeSend()'s bytes at `at`, the request id filled, sent on the fd from the array", async () => {
    const extra = 'x-request-id: 00000000-0000-4000-8000-000000000000\r\n';
    const want = Buffer.alloc(256);
    const size = write(want, 'GET / HTTP/1.1', src, 3, extra, null, 0, 0);
    const idAt = size - 2 - 38;
    const out = Buffer.alloc(300);
    args.set([3, 0, 0, 20, -1, idAt, -1]);
    expect(writeSendAt!(out, 'GET / HTTP/1.1', src, extra)).toBe(size);
    const id = out.toString('latin1', 20 + idAt, 20 + idAt + 36);
    expect(id).toMatch(UUID_V4);
    const e = Buffer.from(want.subarray(0, size));
    e.write(id, idAt, 'latin1');
    expect(out.subarray(20, 20 + size).equals(e)).toBe(true);
    // The same through writeSend, with the numbers as arguments: the same bytes but the id.
    const out2 = Buffer.alloc(300);
    expect(writeSend(out2, 'GET / HTTP/1.1', src, 3, extra, null, 0, 0, -1, -1, 0)).toBe(size);
    expect(out2.subarray(0, size).equals(want.subarray(0, size))).toBe(true);
    const p = await tcpPair();
    try {
      args.set([2, 0, 0, 0, directFd(p.client), -1, 0]);
      const n = writeSendAt!(out, 'GET /x HTTP/1.1', src, '');
      const sent = Buffer.from(out.subarray(0, n));
      expect((await p.waitFor(n)).equals(sent)).toBe(true);
      expect(sent.toString('latin1')).toBe('GET /x HTTP/1.1\r\nHost: a\r\nX-One: 1\r\n\r\n');
    } finally {
      p.close();
    }
    args.set([0, 0, 0, 0, -1, 10, 100]);
    expect(() => writeSendAt!(Buffer.alloc(64), 'GET / HTTP/1.1', null, '')).toThrow(/keepAt\/keepLen out of range/);
  });
});

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('encodeHeadSend', () => {
  const text = 'GET /p HTTP/1.1\r\nHost: h\r\nConnection: x-hop\r\nX-Hop: 1\r\nX-Keep: 2\r\n\r\n';
  const h = parseRequestHead(Buffer.from(text, 'latin1'), 0, text.length) as MessageHead;
  const drop = (_h: MessageHead, i: number) => i === 1 || i === 2;
  const extra = 'x-forwarded-proto: http\r\nx-request-id: 00000000-0000-4000-8000-000000000000\r\n';
  const fromEnd = 2 + 36 + 2; // the id's value, then its CRLF and the blank line's
  const want = encodeHeadJs('GET /q HTTP/1.1', h, drop, extra);
  /** `b` is `want` with a fresh UUID v4 over the placeholder; the id. */
  const idOf = (b: Buffer): string => {
    const at = b.length - fromEnd;
    const id = b.toString('latin1', at, at + 36);
    expect(id).toMatch(UUID_V4);
    const expected = Buffer.from(want);
    expected.write(id, at, 'latin1');
    expect(b.equals(expected)).toBe(true);
    return id;
  };

  it('without an fd: the head with a fresh id over the placeholder, nothing sent; no id asked, none written', () => {
    const ids = new Set<string>();
    for (let i = 0; i < 2100; i++) {
      const b = encodeHeadSend(-1, 'GET /q HTTP/1.1', h, drop, extra, fromEnd, writeUuidV4);
      expect(lastHeadSent()).toBe(HEAD_NOT_SENT);
      if (i < 3 || i > 2090) ids.add(idOf(b));
      else ids.add(b.toString('latin1', b.length - fromEnd, b.length - fromEnd + 36));
    }
    // Past two refills of the addon's 1024-id pool, every id still new.
    expect(ids.size).toBe(2100);
    expect(encodeHeadSend(-1, 'GET /q HTTP/1.1', h, drop, extra, 0, writeUuidV4).equals(want)).toBe(true);
  });

  it('packs kept heads into shared slabs, each keeping its own bytes; a big head gets a Buffer of its own', () => {
    // ~150-byte heads: Node's 8 KiB pool would take 5 ArrayBuffers for 240 of them (one more
    // young ArrayBuffer for each scavenge to sweep every ~50 requests).
    const heads: Buffer[] = [];
    for (let i = 0; i < 240; i++) heads.push(encodeHeadSend(-1, `GET /q${i % 10} HTTP/1.1`, h, drop, extra, 0, writeUuidV4));
    const buffers = new Set(heads.map((b) => b.buffer));
    expect(buffers.size).toBeLessThanOrEqual(2);
    heads.forEach((b, i) => expect(b.equals(encodeHeadJs(`GET /q${i % 10} HTTP/1.1`, h, drop, extra))).toBe(true));
    for (let i = 1; i < heads.length; i++) {
      const a = heads[i - 1]!;
      const b = heads[i]!;
      if (a.buffer === b.buffer) expect(b.byteOffset).toBeGreaterThanOrEqual(a.byteOffset + a.length);
    }
    const big = 'x-big: ' + 'v'.repeat(8000) + '\r\n';
    const b = encodeHeadSend(-1, 'GET /big HTTP/1.1', h, drop, big, 0, writeUuidV4);
    expect(b.equals(encodeHeadJs('GET /big HTTP/1.1', h, drop, big))).toBe(true);
    expect(buffers.has(b.buffer)).toBe(false);
  });

  it('encodeHeadSendAt: the same bytes at an offset of the kept slab, each head left as written, ids fresh', () => {
    const got: Array<{ buf: Buffer; at: number; len: number }> = [];
    for (let i = 0; i < 300; i++) {
      const at = encodeHeadSendAt(-1, 'GET /q HTTP/1.1', h, drop, extra, fromEnd);
      expect(at).toBeGreaterThanOrEqual(0);
      expect(lastHeadSent()).toBe(HEAD_NOT_SENT);
      got.push({ buf: keptBuffer(), at, len: keptLength() });
    }
    // Checked after all were written: a later head must not overwrite an earlier one.
    const ids = new Set<string>();
    for (const g of got) ids.add(idOf(Buffer.from(g.buf.subarray(g.at, g.at + g.len))));
    expect(ids.size).toBe(300);
    // No id asked: the placeholder stays.
    const at = encodeHeadSendAt(-1, 'GET /q HTTP/1.1', h, drop, extra, 0);
    expect(keptBuffer().subarray(at, at + keptLength()).equals(want)).toBe(true);
  });

  it('encodeHeadSendAt with an fd: the range sent whole in the call', async () => {
    const p = await tcpPair();
    try {
      const at = encodeHeadSendAt(directFd(p.client), 'GET /q HTTP/1.1', h, drop, extra, fromEnd);
      const b = Buffer.from(keptBuffer().subarray(at, at + keptLength()));
      idOf(b);
      expect(lastHeadSent()).toBe(b.length);
      expect((await p.waitFor(b.length)).equals(b)).toBe(true);
    } finally {
      p.close();
    }
  });

  it('with an fd: the same Buffer, sent whole in the call', async () => {
    const p = await tcpPair();
    try {
      const b = encodeHeadSend(directFd(p.client), 'GET /q HTTP/1.1', h, drop, extra, fromEnd, writeUuidV4);
      idOf(b);
      expect(lastHeadSent()).toBe(b.length);
      expect((await p.waitFor(b.length)).equals(b)).toBe(true);
    } finally {
      p.close();
    }
  });
});
