import { describe, expect, it } from 'vitest';
import { encodeHead, HeaderKind, parseRequestHead, parseResponseHead, type MessageHead } from '../../../src/protocols/http1/index.js';

const b = (s: string) => Buffer.from(s, 'latin1');

function parsed(r: MessageHead | number): MessageHead {
  if (typeof r === 'number') throw new Error(`expected a head, got status ${r}`);
  return r;
}

/** What encodeHead must produce: the kept lines one by one, as the header offsets say. */
function lineByLine(first: string, h: MessageHead, keep: (i: number) => boolean, extra: string, body = ''): string {
  let out = `${first}\r\n`;
  const f = h.fieldSlots;
  for (let i = 0; i < (h.fieldsEnd - h.fieldsAt) / 5; i++) {
    if (!keep(i)) continue;
    const o = h.fieldsAt + i * 5;
    out += h.buf.toString('latin1', f[o + 1]!, f[o + 4]!) + '\r\n';
  }
  return `${out}${extra}\r\n${body}`;
}

describe('head encoder: runs of kept lines and an inline body', () => {
  it('gives the same bytes as copying line by line when lines are dropped in between, and trims trailing whitespace', () => {
    const text = 'GET / HTTP/1.1\r\nHost: a\r\nX-One: 1\r\nConnection: keep-alive\r\nX-Two: two  \r\nX-Three: 3\r\nTE: trailers\r\nX-Four: caf\xe9\r\n\r\n';
    const h = parsed(parseRequestHead(b(text), 0, text.length));
    const drop = (hd: MessageHead, i: number) => hd.fieldSlots[hd.fieldsAt + i * 5] === HeaderKind.CONNECTION || hd.fieldSlots[hd.fieldsAt + i * 5] === HeaderKind.TE;
    const out = encodeHead('GET /x HTTP/1.1', h, drop, 'x-added: 1\r\n').toString('latin1');
    expect(out).toBe(lineByLine('GET /x HTTP/1.1', h, (i) => !drop(h, i), 'x-added: 1\r\n'));
    // The trailing spaces of X-Two are not part of its value, so they must not leak through a run.
    expect(out).toContain('X-Two: two\r\nX-Three: 3\r\n');
    expect(out).not.toContain('Connection');
  });

  it('keeps every line of a head with more headers than its first buffer holds', () => {
    let text = 'HTTP/1.1 200 OK\r\n';
    for (let i = 0; i < 150; i++) text += `x-h${i}: v${i}\r\n`;
    text += 'content-length: 0\r\n\r\n';
    const h = parsed(parseResponseHead(b(text), 0, text.length, { maxHeadBytes: 1 << 20, maxHeaders: 1000 }));
    const drop = (_h: MessageHead, i: number) => i % 7 === 3;
    const out = encodeHead('HTTP/1.1 200 OK', h, drop, '').toString('latin1');
    expect(out).toBe(lineByLine('HTTP/1.1 200 OK', h, (i) => i % 7 !== 3, ''));
    // A later, smaller head must not see the larger head's keep marks.
    const small = parsed(parseResponseHead(b('HTTP/1.1 204 No Content\r\nA: 1\r\nB: 2\r\n\r\n'), 0, 39));
    expect(encodeHead('HTTP/1.1 204 No Content', small, null, '').toString('latin1')).toBe('HTTP/1.1 204 No Content\r\nA: 1\r\nB: 2\r\n\r\n');
  });

  it('appends the body bytes given as the tail after the blank line', () => {
    const text = 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: up\r\n\r\nhelloNEXT';
    const buf = b(text);
    const h = parsed(parseResponseHead(buf, 0, buf.length));
    const out = encodeHead('HTTP/1.1 200 OK', h, null, 'server: strait\r\n', buf, h.headBytes, h.headBytes + 5).toString('latin1');
    expect(out).toBe('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: up\r\nserver: strait\r\n\r\nhello');
  });
});

describe('reason phrases', () => {
  it("uses Envoy's words for the codes Envoy names and Unknown for the rest", async () => {
    const { reasonPhrase, encodeLocalResponse } = await import('../../../src/protocols/http1/encoder.js');
    expect(reasonPhrase(426)).toBe('Upgrade Required');
    expect(reasonPhrase(507)).toBe('Insufficient Storage');
    expect(reasonPhrase(421)).toBe('Misdirected Request');
    expect(reasonPhrase(599)).toBe('Unknown');
    expect(encodeLocalResponse(426, '', '', true).toString('latin1').split('\r\n')[0]).toBe('HTTP/1.1 426 Upgrade Required');
  });
});
