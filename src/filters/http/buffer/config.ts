import type { HttpFilterFactory, HttpFilterParseContext } from '../types.js';
import { BufferFilter } from './filter.js';

export const BUFFER_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer';

export interface BufferConfig {
  /** The most request body bytes held before routing; past it the answer is 413. */
  readonly maxRequestBytes: number;
}

type Obj = Record<string, any>;

/** UInt32Value arrives as a number or as `{ value }`. */
function uint(v: unknown): number {
  return typeof v === 'object' && v !== null ? Number((v as Obj).value) : Number(v);
}

function parse(tc: Obj, path: string, ctx: HttpFilterParseContext): BufferConfig | null {
  const v = tc.max_request_bytes;
  if (v === undefined || v === null) {
    ctx.errors.push({ path: `${path}.max_request_bytes`, message: 'is required' });
    return null;
  }
  const n = uint(v);
  if (!Number.isInteger(n) || n < 1 || n > 0xffff_ffff) {
    ctx.errors.push({ path: `${path}.max_request_bytes`, message: `must be an integer from 1 to 4294967295 (got ${JSON.stringify(v)})` });
    return null;
  }
  return Object.freeze({ maxRequestBytes: n });
}

export const bufferFactory = {
  name: 'envoy.filters.http.buffer',
  typeUrls: [BUFFER_TYPE],
  parse,
  create: (config) => new BufferFilter(config),
} satisfies HttpFilterFactory<BufferConfig>;
