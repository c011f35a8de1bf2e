// x-request-id bytes written into a head, and the string form HTTP/2 header lists use
// (src/protocols/http1/request_id.ts): RFC 9562 v4 UUIDs, fresh every time, across refills of the
// random pool.
import { describe, expect, it } from 'vitest';
import { REQUEST_ID_LINE, REQUEST_ID_VALUE_AT, UUID_LENGTH, UUID_SOURCE, uuidV4, uuidV4Js, writeUuidV4 } from '../../../src/protocols/http1/request_id.js';
import { loadNative } from '../../../src/native.js';

const V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('writeUuidV4', () => {
  it('overwrites the placeholder value in place with distinct v4 UUIDs, past several pool refills', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const b = Buffer.from(`x\r\n${REQUEST_ID_LINE}\r\n`, 'latin1');
      writeUuidV4(b, 3 + REQUEST_ID_VALUE_AT);
      const s = b.toString('latin1');
      // Only the value changed: the name, the CRLFs around it and the bytes before are intact.
      expect(s.startsWith('x\r\nx-request-id: ')).toBe(true);
      expect(s.endsWith('\r\n\r\n')).toBe(true);
      const v = b.toString('latin1', 3 + REQUEST_ID_VALUE_AT, 3 + REQUEST_ID_VALUE_AT + UUID_LENGTH);
      expect(v).toMatch(V4);
      expect(REQUEST_ID_LINE).not.toContain(v);
      seen.add(v);
    }
    expect(seen.size).toBe(1000);
  });
});

// uuidV4 is the addon's requestId() where it is built (the CI build has it), uuidV4Js the rest.
const native = (loadNative() as unknown as { requestId?: () => string }).requestId;
const makers: Array<[string, () => string]> = [
  ['uuidV4Js', uuidV4Js],
  ['the addon\'s requestId', native!],
];

it('uuidV4 comes from the addon when it is built', () => {
  expect(typeof native).toBe('function');
  expect(UUID_SOURCE).toBe('addon');
  expect(uuidV4()).toMatch(V4);
});

describe.each(makers)('%s', (_name, uuidV4) => {
  it('gives distinct v4 UUIDs past several pool refills, every random digit taking all 16 values', () => {
    const seen = new Set<string>();
    const digits: Array<Set<string>> = Array.from({ length: UUID_LENGTH }, () => new Set<string>());
    // The two digits of each fully random byte: both nibbles of one byte, so all 256 pairs show up.
    const pairs = [0, 2, 4, 6, 9, 11, 16, 21, 24, 26, 28, 30, 32, 34];
    const bytes = pairs.map(() => new Set<string>());
    for (let i = 0; i < 4000; i++) {
      const v = uuidV4();
      expect(v).toMatch(V4);
      seen.add(v);
      for (let j = 0; j < UUID_LENGTH; j++) digits[j]!.add(v[j]!);
      pairs.forEach((j, k) => bytes[k]!.add(v.slice(j, j + 2)));
    }
    // 4000 draws of 256 values leave about none unseen; a digit that copied the other would give 16.
    for (const b of bytes) expect(b.size).toBeGreaterThan(250);
    expect(seen.size).toBe(4000);
    for (let j = 0; j < UUID_LENGTH; j++) {
      // Dashes, the version digit and the variant digit (two fixed bits) are the only fixed parts:
      // a wrong nibble table or byte offset would pin or narrow some other position.
      const want = j === 8 || j === 13 || j === 18 || j === 23 ? 1 : j === 14 ? 1 : j === 19 ? 4 : 16;
      expect(digits[j]!.size, `position ${j}`).toBe(want);
    }
    expect([...digits[19]!].sort().join('')).toBe('89ab');
  });
});
