// The bound HTTP/1 head parser keeps the last request head and the last response head it parsed
// (native/http1/head.cc HeadMemo) and answers a head with the same bytes from it. Every answer
// must be the one a fresh parse gives (parseHttp1Head, which keeps nothing), slot for slot, at any
// offset, under any limits, for cut and over-limit heads, and heads too large to keep.
import { describe, expect, it } from 'vitest';
import { loadNative } from '../../src/native.js';

const b = loadNative();

const RESPONSE =
  'HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 07 Dec 2026 12:00:00 GMT\r\nContent-Type: application/octet-stream\r\n' +
  'Content-Length: 64\r\nLast-Modified: Mon, 07 Dec 2026 11:00:00 GMT\r\nConnection: keep-alive\r\nETag: "6566-40"\r\nAccept-Ranges: bytes\r\n\r\n';
const REQUEST = 'GET /64?a=b HTTP/1.1\r\nHost: svc.local:8080\r\nX-Forwarded-For: 10.0.0.1\r\nX-Request-Id: abc\r\nTransfer-Encoding: chunked\r\n\r\n';

/** Slots 13 and 14 (HOST_GEN, TARGET_GEN) only the bound parser fills. */
const rest = (o: Int32Array): number[] => Array.from(o).filter((_, i) => i !== 13 && i !== 14);

describe('bound HTTP/1 parser: repeated heads', () => {
  it('answers a repeated head as a fresh parse does, at other offsets and limits, and counts the repeats', () => {
    const fresh = new Int32Array(16 + 5 * 40);
    const out = new Int32Array(16 + 5 * 40);
    const [parse] = b.bindHttp1HeadParser!(out);
    const repeats = (): number => b.stats().http1HeadsRepeated;
    const body = 'x'.repeat(64);
    type Step = { request: boolean; text: string; off: number; cut?: number; maxHead?: number; maxHeaders?: number; repeat: boolean };
    const steps: Step[] = [
      { request: false, text: RESPONSE + body, off: 0, repeat: false },
      { request: false, text: RESPONSE + body, off: 0, repeat: true },
      // Elsewhere in a buffer, other bytes before and after.
      { request: false, text: `zzzzzzz${RESPONSE}HTTP/1.1 500`, off: 7, repeat: true },
      // Cut one byte short: more is needed, whatever was kept (and the kept head stays).
      { request: false, text: RESPONSE, off: 0, cut: 1, repeat: false },
      // Limits the kept head does not fit: as a parse says (too large), exactly at them it fits.
      { request: false, text: RESPONSE, off: 0, maxHeaders: 7, repeat: false },
      { request: false, text: RESPONSE, off: 0, maxHeaders: 8, repeat: true },
      { request: false, text: RESPONSE, off: 0, maxHead: RESPONSE.length - 1, repeat: false },
      { request: false, text: RESPONSE, off: 0, maxHead: RESPONSE.length, repeat: true },
      // Requests have their own: the response kept above stays for the next response.
      { request: true, text: `\r\n${REQUEST}0\r\n\r\n`, off: 2, repeat: false },
      { request: true, text: `....${REQUEST}`, off: 4, repeat: true },
      { request: false, text: RESPONSE, off: 0, repeat: true },
      // One byte different at the end of the head: parsed (and kept).
      { request: false, text: RESPONSE.replace('bytes\r\n\r\n', 'byteZ\r\n\r\n'), off: 0, repeat: false },
      { request: false, text: RESPONSE.replace('bytes\r\n\r\n', 'byteZ\r\n\r\n'), off: 0, repeat: true },
      // A malformed head after a good one with the same start: parsed, an error, not kept.
      { request: false, text: RESPONSE.replace('Accept-Ranges: bytes', 'Accept-Ranges : bytes'), off: 0, repeat: false },
      { request: false, text: RESPONSE.replace('Accept-Ranges: bytes', 'Accept-Ranges : bytes'), off: 0, repeat: false },
      // A response may carry Host too: its offsets move with the head.
      { request: false, text: 'HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nHost: odd\r\n\r\n', off: 0, repeat: false },
      { request: false, text: '12345HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nHost: odd\r\n\r\n', off: 5, repeat: true },
      // Without Host (its slots -1) and with a different target length.
      { request: true, text: 'POST /a/much/longer/target HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc', off: 0, repeat: false },
      { request: true, text: '_POST /a/much/longer/target HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc', off: 1, repeat: true },
      // Too large to keep (over 512 bytes, over 24 fields): parsed every time.
      { request: false, text: `HTTP/1.1 204 No Content\r\nX-Big: ${'v'.repeat(600)}\r\n\r\n`, off: 0, repeat: false },
      { request: false, text: `HTTP/1.1 204 No Content\r\nX-Big: ${'v'.repeat(600)}\r\n\r\n`, off: 0, repeat: false },
      { request: true, text: `GET / HTTP/1.1\r\n${'A: 1\r\n'.repeat(30)}\r\n`, off: 0, repeat: false },
      { request: true, text: `GET / HTTP/1.1\r\n${'A: 1\r\n'.repeat(30)}\r\n`, off: 0, repeat: false },
    ];
    let results = 0;
    for (const [i, s] of steps.entries()) {
      const src = Buffer.from(s.text, 'latin1');
      const end = src.length - (s.cut ?? 0);
      const maxHead = s.maxHead ?? 8192;
      const maxHeaders = s.maxHeaders ?? 40;
      // Both from zeroed arrays: a response leaves some request slots as they were.
      fresh.fill(0);
      out.fill(0);
      b.parseHttp1Head!(s.request, src, s.off, end, maxHead, maxHeaders, fresh);
      const before = repeats();
      parse(s.request, src, s.off, end, maxHead, maxHeaders, -1);
      expect(rest(out), `step ${i}`).toEqual(rest(fresh));
      expect(repeats() - before, `step ${i} answered from the kept head`).toBe(s.repeat ? 1 : 0);
      if (fresh[0]! > 0) results++;
    }
    // The steps above compare heads, not only errors.
    expect(results).toBeGreaterThan(12);
  });

  it('matches a fresh parse over 20,000 seeded heads, half of them repeats at other offsets, cuts and limits', () => {
    let seed = 7;
    const rand = (): number => {
      // mulberry32
      seed = (seed + 0x6d2b79f5) >>> 0;
      let t = seed;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const pick = <T>(a: readonly T[]): T => a[Math.floor(rand() * a.length)]!;
    const base: [boolean, string][] = [
      [false, RESPONSE],
      [true, REQUEST],
      [false, 'HTTP/1.0 304 Not Modified\r\nHost: h\r\nContent-Length: 7, 7\r\n\r\n'],
      [true, '\r\nPUT /x HTTP/1.0\nContent-Length: 5\nConnection: Upgrade, close\nUpgrade: websocket\n\n'],
      [false, 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n'],
    ];
    const bytes = ' \t\r\n:,;abcXYZ019-_/?#\x7f\xff';
    const fresh = new Int32Array(16 + 5 * 32);
    const out = new Int32Array(16 + 5 * 32);
    const [parse] = b.bindHttp1HeadParser!(out);
    const start = b.stats().http1HeadsRepeated;
    let prev: [boolean, string] = base[0]!;
    let heads = 0;
    for (let n = 0; n < 20_000; n++) {
      let [request, text] = rand() < 0.5 ? prev : pick(base);
      // Mutate a third of the new ones by a byte or two.
      if (rand() < 0.33) {
        for (let m = 1 + Math.floor(rand() * 2); m > 0; m--) {
          const at = Math.floor(rand() * text.length);
          text = text.slice(0, at) + pick([...bytes]) + text.slice(at + (rand() < 0.5 ? 1 : 0));
        }
      }
      prev = [request, text];
      const lead = Math.floor(rand() * 8);
      const src = Buffer.from('#'.repeat(lead) + text + 'tail', 'latin1');
      const end = rand() < 0.1 ? lead + Math.floor(rand() * text.length) : src.length;
      const maxHead = rand() < 0.1 ? 20 + Math.floor(rand() * 200) : 8192;
      const maxHeaders = rand() < 0.1 ? Math.floor(rand() * 10) : 32;
      fresh.fill(0);
      out.fill(0);
      b.parseHttp1Head!(request, src, lead, end, maxHead, maxHeaders, fresh);
      parse(request, src, lead, end, maxHead, maxHeaders, -1);
      expect(rest(out), `input ${n}: ${JSON.stringify(text)} [${lead}, ${end}) limits ${maxHead}/${maxHeaders}`).toEqual(rest(fresh));
      if (fresh[0]! > 0) heads++;
    }
    // Most were whole heads, and many of those were answered from the kept one.
    expect(heads).toBeGreaterThan(10_000);
    expect(b.stats().http1HeadsRepeated - start).toBeGreaterThan(5_000);
  });

  it('keeps numbering Host and target values of repeated requests, and the owned copy goes to the slab', () => {
    const out = new Int32Array(16 + 5 * 10);
    const [parse, setSlab] = b.bindHttp1HeadParser!(out);
    const slab = Buffer.alloc(4096);
    setSlab(slab);
    const src = Buffer.from(`..${REQUEST}`, 'latin1');
    parse(true, src, 2, src.length, 8192, 10, -1);
    const gens = [out[13], out[14]];
    expect(gens.every((g) => g! > 0)).toBe(true);
    const before = b.stats().http1HeadsRepeated;
    parse(true, src, 2, src.length, 8192, 10, 100);
    expect(b.stats().http1HeadsRepeated).toBe(before + 1);
    expect([out[13], out[14]]).toEqual(gens);
    // Copied: the offsets point into the slab, at 100.
    expect(out[12]).toBe(1);
    expect(slab.toString('latin1', out[4]!, out[5]!)).toBe('/64?a=b');
    expect(slab.toString('latin1', out[9]!, out[10]!)).toBe('svc.local:8080');
    const f = 16;
    expect(slab.toString('latin1', out[f + 1]!, out[f + 2]!)).toBe('Host');
  });
});
