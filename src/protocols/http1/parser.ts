/**
 * The HTTP/1.1 head parser the data path uses: the addon's (native/http1, one call per head) when
 * the addon is built, else the TypeScript one in decoder.ts — same rules and results, checked by
 * a parity test. `STRAIT_HTTP1_PARSER=ts` forces the TypeScript parser (bench comparisons).
 *
 * Measured with CPU time per head (`node bench/micro/index.js http1-parse`): the native parse of
 * an 8-header request is ~0.65–0.9x the TypeScript one; a 4-header response is about even. Most
 * of what is left is building the head for JS (the fields array, the target string), which both
 * pay.
 */
import { log } from '../../log.js';
import { loadNative } from '../../native.js';
import { DEFAULT_LIMITS, parseRequestHead as tsRequest, parseResponseHead as tsResponse, type ParseLimits, type ParseResult } from './decoder.js';
import { nativeHeadParser, type HeadParser } from './native_head.js';

function choose(): { parser: HeadParser; name: 'native' | 'ts' } {
  const ts: HeadParser = { parseRequestHead: tsRequest, parseResponseHead: tsResponse };
  if (process.env.STRAIT_HTTP1_PARSER === 'ts') return { parser: ts, name: 'ts' };
  try {
    const p = nativeHeadParser(loadNative());
    if (p) return { parser: p, name: 'native' };
    log.warn('the native addon predates parseHttp1Head: HTTP/1 heads are parsed in TypeScript (rebuild with "npx node-gyp rebuild")');
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'native addon unavailable: HTTP/1 heads are parsed in TypeScript');
  }
  return { parser: ts, name: 'ts' };
}

const chosen = choose();

/** Which parser is in use: 'native' or 'ts'. */
export const HTTP1_PARSER: 'native' | 'ts' = chosen.name;

/** The native parser's scratch holds 5 slots per allowed header; past this, TypeScript parses. */
const NATIVE_MAX_HEADERS = 1024;

export function parseRequestHead(buf: Buffer, off: number, end: number, limits: ParseLimits = DEFAULT_LIMITS): ParseResult {
  if (limits.maxHeaders > NATIVE_MAX_HEADERS) return tsRequest(buf, off, end, limits);
  return chosen.parser.parseRequestHead(buf, off, end, limits);
}

export function parseResponseHead(buf: Buffer, off: number, end: number, limits: ParseLimits = DEFAULT_LIMITS): ParseResult {
  if (limits.maxHeaders > NATIVE_MAX_HEADERS) return tsResponse(buf, off, end, limits);
  return chosen.parser.parseResponseHead(buf, off, end, limits);
}
