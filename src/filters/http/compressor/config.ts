import type { Transform } from 'node:stream';
import zlib from 'node:zlib';
import type { Scope } from '../../../observability/stats.js';
import { INERT_FILTER, type HttpFilterFactory, type HttpFilterParseContext } from '../types.js';
import { CompressorFilter } from './filter.js';

export const COMPRESSOR_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor';
export const COMPRESSOR_PER_ROUTE_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.compressor.v3.CompressorPerRoute';
const GZIP = 'type.googleapis.com/envoy.extensions.compression.gzip.compressor.v3.Gzip';
const BROTLI = 'type.googleapis.com/envoy.extensions.compression.brotli.compressor.v3.Brotli';
const ZSTD = 'type.googleapis.com/envoy.extensions.compression.zstd.compressor.v3.Zstd';

type Obj = Record<string, any>;

/** Envoy's list when content_type is empty (the documented eight and the synonyms its code adds). */
const DEFAULT_CONTENT_TYPES: ReadonlySet<string> = new Set([
  'text/html',
  'text/plain',
  'text/css',
  'application/javascript',
  'application/x-javascript',
  'text/javascript',
  'text/x-javascript',
  'text/ecmascript',
  'text/js',
  'text/jscript',
  'text/x-js',
  'application/ecmascript',
  'application/x-json',
  'application/xml',
  'application/json',
  'image/svg+xml',
  'text/xml',
  'application/xhtml+xml',
]);

export interface CompressorConfig {
  /** The content coding the library produces: `gzip` or `br`. */
  readonly encoding: 'gzip' | 'br';
  /** compressor_library.name, a segment of the stat names. */
  readonly libraryName: string;
  /** The library's own stat prefix. */
  readonly statLibrary: 'gzip' | 'brotli';
  /** Without response_direction_config: Envoy's legacy stat tree (no `.response` segment). */
  readonly legacyStats: boolean;
  /** common_config.enabled's default_value (runtime_key is not read: Strait has no runtime). */
  readonly enabled: boolean;
  readonly minLength: number;
  /** Lower-case media types. */
  readonly contentTypes: ReadonlySet<string>;
  readonly disableOnEtag: boolean;
  readonly removeAcceptEncoding: boolean;
  readonly chooseFirst: boolean;
  /** A new streaming compressor with the library's settings, flushing after every chunk. */
  readonly make: () => Transform & { readonly bytesWritten: number };
}

/** CompressorPerRoute: null leaves the filter's own setting. */
export interface CompressorPerRoute {
  /** `disabled: true` → false; `overrides.response_direction_config` present → true (Envoy's reading). */
  readonly enabled: boolean | null;
  readonly removeAcceptEncoding: boolean | null;
}

/** A UInt32Value (a plain number in JSON, `{value}` from some encoders) within [lo, hi], or `dflt` when unset. */
function u32(v: unknown, path: string, lo: number, hi: number, dflt: number, ctx: HttpFilterParseContext): number {
  if (v === undefined || v === null) return dflt;
  const n = typeof v === 'object' ? Number((v as Obj).value ?? 0) : Number(v);
  if (!Number.isInteger(n) || n < lo || n > hi) {
    ctx.errors.push({ path, message: `must be an integer from ${lo} to ${hi}` });
    return dflt;
  }
  return n;
}

function bool(v: unknown): boolean | null {
  if (v === undefined || v === null) return null;
  return typeof v === 'object' ? (v as Obj).value === true : v === true;
}

/** An enum given by name or number; -1 (and an error) when it is neither of `names`. */
function enumOf(v: unknown, path: string, names: readonly string[], ctx: HttpFilterParseContext, aliases: Record<string, number> = {}): number {
  if (v === undefined || v === null) return 0;
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < names.length) return v;
  const i = typeof v === 'string' ? (aliases[v] ?? names.indexOf(v)) : -1;
  if (i < 0) ctx.errors.push({ path, message: `${JSON.stringify(v)} is not one of ${names.join(', ')}` });
  return i;
}

const GZIP_LEVELS = ['DEFAULT_COMPRESSION', 'COMPRESSION_LEVEL_1', 'COMPRESSION_LEVEL_2', 'COMPRESSION_LEVEL_3', 'COMPRESSION_LEVEL_4', 'COMPRESSION_LEVEL_5', 'COMPRESSION_LEVEL_6', 'COMPRESSION_LEVEL_7', 'COMPRESSION_LEVEL_8', 'COMPRESSION_LEVEL_9'];
const GZIP_STRATEGIES = ['DEFAULT_STRATEGY', 'FILTERED', 'HUFFMAN_ONLY', 'RLE', 'FIXED'];
const BROTLI_MODES = ['DEFAULT', 'GENERIC', 'TEXT', 'FONT'];

/**
 * envoy.compression.gzip.compressor.v3.Gzip with Envoy's defaults (memory_level 5, window_bits 12,
 * chunk_size 4096). Every chunk is written with Z_SYNC_FLUSH, as Envoy flushes the compressor on
 * each data frame: a streamed body (server-sent events) reaches the client as it comes.
 */
function gzipLibrary(tc: Obj, path: string, ctx: HttpFilterParseContext): CompressorConfig['make'] | null {
  const start = ctx.errors.length;
  const memLevel = u32(tc.memory_level, `${path}.memory_level`, 1, 9, 5, ctx);
  const level = enumOf(tc.compression_level, `${path}.compression_level`, GZIP_LEVELS, ctx, { BEST_SPEED: 1, BEST_COMPRESSION: 9 });
  const strategy = enumOf(tc.compression_strategy, `${path}.compression_strategy`, GZIP_STRATEGIES, ctx);
  const windowBits = u32(tc.window_bits, `${path}.window_bits`, 9, 15, 12, ctx);
  const chunkSize = u32(tc.chunk_size, `${path}.chunk_size`, 4096, 65536, 4096, ctx);
  if (ctx.errors.length > start) return null;
  const opts: zlib.ZlibOptions = Object.freeze({
    level: level === 0 ? zlib.constants.Z_DEFAULT_COMPRESSION : level,
    memLevel,
    strategy,
    windowBits,
    chunkSize,
    flush: zlib.constants.Z_SYNC_FLUSH,
  });
  return () => zlib.createGzip(opts);
}

/** envoy.compression.brotli.compressor.v3.Brotli with Envoy's defaults (quality 3, window 18, input block 24, chunk 4096), flushed per chunk. */
function brotliLibrary(tc: Obj, path: string, ctx: HttpFilterParseContext): CompressorConfig['make'] | null {
  const start = ctx.errors.length;
  const quality = u32(tc.quality, `${path}.quality`, 0, 11, 3, ctx);
  const mode = enumOf(tc.encoder_mode, `${path}.encoder_mode`, BROTLI_MODES, ctx);
  const lgwin = u32(tc.window_bits, `${path}.window_bits`, 10, 24, 18, ctx);
  const lgblock = u32(tc.input_block_bits, `${path}.input_block_bits`, 16, 24, 24, ctx);
  const chunkSize = u32(tc.chunk_size, `${path}.chunk_size`, 4096, 65536, 4096, ctx);
  if (ctx.errors.length > start) return null;
  const c = zlib.constants;
  const opts: zlib.BrotliOptions = Object.freeze({
    chunkSize,
    flush: c.BROTLI_OPERATION_FLUSH,
    params: Object.freeze({
      [c.BROTLI_PARAM_QUALITY]: quality,
      [c.BROTLI_PARAM_MODE]: mode === 2 ? c.BROTLI_MODE_TEXT : mode === 3 ? c.BROTLI_MODE_FONT : c.BROTLI_MODE_GENERIC,
      [c.BROTLI_PARAM_LGWIN]: lgwin,
      [c.BROTLI_PARAM_LGBLOCK]: lgblock,
      [c.BROTLI_PARAM_DISABLE_LITERAL_CONTEXT_MODELING]: tc.disable_literal_context_modeling === true ? 1 : 0,
    }),
  });
  return () => zlib.createBrotliCompress(opts);
}

/** A CommonDirectionConfig's `enabled` (RuntimeFeatureFlag): its default_value; on when the flag is absent. */
function enabledFlag(f: unknown, path: string, ctx: HttpFilterParseContext): boolean {
  if (f === undefined || f === null) return true;
  const v = bool((f as Obj).default_value);
  if (v === null) {
    ctx.errors.push({ path: `${path}.default_value`, message: 'is required' });
    return true;
  }
  return v;
}

function contentTypes(list: unknown): ReadonlySet<string> {
  const l = Array.isArray(list) ? list.map((t) => String(t).trim().toLowerCase()).filter((t) => t !== '') : [];
  return l.length ? new Set(l) : DEFAULT_CONTENT_TYPES;
}

export function parseCompressor(tc: Obj, path: string, ctx: HttpFilterParseContext): CompressorConfig | typeof INERT_FILTER | null {
  const start = ctx.errors.length;
  const lib = (tc.compressor_library ?? null) as Obj | null;
  const libPath = `${path}.compressor_library`;
  const url = lib?.typed_config?.['@type'];
  if (!lib || typeof url !== 'string' || ![GZIP, BROTLI, ZSTD].includes(url)) {
    const known = [GZIP, BROTLI, ZSTD].join(', ');
    ctx.errors.push({ path: `${libPath}.typed_config`, message: typeof url === 'string' ? `unknown compressor library ${url} (known: ${known})` : `is required (one of ${known})` });
    return null;
  }
  const libraryName = String(lib.name ?? '');
  if (!libraryName) ctx.errors.push({ path: `${libPath}.name`, message: 'is required' });
  const rdc = (tc.response_direction_config ?? null) as Obj | null;
  const rdPath = `${path}.response_direction_config`;
  // Without response_direction_config the deprecated top-level fields say the same things.
  const common = rdc ? ((rdc.common_config ?? {}) as Obj) : null;
  const enabled = common ? enabledFlag(common.enabled, `${rdPath}.common_config.enabled`, ctx) : enabledFlag(tc.runtime_enabled, `${path}.runtime_enabled`, ctx);
  const minLength = common ? u32(common.min_content_length, `${rdPath}.common_config.min_content_length`, 0, 0xffff_ffff, 30, ctx) : u32(tc.content_length, `${path}.content_length`, 0, 0xffff_ffff, 30, ctx);
  const types = contentTypes(common ? common.content_type : tc.content_type);
  const disableOnEtag = (rdc ? rdc.disable_on_etag_header : tc.disable_on_etag_header) === true;
  const removeAcceptEncoding = (rdc ? rdc.remove_accept_encoding_header : tc.remove_accept_encoding_header) === true;
  const rq = (tc.request_direction_config ?? null) as Obj | null;
  // Request bodies are not compressed yet: a config that turns it on is refused rather than ignored.
  if (rq && enabledFlag(rq.common_config?.enabled, `${path}.request_direction_config.common_config.enabled`, ctx)) {
    ctx.errors.push({ path: `${path}.request_direction_config`, message: 'request compression is not supported yet (set common_config.enabled.default_value false or leave request_direction_config out)' });
  }
  if (url === ZSTD) {
    // Node 20's zlib has no zstd: the filter is checked, then left out of the chain, so a chain
    // that also offers br or gzip negotiates among those (a client asking zstd first gets its
    // next choice, or identity).
    if (ctx.errors.length > start) return null;
    ctx.warnings.push({ path: `${libPath}.typed_config`, message: 'zstd compression is not available (Node.js has no zstd); this filter never compresses and the chain negotiates among its other compressors' });
    return INERT_FILTER;
  }
  const tcPath = `${libPath}.typed_config`;
  const make = url === GZIP ? gzipLibrary(lib.typed_config as Obj, tcPath, ctx) : brotliLibrary(lib.typed_config as Obj, tcPath, ctx);
  if (ctx.errors.length > start || make === null) return null;
  return Object.freeze({
    encoding: url === GZIP ? 'gzip' : 'br',
    libraryName,
    statLibrary: url === GZIP ? 'gzip' : 'brotli',
    legacyStats: rdc === null,
    enabled,
    minLength,
    contentTypes: types,
    disableOnEtag,
    removeAcceptEncoding,
    chooseFirst: tc.choose_first === true,
    make: make as CompressorConfig['make'],
  });
}

export function parseCompressorPerRoute(tc: Obj, path: string, ctx: HttpFilterParseContext): CompressorPerRoute | null {
  if (tc.disabled !== undefined && tc.disabled !== null && tc.disabled !== false) {
    if (tc.disabled !== true) {
      ctx.errors.push({ path: `${path}.disabled`, message: 'must be true' });
      return null;
    }
    return Object.freeze({ enabled: false, removeAcceptEncoding: null });
  }
  const o = (tc.overrides ?? null) as Obj | null;
  if (!o) {
    ctx.errors.push({ path, message: tc.disabled === false ? 'disabled must be true (or set overrides)' : 'needs disabled: true or overrides' });
    return null;
  }
  const r = (o.response_direction_config ?? null) as Obj | null;
  // Envoy: a response_direction_config in the overrides turns response compression on for the route.
  return Object.freeze({ enabled: r ? true : null, removeAcceptEncoding: r ? bool(r.remove_accept_encoding_header) : null });
}

export const compressorFactory = {
  name: 'envoy.filters.http.compressor',
  typeUrls: [COMPRESSOR_TYPE],
  parse: parseCompressor,
  create: (config: CompressorConfig | typeof INERT_FILTER, scope: Scope, _root: Scope, name?: string) => {
    if (config === INERT_FILTER) throw new Error('an inert HTTP filter is never created');
    return new CompressorFilter(config, scope, name ?? 'envoy.filters.http.compressor');
  },
  perRoute: {
    typeUrls: [COMPRESSOR_PER_ROUTE_TYPE],
    parse: parseCompressorPerRoute,
  },
} satisfies HttpFilterFactory<CompressorConfig | typeof INERT_FILTER>;
