// The head writer's third bound function (native/http1/http1_js.cc, writeSend) and the encoder
// built on it (encodeHeadSend in src/protocols/http1/encoder.ts): a forwarded request head is
// written into a Buffer the caller keeps and sent in the same call. The bytes must be write()'s,
// except a reserved range the caller filled first (the request id over its placeholder), which
// must survive; the peer must receive exactly the Buffer; bad arguments throw, naming them.
import { describe, expect, it } from 'vitest';
import { encodeHeadJs, encodeHeadSend, HEAD_NOT_SENT, lastHeadSent } from '../../src/protocols/http1/encoder.js';
import { directFd } from '../../src/protocols/http1/send.js';
import { loadNative } from '../../src/native.js';
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

describe('encodeHeadSend', () => {
  const text = 'GET /p HTTP/1.1\r\nHost: h\r\nConnection: x-hop\r\nX-Hop: 1\r\nX-Keep: 2\r\n\r\n';
  const h = parseRequestHead(Buffer.from(text, 'latin1'), 0, text.length) as MessageHead;
  const drop = (_h: MessageHead, i: number) => i === 1 || i === 2;
  const extra = 'x-forwarded-proto: http\r\nx-request-id: 00000000-0000-4000-8000-000000000000\r\n';
  const fromEnd = 2 + 36 + 2; // the id's value, then its CRLF and the blank line's
  const fill = (out: Buffer, at: number) => void out.write('11111111-2222-4333-8444-555555555555', at, 'latin1');
  const want = encodeHeadJs('GET /q HTTP/1.1', h, drop, extra);
  want.write('11111111-2222-4333-8444-555555555555', want.length - fromEnd, 'latin1');

  it('without an fd: the filled head, nothing sent', () => {
    const b = encodeHeadSend(-1, 'GET /q HTTP/1.1', h, drop, extra, fill, fromEnd, 36);
    expect(lastHeadSent()).toBe(HEAD_NOT_SENT);
    expect(b.equals(want)).toBe(true);
  });

  it('with an fd: the same Buffer, sent whole in the call', async () => {
    const p = await tcpPair();
    try {
      const b = encodeHeadSend(directFd(p.client), 'GET /q HTTP/1.1', h, drop, extra, fill, fromEnd, 36);
      expect(b.equals(want)).toBe(true);
      expect(lastHeadSent()).toBe(b.length);
      expect((await p.waitFor(b.length)).equals(want)).toBe(true);
    } finally {
      p.close();
    }
  });
});
