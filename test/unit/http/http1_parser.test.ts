import { describe, expect, it } from 'vitest';
import {
  BODY_ERROR,
  BodyFramer,
  BodyMode,
  encodeHead,
  getHeader,
  HeadStatus,
  HeaderKind,
  parseRequestHead,
  parseResponseHead,
  wantsKeepAlive,
  type MessageHead,
} from '../../../src/protocols/http1/index.js';

const b = (s: string) => Buffer.from(s, 'latin1');

function req(s: string, limits?: { maxHeadBytes: number; maxHeaders: number }): MessageHead | number {
  const buf = b(s);
  return parseRequestHead(buf, 0, buf.length, limits);
}

function head(r: MessageHead | number): MessageHead {
  if (typeof r === 'number') throw new Error(`expected a head, got status ${r}`);
  return r;
}

describe('HTTP/1.1 request head parser', () => {
  it('parses the request line, headers as offsets, and framing facts', () => {
    const h = head(req('POST /a/b?x=1 HTTP/1.1\r\nHost: svc.local\r\nContent-Length: 12\r\nX-Thing:  spaced value \r\n\r\nBODY'));
    expect(h.method).toBe('POST');
    expect(h.target).toBe('/a/b?x=1');
    expect(h.versionMinor).toBe(1);
    expect(h.host).toBe('svc.local');
    expect(h.contentLength).toBe(12);
    expect(h.chunked).toBe(false);
    expect(h.headBytes).toBe(h.buf.length - 4);
    expect(getHeader(h, 'x-thing')).toBe('spaced value');
    expect(getHeader(h, 'X-Thing'.toLowerCase())).toBe('spaced value');
    expect(getHeader(h, 'absent')).toBeUndefined();
    expect(h.fieldSlots[h.fieldsAt]).toBe(HeaderKind.HOST);
    expect(h.fieldsEnd - h.fieldsAt).toBe(3 * 5);
    expect(wantsKeepAlive(h)).toBe(true);
  });

  it('asks for more bytes at every split point of a valid head', () => {
    const full = 'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n';
    for (let i = 0; i < full.length; i++) {
      expect(req(full.slice(0, i)), `split at ${i}`).toBe(HeadStatus.NEED_MORE);
    }
    const h = head(req(full));
    expect(h.connectionClose).toBe(true);
    expect(wantsKeepAlive(h)).toBe(false);
  });

  it('accepts bare LF line ends and skips leading empty lines', () => {
    const h = head(req('\r\nGET /x HTTP/1.1\nHost: a\n\n'));
    expect(h.target).toBe('/x');
    expect(h.headBytes).toBe(b('\r\nGET /x HTTP/1.1\nHost: a\n\n').length);
  });

  it('HTTP/1.0 keeps the connection only with keep-alive, and needs no Host', () => {
    expect(wantsKeepAlive(head(req('GET / HTTP/1.0\r\n\r\n')))).toBe(false);
    expect(wantsKeepAlive(head(req('GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n')))).toBe(true);
  });

  it('recognizes chunked, expect 100-continue and upgrade', () => {
    const h = head(req('PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\nConnection: Upgrade, keep-alive\r\nUpgrade: websocket\r\n\r\n'));
    expect(h.chunked).toBe(true);
    expect(h.contentLength).toBe(-1);
    expect(h.expectContinue).toBe(true);
    expect(h.upgrade).toBe(true);
    expect(h.connectionKeepAlive).toBe(true);
  });

  it.each([
    ['space before colon', 'GET / HTTP/1.1\r\nHost : a\r\n\r\n'],
    ['obs-fold', 'GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n  2\r\n\r\n'],
    ['bare CR', 'GET / HTTP/1.1\rHost: a\r\n\r\n'],
    ['control byte in a value', 'GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n'],
    ['unknown version', 'GET / HTTP/2.0\r\nHost: a\r\n\r\n'],
    ['lower-case version', 'GET / http/1.1\r\nHost: a\r\n\r\n'],
    ['no target', 'GET  HTTP/1.1\r\nHost: a\r\n\r\n'],
    ['space in target', 'GET /a b HTTP/1.1\r\nHost: a\r\n\r\n'],
    ['bad method byte', 'G(T / HTTP/1.1\r\nHost: a\r\n\r\n'],
    ['content-length and chunked', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n'],
    ['conflicting content-lengths', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n'],
    ['non-numeric content-length', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3x\r\n\r\n'],
    ['negative content-length', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n'],
    ['chunked not final', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n'],
    ['chunked twice', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n'],
    ['chunked on HTTP/1.0', 'POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n'],
    ['HTTP/1.1 without Host', 'GET / HTTP/1.1\r\nX: 1\r\n\r\n'],
    ['two Hosts', 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n'],
    // A fragment is not part of a request-target (Envoy: http_reject_path_with_fragment).
    ['fragment in the target', 'GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n'],
    ['fragment deep in a long target', 'GET /0123456789abcdef/0123456789abcdef#x HTTP/1.1\r\nHost: a\r\n\r\n'],
    // Host holds uri-host [":" port]: what nghttp2 allows in :authority, as Envoy checks it.
    ['space in Host', 'GET / HTTP/1.1\r\nHost: a b\r\n\r\n'],
    ['slash in Host', 'GET / HTTP/1.1\r\nHost: a/b\r\n\r\n'],
    ['quote in Host', 'GET / HTTP/1.1\r\nHost: "a"\r\n\r\n'],
    ['garbage', '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03'],
  ])('rejects %s as malformed', (_name, text) => {
    expect(req(text)).toBe(HeadStatus.MALFORMED);
  });

  it('accepts Host values of every authority form', () => {
    for (const h of ['svc', 'Svc.Example:8080', '[::1]:80', '10.0.0.1', 'a_b-c~d', '%41', '']) {
      expect(head(req(`GET / HTTP/1.1\r\nHost: ${h}\r\n\r\n`)).host, h).toBe(h);
    }
  });

  it('tolerates a repeated identical content-length', () => {
    expect(head(req('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\n')).contentLength).toBe(5);
  });

  it('reports TOO_LARGE once the head passes the byte limit, complete or not', () => {
    const limits = { maxHeadBytes: 64, maxHeaders: 100 };
    const big = `GET / HTTP/1.1\r\nHost: a\r\nX: ${'v'.repeat(100)}\r\n\r\n`;
    expect(req(big, limits)).toBe(HeadStatus.TOO_LARGE);
    expect(req(big.slice(0, 80), limits)).toBe(HeadStatus.TOO_LARGE);
    expect(req(big.slice(0, 40), limits)).toBe(HeadStatus.NEED_MORE);
    expect(req(`GET /${'p'.repeat(100)}`, limits)).toBe(HeadStatus.TOO_LARGE);
  });

  it('reports TOO_LARGE past the header count limit', () => {
    const lines = Array.from({ length: 5 }, (_, i) => `X${i}: v\r\n`).join('');
    expect(req(`GET / HTTP/1.1\r\nHost: a\r\n${lines}\r\n`, { maxHeadBytes: 4096, maxHeaders: 5 })).toBe(HeadStatus.TOO_LARGE);
    expect(typeof req(`GET / HTTP/1.1\r\nHost: a\r\n${lines}\r\n`, { maxHeadBytes: 4096, maxHeaders: 6 })).toBe('object');
  });

  it('parses pipelined heads at an offset', () => {
    const two = b('GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n');
    const h1 = head(parseRequestHead(two, 0, two.length));
    const h2 = head(parseRequestHead(two, h1.headBytes, two.length));
    expect([h1.target, h2.target]).toEqual(['/1', '/2']);
    expect(h1.headBytes + h2.headBytes).toBe(two.length);
  });
});

describe('HTTP/1.1 response head parser', () => {
  it('parses status, reason-less lines and framing', () => {
    const r = b('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy');
    const h = head(parseResponseHead(r, 0, r.length));
    expect(h.status).toBe(503);
    expect(h.contentLength).toBe(4);
    expect(h.connectionClose).toBe(true);
    const bare = b('HTTP/1.1 204\r\n\r\n');
    expect(head(parseResponseHead(bare, 0, bare.length)).status).toBe(204);
  });

  it('rejects bad status lines', () => {
    for (const s of ['HTTP/1.1 20 OK\r\n\r\n', 'HTTP/1.1 2000 OK\r\n\r\n', 'HTTX/1.1 200 OK\r\n\r\n', 'HTTP/1.1 099 X\r\n\r\n']) {
      const r = b(s);
      expect(parseResponseHead(r, 0, r.length), s).toBe(HeadStatus.MALFORMED);
    }
  });
});

describe('body framer', () => {
  it('counts Content-Length bodies across chunks and stops at the boundary', () => {
    const f = new BodyFramer();
    f.reset(BodyMode.LENGTH, 5);
    const a = b('abc');
    expect(f.feed(a, 0, 3)).toBe(3);
    expect(f.done).toBe(false);
    const rest = b('deGET');
    expect(f.feed(rest, 0, rest.length)).toBe(2);
    expect(f.done).toBe(true);
  });

  it('walks chunked framing with extensions and trailers, at every split point', () => {
    const body = b('5;ext=1\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: t\r\n\r\nNEXT');
    const bodyLen = body.length - 4;
    for (let split = 1; split < bodyLen; split++) {
      const f = new BodyFramer();
      f.reset(BodyMode.CHUNKED);
      expect(f.feed(body, 0, split)).toBe(split);
      expect(f.done, `split ${split}`).toBe(false);
      expect(f.feed(body, split, body.length)).toBe(bodyLen);
      expect(f.done).toBe(true);
      expect(f.payloadBytes).toBe(21);
    }
  });

  it.each([
    ['whitespace before an extension', '3 ;a=b\r\nabc\r\n0\r\n\r\n'],
    ['tabs and spaces before an extension', '3\t \t;a\r\nabc\r\n0\r\n\r\n'],
    ['a quoted extension value', '3;a="b;c d"\r\nabc\r\n0\r\n\r\n'],
    ['trailers', '3\r\nabc\r\n0\r\nX-T: 1\r\nx-e:\r\nX-O: caf\xe9\t\r\n\r\n'],
  ])('accepts %s', (_n, text) => {
    const f = new BodyFramer();
    f.reset(BodyMode.CHUNKED);
    const body = b(text);
    expect(f.feed(body, 0, body.length)).toBe(body.length);
    expect(f.done).toBe(true);
  });

  it('ends a chunked body without trailers', () => {
    const f = new BodyFramer();
    f.reset(BodyMode.CHUNKED);
    const body = b('3\r\nabc\r\n0\r\n\r\n');
    expect(f.feed(body, 0, body.length)).toBe(body.length);
    expect(f.done).toBe(true);
  });

  it.each([
    ['no size', '\r\nabc\r\n'],
    ['non-hex size', 'zz\r\n'],
    ['data longer than the size', '3\r\nabcd\r\n0\r\n\r\n'],
    ['huge size', 'fffffffffffffff\r\n'],
    ['control byte in extension', '3;\x01\r\nabc\r\n'],
    // Chunk lines end in CRLF only: a bare LF is where framing of two recipients can part.
    ['bare LF after the size', '3\nabc\r\n0\r\n\r\n'],
    ['bare LF ending an extension', '3;a=b\nabc\r\n0\r\n\r\n'],
    ['bare LF inside a quoted extension', '3;a="x\ny"\r\nabc\r\n0\r\n\r\n'],
    ['bare LF after the data', '3\r\nabc\n0\r\n\r\n'],
    ['bare LF ending the body', '0\r\n\n'],
    ['bare LF ending a trailer', '0\r\nX-T: 1\n\r\n'],
    ['bare CR after the size', '3\rabc\r\n'],
    // chunk-size is 1*HEXDIG: what follows must be CRLF, ';' or whitespace before a ';'.
    ['a 0x prefix', '0x3\r\nabc\r\n0\r\n\r\n'],
    ['whitespace ending the size line', '3 \r\nabc\r\n0\r\n\r\n'],
    ['a tab ending the size line', '3\t\r\nabc\r\n0\r\n\r\n'],
    ['a letter after the size', '3g\r\nabc\r\n0\r\n\r\n'],
    // Trailer fields keep the header fields' syntax.
    ['a trailer without a colon', '0\r\nX-T\r\n\r\n'],
    ['a space in a trailer name', '0\r\nX T: 1\r\n\r\n'],
    ['a space before a trailer colon', '0\r\nX-T : 1\r\n\r\n'],
    ['a trailer with no name', '0\r\n: 1\r\n\r\n'],
    ['obs-fold in trailers', '0\r\nX-T: 1\r\n 2\r\n\r\n'],
    ['a control byte in a trailer value', '0\r\nX-T: a\x01b\r\n\r\n'],
  ])('rejects %s', (_n, text) => {
    const f = new BodyFramer();
    f.reset(BodyMode.CHUNKED);
    const body = b(text);
    expect(f.feed(body, 0, body.length)).toBe(BODY_ERROR);
  });
});

describe('head encoder', () => {
  it('copies kept headers as bytes and appends new ones', () => {
    const h = head(req('GET /old HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nX-Obs: caf\xe9\r\n\r\n'));
    const out = encodeHead('GET /new HTTP/1.1', h, (hd, i) => hd.fieldSlots[hd.fieldsAt + i * 5] === HeaderKind.CONNECTION, 'x-added: 1\r\n');
    expect(out.toString('latin1')).toBe('GET /new HTTP/1.1\r\nHost: a\r\nX-Obs: caf\xe9\r\nx-added: 1\r\n\r\n');
  });
});
