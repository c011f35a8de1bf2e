import { describe, expect, it } from 'vitest';
import type { FieldError } from '../../../src/errors.js';
import { httpConnectionManagerFactory, type HcmConfig } from '../../../src/filters/network/http_connection_manager/config.js';

const ROUTER = { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } };
const RC = { virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'a' } }] }] };

function parse(tc: Record<string, unknown>): { config: HcmConfig | null; errors: FieldError[]; warnings: FieldError[] } {
  const errors: FieldError[] = [];
  const warnings: FieldError[] = [];
  const config = httpConnectionManagerFactory.parse({ stat_prefix: 's', http_filters: [ROUTER], route_config: RC, ...tc }, 'tc', { clusterNames: new Set(['a']), errors, warnings });
  return { config, errors, warnings };
}

describe('http_connection_manager config', () => {
  it('applies Envoy defaults and freezes the result', () => {
    const { config, errors } = parse({});
    expect(errors).toEqual([]);
    expect(config).toMatchObject({
      statPrefix: 's',
      codec: 'AUTO',
      acceptHttp10: false,
      useRemoteAddress: false,
      generateRequestId: true,
      serverName: 'envoy',
      serverHeaderTransformation: 'OVERWRITE',
      idleTimeoutMs: 3_600_000,
      requestHeadersTimeoutMs: 0,
      limits: { maxHeadBytes: 60 * 1024, maxHeaders: 100 },
    });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('reads limits, timeouts and header options', () => {
    const { config } = parse({
      max_request_headers_kb: 8,
      common_http_protocol_options: { max_headers_count: 20, idle_timeout: '0.250s', max_stream_duration: '30s' },
      request_headers_timeout: '2s',
      use_remote_address: true,
      server_name: 'edge',
      http2_protocol_options: { max_concurrent_streams: 50 },
    });
    expect(config!.limits).toEqual({ maxHeadBytes: 8192, maxHeaders: 20 });
    expect(config!.idleTimeoutMs).toBe(250);
    expect(config!.maxStreamDurationMs).toBe(30_000);
    expect(config!.requestHeadersTimeoutMs).toBe(2000);
    expect(config!.useRemoteAddress).toBe(true);
    expect(config!.serverName).toBe('edge');
    expect(config!.h2Settings).toEqual({ maxConcurrentStreams: 50 });
  });

  it('reports every unsupported field with its path and returns null', () => {
    const { config, errors, warnings } = parse({
      rds: { route_config_name: 'r' },
      upgrade_configs: [{ upgrade_type: 'websocket' }, { upgrade_type: 'CONNECT' }],
      codec_type: 'HTTP3',
      forward_client_cert_details: 'APPEND_FORWARD',
      http_filters: [{ name: 'envoy.filters.http.jwt_authn', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication' } }, ROUTER],
      access_log: [{}],
    });
    expect(config).toBeNull();
    expect(errors.map((e) => e.path)).toEqual(
      expect.arrayContaining(['tc.rds', 'tc.upgrade_configs[1].upgrade_type', 'tc.codec_type', 'tc.http_filters[0]']),
    );
    // access_log is implemented now: an entry without a logger type is an error, not a warning.
    expect(errors.map((e) => e.path)).toContain('tc.access_log[0].name');
    expect(warnings.map((w) => w.path)).not.toContain('tc.access_log');
  });

  it("accepts the fields Istio sets on every HCM where Strait behaves as they ask", () => {
    const uuid = { typed_config: { '@type': 'type.googleapis.com/envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig', use_request_id_for_trace_sampling: true } };
    const { config, errors, warnings } = parse({ normalize_path: true, stream_idle_timeout: '0s', request_timeout: '0s', path_with_escaped_slashes_action: 'KEEP_UNCHANGED', request_id_extension: uuid });
    expect(errors).toEqual([]);
    expect(config!.normalizePath).toBe(true);
    // What the UUID extension would do beyond generating ids is said, not silently dropped.
    expect(warnings.map((w) => w.path)).toEqual(['tc.request_id_extension.typed_config.pack_trace_reason', 'tc.request_id_extension.typed_config.use_request_id_for_trace_sampling']);
    expect(parse({}).config!.normalizePath).toBe(false);
  });

  it('reads forward_client_cert_details and set_current_client_cert_details', () => {
    expect(parse({}).config!.xfcc).toEqual({ mode: 'SANITIZE', subject: false, cert: false, chain: false, uri: false, dns: false });
    const { config, errors } = parse({ forward_client_cert_details: 'APPEND_FORWARD', set_current_client_cert_details: { subject: { value: true }, uri: true, dns: true } });
    expect(errors).toEqual([]);
    expect(config!.xfcc).toEqual({ mode: 'APPEND_FORWARD', subject: true, cert: false, chain: false, uri: true, dns: true });
    expect(parse({ forward_client_cert_details: 'FORWARD_ALL' }).errors.map((e) => e.path)).toEqual(['tc.forward_client_cert_details']);
    expect(parse({ set_current_client_cert_details: { cert: true, chain: { value: true } } }).config!.xfcc).toMatchObject({ cert: true, chain: true });
  });

  it('reads stream_idle_timeout and request_timeout (unset: off)', () => {
    const { config, errors } = parse({ stream_idle_timeout: '300s', request_timeout: { seconds: 5 } });
    expect(errors).toEqual([]);
    expect([config!.streamIdleTimeoutMs, config!.requestTimeoutMs]).toEqual([300_000, 5_000]);
    expect([parse({}).config!.streamIdleTimeoutMs, parse({ stream_idle_timeout: '0s' }).config!.streamIdleTimeoutMs]).toEqual([0, 0]);
  });

  it('refuses the values of those fields Strait does not implement, by path', () => {
    const { config, errors } = parse({
      path_with_escaped_slashes_action: 'UNESCAPE_ALL_OF_IT',
      request_id_extension: { typed_config: { '@type': 'type.googleapis.com/example.OtherRequestId' } },
    });
    expect(config).toBeNull();
    expect(errors.map((e) => e.path)).toEqual(['tc.path_with_escaped_slashes_action', 'tc.request_id_extension.typed_config']);
  });

  it('puts cors and grpc_stats in the chain and accepts CORS policies in both forms', () => {
    const cors = { name: 'envoy.filters.http.cors', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors' } };
    const grpcStats = { name: 'envoy.filters.http.grpc_stats', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.grpc_stats.v3.FilterConfig', emit_filter_state: true } };
    const { config, errors, warnings } = parse({ http_filters: [grpcStats, cors, ROUTER] });
    expect(errors).toEqual([]);
    expect(config!.httpFilters!.map((f) => f.name)).toEqual(['envoy.filters.http.grpc_stats', 'envoy.filters.http.cors']);
    // Only emit_filter_state is warned about: nothing in Strait reads filter state.
    expect(warnings.map((w) => w.path)).toEqual(['tc.http_filters[0].typed_config.emit_filter_state']);
    // CORS policies (once refused): typed per route, and the older fields on routes and virtual hosts.
    const policy = { 'envoy.filters.http.cors': { '@type': 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy', allow_origin_string_match: [{ exact: 'https://a.example' }] } };
    const withPolicy = { virtual_hosts: [{ name: 'v', domains: ['*'], typed_per_filter_config: policy, cors: { allow_methods: 'GET' }, routes: [{ match: { prefix: '/' }, route: { cluster: 'a', cors: { allow_methods: 'GET' } } }] }] };
    const accepted = parse({ http_filters: [cors, ROUTER], route_config: withPolicy });
    expect(accepted.errors).toEqual([]);
    expect(accepted.config).not.toBeNull();
    // A bad one is refused by its field path.
    const bad = { virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'a', cors: { allow_origin_string_match: [{ safe_regex: { regex: '(' } }] } } }] }] };
    expect(parse({ http_filters: [cors, ROUTER], route_config: bad }).errors.map((e) => e.path)).toEqual(['tc.route_config.virtual_hosts[0].routes[0].route.cors.allow_origin_string_match[0].safe_regex.regex']);
  });

  it('puts gzip and brotli compressors in the chain, leaves zstd out with a warning, and refuses an unknown library', () => {
    const compressor = (name: string, lib: string) => ({
      name: `envoy.filters.http.compressor.${name}`,
      typed_config: {
        '@type': 'type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor',
        compressor_library: { name, typed_config: { '@type': `type.googleapis.com/envoy.extensions.compression.${lib}` } },
        response_direction_config: { common_config: { content_type: ['text/plain'] } },
      },
    });
    const { config, errors, warnings } = parse({ http_filters: [compressor('br', 'brotli.compressor.v3.Brotli'), compressor('zstd', 'zstd.compressor.v3.Zstd'), compressor('gzip', 'gzip.compressor.v3.Gzip'), ROUTER] });
    expect(errors).toEqual([]);
    expect(config!.httpFilters!.map((f) => f.name)).toEqual(['envoy.filters.http.compressor.br', 'envoy.filters.http.compressor.gzip']);
    expect(warnings.map((w) => w.path)).toEqual(['tc.http_filters[1].typed_config.compressor_library.typed_config']);
    const bad = parse({ http_filters: [compressor('lz4', 'lz4.compressor.v3.Lz4'), ROUTER] });
    expect(bad.config).toBeNull();
    expect(bad.errors.map((e) => e.path)).toEqual(['tc.http_filters[0].typed_config.compressor_library.typed_config']);
  });

  it('reads local_reply_config and refuses what it cannot do by path', () => {
    const mapper = { filter: { status_code_filter: { comparison: { value: { default_value: 503 } } } }, status_code: 500, body: { inline_string: 'x' } };
    const ok = parse({ local_reply_config: { mappers: [mapper], body_format: { text_format: '%LOCAL_REPLY_BODY%' } } });
    expect(ok.errors).toEqual([]);
    expect(ok.config!.localReply).not.toBeNull();
    expect(parse({}).config!.localReply).toBeNull();
    const bad = parse({
      local_reply_config: {
        mappers: [{ ...mapper, status_code: 99 }, { body: { inline_string: 'y' } }, { ...mapper, body: { filename: '/etc/hosts' } }, { ...mapper, headers_to_add: [{ header: { key: ':status', value: '1' } }] }],
        body_format: { content_type: 'text/html' },
      },
    });
    expect(bad.config).toBeNull();
    expect(bad.errors.map((e) => e.path)).toEqual([
      'tc.local_reply_config.mappers[0].status_code',
      'tc.local_reply_config.mappers[1].filter',
      'tc.local_reply_config.mappers[2].body',
      'tc.local_reply_config.mappers[3].headers_to_add[0].header.key',
      'tc.local_reply_config.body_format',
    ]);
  });

  it('validates the HTTP filters before the router with their own factories', () => {
    const fault = { name: 'envoy.filters.http.fault', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault' } };
    // An empty HTTPFault is valid (Istio's shape: the faults are on routes); a bad one is not.
    expect(parse({ http_filters: [fault, ROUTER] }).errors).toEqual([]);
    expect(parse({ http_filters: [{ ...fault, typed_config: { ...fault.typed_config, abort: { http_status: 700 } } }, ROUTER] }).errors.map((e) => e.path)).toEqual(['tc.http_filters[0].typed_config.abort.http_status']);
    const ok = parse({ http_filters: [{ ...fault, typed_config: { ...fault.typed_config, abort: { http_status: 503 } } }, ROUTER] });
    expect(ok.config!.httpFilters.map((f) => f.factory.name)).toEqual(['envoy.filters.http.fault']);
  });

  it('needs the router, last', () => {
    expect(parse({ http_filters: [] }).errors[0]!.path).toBe('tc.http_filters');
  });
});
