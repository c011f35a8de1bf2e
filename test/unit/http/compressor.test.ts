// envoy.filters.http.compressor in memory: Accept-Encoding negotiation (Envoy's chooseEncoding),
// the per-response decision and header edits of each filter in a chain, config errors by field
// path, and CompressorPerRoute. The bytes themselves are checked end to end in
// test/integration/http_compressor.test.ts.
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { FieldError } from '../../../src/errors.js';
import { compressorFactory, type CompressorConfig } from '../../../src/filters/http/compressor/config.js';
import { chooseEncoding, HeaderStat, parseAcceptEncoding, type EncodingOffer } from '../../../src/filters/http/compressor/negotiate.js';
import { INERT_FILTER, PER_ROUTE_DISABLED, type HttpFilterRequest } from '../../../src/filters/http/types.js';
import { StatsStore } from '../../../src/observability/stats.js';

type Obj = Record<string, any>;
type Headers = Record<string, string | string[] | undefined>;

const LIB = {
  gzip: 'type.googleapis.com/envoy.extensions.compression.gzip.compressor.v3.Gzip',
  br: 'type.googleapis.com/envoy.extensions.compression.brotli.compressor.v3.Brotli',
  zstd: 'type.googleapis.com/envoy.extensions.compression.zstd.compressor.v3.Zstd',
};

const offer = (encoding: string, types = ['text/plain'], chooseFirst = false): EncodingOffer => ({ encoding, contentTypes: new Set(types), chooseFirst });

function parse(tc: Obj): { config: CompressorConfig | typeof INERT_FILTER | null; errors: FieldError[]; warnings: FieldError[] } {
  const errors: FieldError[] = [];
  const warnings: FieldError[] = [];
  return { config: compressorFactory.parse(tc, 'f', { errors, warnings }), errors, warnings };
}

function config(lib: keyof typeof LIB, rdc: Obj = {}, extra: Obj = {}): Obj {
  return { compressor_library: { name: lib, typed_config: { '@type': LIB[lib] } }, response_direction_config: rdc, ...extra };
}

/** A chain of compressor filters over one stats store; `respond` runs a request and its response through them. */
function chain(...tcs: Obj[]) {
  const store = new StatsStore();
  const scope = store.root.scope('http').scope('s');
  // As the connection manager builds the chain: an inert filter (zstd) is left out.
  const filters = tcs.flatMap((tc, i) => {
    const { config: c, errors } = parse(tc);
    expect(errors).toEqual([]);
    return c === INERT_FILTER ? [] : [compressorFactory.create(c as CompressorConfig, scope, scope, `c${i}`)];
  });
  return {
    stat: (lib: string, name: string, legacy = false) => (store.get(`http.s.compressor.${lib}.${lib === 'gzip' ? 'gzip' : 'brotli'}${legacy ? '' : '.response'}.${name}`)?.value as number | undefined) ?? 0,
    request(ae: string | undefined, perRoute: Map<string, unknown> | null = null, method = 'GET', extra: Record<string, string> = {}): HttpFilterRequest {
      const h: Record<string, string | undefined> = { 'accept-encoding': ae, ...extra };
      const req: HttpFilterRequest = { method, path: '/', header: (n) => h[n], grpc: false, perRoute };
      for (const f of filters) expect(f.onRequest(req)).toBeNull();
      return req;
    },
    /** The response head as the client gets it, and whether a body transform was made. */
    respond(req: HttpFilterRequest, head: Headers, endStream = false): { headers: Headers; z: zlib.Gzip | zlib.BrotliCompress | null } {
      const headers: Headers = { ':status': '200', ...head };
      const z = req.responseBody ? req.responseBody.onResponseHeaders(200, headers, endStream) : null;
      z?.destroy();
      return { headers, z: z as zlib.Gzip | null };
    },
  };
}

const TEXT = { 'content-type': 'text/plain', 'content-length': '1000' };

describe('Accept-Encoding', () => {
  it('parses codings and q-values, dropping entries with a bad weight', () => {
    expect(parseAcceptEncoding('gzip, br;q=0.5 , *;q=0, identity;q=1.0')).toEqual([
      ['gzip', 1],
      ['br', 0.5],
      ['*', 0],
      ['identity', 1],
    ]);
    expect(parseAcceptEncoding('GZip;Q=0.3, br;q=x, deflate;q=, zstd;q=2, , x;level=1;q=0.2')).toEqual([
      ['gzip', 0.3],
      ['x', 0.2],
    ]);
  });

  it("chooses the client's highest q-value among the chain's codings, the first listed on a tie", () => {
    const chain = [offer('br'), offer('gzip')];
    expect(chooseEncoding('gzip, br', chain, 'text/plain')).toEqual({ encoding: 'gzip', stat: HeaderStat.VALID });
    expect(chooseEncoding('br, gzip', chain, 'text/plain')).toEqual({ encoding: 'br', stat: HeaderStat.VALID });
    expect(chooseEncoding('br;q=0.5, gzip;q=0.8', chain, 'text/plain').encoding).toBe('gzip');
    // A coding the chain lacks is passed over; zstd is never offered (Node has none).
    expect(chooseEncoding('zstd, br;q=0.9', chain, 'text/plain').encoding).toBe('br');
  });

  it('reads * as the first coding of the chain not refused, and identity or nothing as no compression', () => {
    const chain = [offer('br'), offer('gzip')];
    expect(chooseEncoding('*', chain, 'text/plain')).toEqual({ encoding: 'br', stat: HeaderStat.WILDCARD });
    expect(chooseEncoding('br;q=0, *', chain, 'text/plain')).toEqual({ encoding: 'gzip', stat: HeaderStat.WILDCARD });
    // RFC 9110's example: gzip refused, anything else welcome — gzip may not be chosen.
    expect(chooseEncoding('gzip;q=0, *', [offer('gzip')], 'text/plain').stat).toBe(HeaderStat.NOT_VALID);
    expect(chooseEncoding('identity, gzip;q=0.5', chain, 'text/plain')).toEqual({ encoding: 'identity', stat: HeaderStat.IDENTITY });
    expect(chooseEncoding('identity;q=0', chain, 'text/plain').stat).toBe(HeaderStat.NOT_VALID);
    expect(chooseEncoding('deflate', chain, 'text/plain').stat).toBe(HeaderStat.NOT_VALID);
    expect(chooseEncoding('', chain, 'text/plain').stat).toBe(HeaderStat.NOT_VALID);
  });

  it("leaves out a filter whose content types do not take the response's, and honours choose_first on ties", () => {
    const chain = [offer('br', ['text/html']), offer('gzip', ['application/json'])];
    expect(chooseEncoding('br, gzip', chain, 'application/json').encoding).toBe('gzip');
    // No content type: every filter takes part.
    expect(chooseEncoding('br, gzip', chain, '').encoding).toBe('br');
    const first = [offer('br'), offer('gzip', ['text/plain'], true)];
    expect(chooseEncoding('br, gzip', first, 'text/plain').encoding).toBe('gzip');
    expect(chooseEncoding('br, gzip;q=0.9', first, 'text/plain').encoding).toBe('br');
  });
});

describe('the response decision', () => {
  it('compresses a compressible response: content-encoding set, length gone, Vary appended, strong ETag weakened', () => {
    const c = chain(config('gzip'));
    const { headers, z } = c.respond(c.request('gzip'), { ...TEXT, etag: '"abc"', vary: 'Origin' });
    expect(z).toBeInstanceOf(zlib.Gzip);
    expect(headers['content-encoding']).toBe('gzip');
    expect(headers['content-length']).toBeUndefined();
    expect(headers.vary).toBe('Origin, Accept-Encoding');
    expect(headers.etag).toBe('W/"abc"');
    expect(c.stat('gzip', 'compressed')).toBe(1);
    expect(c.stat('gzip', 'header_compressor_used')).toBe(1);
    // A weak ETag stays as it is; Vary already naming Accept-Encoding is left alone.
    const weak = c.respond(c.request('gzip'), { ...TEXT, etag: 'W/"x"', vary: 'accept-encoding' }).headers;
    expect(weak.etag).toBe('W/"x"');
    expect(weak.vary).toBe('accept-encoding');
  });

  it('passes what it must not compress, counting why', () => {
    const c = chain(config('gzip', { common_config: { min_content_length: 100 }, disable_on_etag_header: true }));
    const cases: Array<[Headers, string | null]> = [
      [{ 'content-type': 'image/png', 'content-length': '5000' }, null],
      [{ 'content-type': 'text/plain', 'content-length': '99' }, 'content_length_too_small'],
      [{ ...TEXT, etag: '"v"' }, 'not_compressed_etag'],
      [{ ...TEXT, 'cache-control': 'max-age=1, No-Transform' }, null],
      [{ ...TEXT, 'content-encoding': 'br' }, null],
      [{ ...TEXT, 'transfer-encoding': 'gzip, chunked' }, null],
    ];
    for (const [head, stat] of cases) {
      const before = stat ? c.stat('gzip', stat) : 0;
      const { headers, z } = c.respond(c.request('gzip'), head);
      expect(z).toBeNull();
      expect(headers['content-encoding']).toBe(head['content-encoding']);
      expect(headers['content-length']).toBe(head['content-length']);
      if (stat) expect(c.stat('gzip', stat)).toBe(before + 1);
    }
    expect(c.stat('gzip', 'not_compressed')).toBe(cases.length);
    expect(c.stat('gzip', 'compressed')).toBe(0);
    // The default type list has Envoy's synonyms; parameters and case do not matter; no content-type is allowed.
    expect(c.respond(c.request('gzip'), { 'content-type': 'Application/JSON; charset=utf-8', 'content-length': '500' }).z).not.toBeNull();
    expect(c.respond(c.request('gzip'), { 'content-length': '500' }).z).not.toBeNull();
    // Without a length the body may be any size.
    expect(c.respond(c.request('gzip'), { 'content-type': 'text/html' }).z).not.toBeNull();
  });

  it('never compresses a response without a body (HEAD, 204, 304: the head ends the stream)', () => {
    const c = chain(config('gzip'));
    const { headers, z } = c.respond(c.request('gzip', null, 'HEAD'), TEXT, true);
    expect(z).toBeNull();
    expect(headers['content-length']).toBe('1000');
    expect(headers['content-encoding']).toBeUndefined();
    // Still compressible, so Vary is added as Envoy does.
    expect(headers.vary).toBe('Accept-Encoding');
  });

  it('counts the request side of the negotiation: no header, identity, wildcard, not valid', () => {
    const c = chain(config('gzip'));
    c.respond(c.request(undefined), TEXT);
    c.respond(c.request('identity'), TEXT);
    c.respond(c.request('*'), TEXT);
    c.respond(c.request('gzip;q=0'), TEXT);
    expect(['no_accept_header', 'header_identity', 'header_wildcard', 'header_not_valid', 'compressed'].map((n) => c.stat('gzip', n))).toEqual([1, 1, 1, 1, 1]);
  });

  it("lets several filters in one chain settle on the client's preferred coding (Istio's shape)", () => {
    const types = { common_config: { content_type: ['text/plain'] } };
    const c = chain(config('br', types), config('zstd', types), config('gzip', types));
    // zstd is checked and left out of the chain.
    expect(parse(config('zstd')).config).toBe(INERT_FILTER);
    let r = c.respond(c.request('br, gzip'), TEXT);
    expect(r.z).toBeInstanceOf(zlib.BrotliCompress);
    expect(r.headers['content-encoding']).toBe('br');
    expect(r.headers.vary).toBe('Accept-Encoding');
    expect(c.stat('br', 'compressed')).toBe(1);
    expect(c.stat('gzip', 'header_compressor_overshadowed')).toBe(1);
    expect(c.stat('gzip', 'not_compressed')).toBe(1);
    r = c.respond(c.request('zstd, gzip;q=0.5, br;q=0.4'), TEXT);
    expect(r.headers['content-encoding']).toBe('gzip');
    expect(c.stat('gzip', 'compressed')).toBe(1);
  });

  it('takes Accept-Encoding off the upstream request with remove_accept_encoding_header, and leaves upgrades alone', () => {
    const c = chain(config('gzip', { remove_accept_encoding_header: true }));
    const req = c.request('gzip');
    expect(req.upstreamHeaders?.remove).toEqual(['accept-encoding']);
    const ws = c.request('gzip', null, 'GET', { upgrade: 'websocket' });
    expect(ws.responseBody).toBeUndefined();
    expect(ws.upstreamHeaders).toBeUndefined();
  });

  it('reads the deprecated top-level fields, with the legacy stat names, when response_direction_config is absent', () => {
    const tc = { compressor_library: { name: 'gzip', typed_config: { '@type': LIB.gzip } }, content_length: 2000, content_type: ['text/css'] };
    const c = chain(tc);
    expect(c.respond(c.request('gzip'), { 'content-type': 'text/css', 'content-length': '1999' }).z).toBeNull();
    expect(c.respond(c.request('gzip'), { 'content-type': 'text/css', 'content-length': '2000' }).z).not.toBeNull();
    expect(c.stat('gzip', 'compressed', true)).toBe(1);
    expect(c.stat('gzip', 'content_length_too_small', true)).toBe(1);
  });
});

describe('CompressorPerRoute', () => {
  const perRoute = (tc: Obj) => {
    const errors: FieldError[] = [];
    return { v: compressorFactory.perRoute.parse(tc, 'r', { errors, warnings: [] }), errors };
  };

  it('turns compression off for a route with disabled, on with overrides', () => {
    const c = chain(config('gzip'), config('br', { common_config: { enabled: { default_value: false, runtime_key: 'k' } } }));
    const off = c.respond(c.request('gzip', new Map([['c0', perRoute({ disabled: true }).v]])), TEXT);
    expect(off.z).toBeNull();
    expect(off.headers['content-encoding']).toBeUndefined();
    // A FilterConfig `disabled: true` skips the filter in the chain instead (chain.ts): nothing to do here.
    expect(PER_ROUTE_DISABLED).toBeTypeOf('symbol');
    // br is off at the filter level; an override with response_direction_config turns it on for its route.
    expect(c.respond(c.request('br'), TEXT).z).toBeNull();
    const on = c.respond(c.request('br', new Map([['c1', perRoute({ overrides: { response_direction_config: { remove_accept_encoding_header: true } } }).v]])), TEXT);
    expect(on.headers['content-encoding']).toBe('br');
  });

  it('refuses a per-route config that says nothing', () => {
    expect(perRoute({}).errors.map((e) => e.path)).toEqual(['r']);
    expect(perRoute({ disabled: 'yes' }).errors.map((e) => e.path)).toEqual(['r.disabled']);
  });
});

describe('config errors', () => {
  it('lists every bad field with its path', () => {
    const { config: c, errors } = parse({
      compressor_library: { name: '', typed_config: { '@type': LIB.gzip, memory_level: 10, window_bits: 8, chunk_size: 100, compression_level: 'LOUD' } },
      response_direction_config: { common_config: { enabled: { runtime_key: 'x' } } },
      request_direction_config: { common_config: {} },
    });
    expect(c).toBeNull();
    expect(errors.map((e) => e.path).sort()).toEqual(
      [
        'f.compressor_library.name',
        'f.compressor_library.typed_config.memory_level',
        'f.compressor_library.typed_config.window_bits',
        'f.compressor_library.typed_config.chunk_size',
        'f.compressor_library.typed_config.compression_level',
        'f.response_direction_config.common_config.enabled.default_value',
        'f.request_direction_config',
      ].sort(),
    );
    const br = parse({ compressor_library: { name: 'b', typed_config: { '@type': LIB.br, quality: 12, window_bits: 25, input_block_bits: 15, encoder_mode: 'LOUD' } } });
    expect(br.errors.map((e) => e.path)).toEqual(['quality', 'encoder_mode', 'window_bits', 'input_block_bits'].map((f) => `f.compressor_library.typed_config.${f}`));
    expect(parse({ compressor_library: { name: 'l', typed_config: { '@type': 'type.googleapis.com/x.Lz4' } } }).errors.map((e) => e.path)).toEqual(['f.compressor_library.typed_config']);
    expect(parse({}).errors.map((e) => e.path)).toEqual(['f.compressor_library.typed_config']);
  });

  it('accepts request compression turned off, and zstd with a warning', () => {
    expect(parse(config('gzip', {}, { request_direction_config: { common_config: { enabled: { default_value: false, runtime_key: 'r' } } } })).errors).toEqual([]);
    const z = parse(config('zstd'));
    expect(z.config).toBe(INERT_FILTER);
    expect(z.warnings.map((w) => w.message)).toEqual([expect.stringContaining('zstd compression is not available')]);
  });
});
