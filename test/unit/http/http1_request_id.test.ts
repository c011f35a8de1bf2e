// x-request-id bytes written into a head (src/protocols/http1/request_id.ts): RFC 9562 v4 UUIDs,
// fresh every time, across refills of the random pool.
import { describe, expect, it } from 'vitest';
import { REQUEST_ID_LINE, REQUEST_ID_VALUE_AT, UUID_LENGTH, writeUuidV4 } from '../../../src/protocols/http1/request_id.js';

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
