import { describe, expect, it } from 'vitest';
import { extract, newId, outgoing } from '../../../src/observability/tracing/context.js';

const lookup = (h: Record<string, string>) => (n: string) => h[n];

describe('trace context', () => {
  it('reads B3 multi-header first, with its sampling decision and debug flag', () => {
    expect(extract(lookup({ 'x-b3-traceid': 'A'.repeat(16), 'x-b3-spanid': 'b'.repeat(16), 'x-b3-sampled': '0', traceparent: `00-${'c'.repeat(32)}-${'d'.repeat(16)}-01` }))).toEqual({
      traceId: 'a'.repeat(16),
      spanId: 'b'.repeat(16),
      sampled: false,
      format: 'b3',
    });
    expect(extract(lookup({ 'x-b3-traceid': 'a'.repeat(32), 'x-b3-spanid': 'b'.repeat(16), 'x-b3-flags': '1' }))).toMatchObject({ sampled: true });
  });

  it('reads single b3, including the decision-only form', () => {
    expect(extract(lookup({ b3: `${'a'.repeat(32)}-${'b'.repeat(16)}-1-${'c'.repeat(16)}` }))).toEqual({ traceId: 'a'.repeat(32), spanId: 'b'.repeat(16), sampled: true, format: 'b3-single' });
    expect(extract(lookup({ b3: '0' }))).toEqual({ sampled: false });
  });

  it('reads W3C traceparent and rejects invalid ones', () => {
    expect(extract(lookup({ traceparent: `00-${'a'.repeat(32)}-${'b'.repeat(16)}-00` }))).toEqual({ traceId: 'a'.repeat(32), spanId: 'b'.repeat(16), sampled: false, format: 'w3c' });
    expect(extract(lookup({ traceparent: `00-${'0'.repeat(32)}-${'b'.repeat(16)}-01` }))).toBeNull();
    expect(extract(lookup({ traceparent: `ff-${'a'.repeat(32)}-${'b'.repeat(16)}-01` }))).toBeNull();
    expect(extract(lookup({ traceparent: 'garbage' }))).toBeNull();
  });

  it('writes B3 and traceparent for the child span, padding 64-bit trace ids', () => {
    const h = Object.fromEntries(outgoing('a'.repeat(16), 'b'.repeat(16), 'c'.repeat(16), true, true));
    expect(h['x-b3-traceid']).toBe('a'.repeat(16));
    expect(h['x-b3-parentspanid']).toBe('c'.repeat(16));
    expect(h.traceparent).toBe(`00-${'0'.repeat(16)}${'a'.repeat(16)}-${'b'.repeat(16)}-01`);
    expect(h.b3).toBe(`${'a'.repeat(16)}-${'b'.repeat(16)}-1-${'c'.repeat(16)}`);
    expect(Object.fromEntries(outgoing('a'.repeat(16), 'b'.repeat(16), 'c'.repeat(16), false, false)).b3).toBeUndefined();
  });

  it('makes 16-hex-digit non-zero ids', () => {
    const ids = new Set(Array.from({ length: 100 }, newId));
    expect(ids.size).toBe(100);
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{16}$/);
  });

  it('reads traceparent first for an OpenTelemetry tracer, B3 first otherwise', () => {
    const h = lookup({ 'x-b3-traceid': 'a'.repeat(32), 'x-b3-spanid': 'b'.repeat(16), traceparent: `00-${'c'.repeat(32)}-${'d'.repeat(16)}-00` });
    expect(extract(h)).toMatchObject({ traceId: 'a'.repeat(32), format: 'b3' });
    expect(extract(h, true)).toEqual({ traceId: 'c'.repeat(32), spanId: 'd'.repeat(16), sampled: false, format: 'w3c' });
    // A malformed traceparent falls back to B3 even then.
    expect(extract(lookup({ 'x-b3-traceid': 'a'.repeat(16), 'x-b3-spanid': 'b'.repeat(16), traceparent: 'garbage' }), true)).toMatchObject({ format: 'b3' });
  });
});
