import { durationMs } from '../../../config/values.js';
import type { FieldError } from '../../../errors.js';
import { FORWARD_CLIENT_CERT, type ForwardClientCert, type XfccConfig } from './xfcc.js';
import { findHttpFilter } from '../../http/registry.js';
import { INERT_FILTER, type HttpFilterFactory } from '../../http/types.js';
import { parseLocalReplyConfig, type LocalReplyConfig } from './local_reply.js';
import type { EscapedSlashesAction } from './normalize_path.js';
import { DEFAULT_LIMITS, type ParseLimits } from '../../../protocols/http1/decoder.js';
import { HttpRouteTable } from '../../../router/http_route_table.js';
import type { FactoryContext, NetworkFilterFactory } from '../types.js';
import { HttpConnectionManagerFilter } from './filter.js';
import { fileRdsTable, type RouteLookup } from './rds.js';
import { parseTracing, type TracingConfig } from '../../../observability/tracing/config.js';
import { parseAccessLogs, type AccessLogSpec } from '../../../observability/access_log/config.js';
import { Underscores, underscoresOf } from './underscores.js';

export const HCM_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const ROUTER_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';

export type CodecType = 'AUTO' | 'HTTP1' | 'HTTP2';
export type ServerHeaderTransformation = 'OVERWRITE' | 'APPEND_IF_ABSENT' | 'PASS_THROUGH';

export interface HcmConfig {
  readonly statPrefix: string;
  readonly codec: CodecType;
  /** The route_config, or the RDS subscription's current table (read once per request). */
  readonly routes: RouteLookup;
  readonly limits: ParseLimits;
  readonly acceptHttp10: boolean;
  /** http_protocol_options.allow_absolute_url (Envoy's default: true): absolute-form targets. */
  readonly allowAbsoluteUrl: boolean;
  readonly useRemoteAddress: boolean;
  readonly skipXffAppend: boolean;
  readonly generateRequestId: boolean;
  readonly alwaysSetRequestIdInResponse: boolean;
  readonly serverName: string;
  readonly serverHeaderTransformation: ServerHeaderTransformation;
  readonly stripAnyHostPort: boolean;
  /** strip_matching_host_port: the port goes only when it is the one the connection came to. */
  readonly stripMatchingHostPort: boolean;
  /** Downstream connection idle timeout (no request in flight); 0 disables. */
  readonly idleTimeoutMs: number;
  /** From the first byte of a head to its end; 0 disables. */
  readonly requestHeadersTimeoutMs: number;
  /** Send `100 Continue` upstream's way instead of answering it ourselves. */
  readonly proxy100Continue: boolean;
  /** stream_idle_timeout and request_timeout (stream_timeouts.ts); 0 = off. */
  readonly streamIdleTimeoutMs: number;
  readonly requestTimeoutMs: number;
  /** common_http_protocol_options.headers_with_underscores_action (underscores.ts). */
  readonly underscores: Underscores;
  /** common_http_protocol_options.max_stream_duration; 0 = none. A route's max_stream_duration overrides it. */
  readonly maxStreamDurationMs: number;
  /** common_http_protocol_options.max_connection_duration: a downstream connection is drained after it; 0 = none. */
  readonly maxConnectionDurationMs: number;
  /** common_http_protocol_options.max_requests_per_connection: the last request's connection is drained; 0 = none. */
  readonly maxRequestsPerConnection: number;
  /** normalize_path: paths made canonical (normalize_path.ts) before filters, routing and the upstream. */
  readonly normalizePath: boolean;
  /** merge_slashes: `//` in the path becomes `/` (after normalize_path). */
  readonly mergeSlashes: boolean;
  /** path_with_escaped_slashes_action (IMPLEMENTATION_SPECIFIC_DEFAULT read as KEEP_UNCHANGED). */
  readonly escapedSlashes: EscapedSlashesAction;
  /** Any of the three above: paths go through preparePath. */
  readonly pathWork: boolean;
  /** forward_client_cert_details and set_current_client_cert_details (xfcc.ts). */
  readonly xfcc: XfccConfig;
  /** HTTP filters before the router, in order (fault, local rate limit); empty when there are none. */
  /** `name` is the filter's name in the chain: its routes' per-route configs are under it. */
  /** `disabled`: off unless a route's typed_per_filter_config turns it on (Envoy's `disabled: true`). */
  readonly httpFilters: ReadonlyArray<{ readonly factory: HttpFilterFactory<any>; readonly config: unknown; readonly name: string; readonly disabled: boolean }>;
  /** Upgrade protocols (lower-case `Upgrade` values) upgrade_configs enables, e.g. `websocket`. */
  readonly upgrades: ReadonlySet<string>;
  /** Downstream HTTP/2 settings from http2_protocol_options. */
  readonly h2Settings: Readonly<{ maxConcurrentStreams?: number; initialWindowSize?: number }>;
  /** `tracing` with a Zipkin or OpenTelemetry (OTLP/HTTP) provider; null = no spans (trace headers still pass through untouched). */
  readonly tracing: TracingConfig | null;
  /** `access_log`: one line per request; null when there is none (no entry is ever built). */
  readonly accessLogs: readonly AccessLogSpec[] | null;
  /** `local_reply_config`: how Strait's own replies are rewritten; null = as made. */
  readonly localReply: LocalReplyConfig | null;
}

type Obj = Record<string, any>;

const ESCAPED_SLASHES_ACTIONS = new Set<string>(['KEEP_UNCHANGED', 'REJECT_REQUEST', 'UNESCAPE_AND_REDIRECT', 'UNESCAPE_AND_FORWARD']);

/** Fields that change traffic and that Strait does not implement yet: refuse rather than ignore. */
const UNSUPPORTED = [
  'scoped_routes',
  'original_ip_detection_extensions',
  'early_header_mutation_extensions',
  'via',
  'internal_address_config',
  'xff_num_trusted_hops',
  'path_normalization_options',
  'typed_header_validation_config',
  'http3_protocol_options',
  'max_request_headers_kb_per_stream',
  'proxy_status_config',
  'add_proxy_protocol_connection_state',
  'http1_safe_max_connection_duration',
] as const;

/** Defaults Envoy applies that are harmless to leave out: noted, not applied. */
const IGNORED = ['access_log_options', 'drain_timeout', 'delayed_close_timeout', 'add_user_agent', 'user_agent', 'generate_request_id_extension'] as const;

const DEFAULT_IDLE_MS = 3_600_000;

function parse(tc: Obj, path: string, ctx: FactoryContext): HcmConfig | null {
  const errors = ctx.errors;
  const start = errors.length;
  for (const f of UNSUPPORTED) {
    const v = tc[f];
    if (v === undefined || v === null || v === false || (Array.isArray(v) && v.length === 0)) continue;
    errors.push({ path: `${path}.${f}`, message: 'is not supported yet' });
  }
  for (const f of IGNORED) {
    if (tc[f] !== undefined && tc[f] !== null) ctx.warnings.push({ path: `${path}.${f}`, message: 'is not implemented yet; ignored' });
  }
  const slashes = String(tc.path_with_escaped_slashes_action ?? 'IMPLEMENTATION_SPECIFIC_DEFAULT');
  const escapedSlashes = (slashes === 'IMPLEMENTATION_SPECIFIC_DEFAULT' ? 'KEEP_UNCHANGED' : slashes) as EscapedSlashesAction;
  if (!ESCAPED_SLASHES_ACTIONS.has(escapedSlashes)) errors.push({ path: `${path}.path_with_escaped_slashes_action`, message: `unknown action ${slashes}` });
  checkRequestIdExtension(tc.request_id_extension, `${path}.request_id_extension`, ctx);
  const xfcc = parseXfcc(tc, path, errors);

  const codec = (tc.codec_type ?? 'AUTO') as string;
  if (codec !== 'AUTO' && codec !== 'HTTP1' && codec !== 'HTTP2') errors.push({ path: `${path}.codec_type`, message: `${codec} is not supported yet (supported: AUTO, HTTP1, HTTP2)` });
  const h2 = (tc.http2_protocol_options ?? {}) as Obj;
  for (const f of ['allow_connect', 'allow_metadata', 'connection_keepalive', 'custom_settings_parameters'] as const) {
    const v = h2[f];
    if (v !== undefined && v !== null && v !== false && !(Array.isArray(v) && v.length === 0)) errors.push({ path: `${path}.http2_protocol_options.${f}`, message: 'is not supported yet' });
  }
  const h2Settings: { maxConcurrentStreams?: number; initialWindowSize?: number } = {};
  if (h2.max_concurrent_streams !== undefined && h2.max_concurrent_streams !== null) h2Settings.maxConcurrentStreams = Number(h2.max_concurrent_streams);
  if (h2.initial_stream_window_size !== undefined && h2.initial_stream_window_size !== null) h2Settings.initialWindowSize = Number(h2.initial_stream_window_size);

  const httpFilters = checkHttpFilters(tc.http_filters, `${path}.http_filters`, ctx);

  let routes: RouteLookup | null = null;
  if (tc.rds && tc.route_config) errors.push({ path: `${path}.rds`, message: 'route_config and rds are exclusive' });
  else if (tc.rds) routes = parseRds(tc.rds as Obj, `${path}.rds`, ctx);
  else if (!tc.route_config) errors.push({ path: `${path}.route_config`, message: 'is required (or rds; scoped_routes is not supported yet)' });
  else routes = HttpRouteTable.compile(tc.route_config as Obj, `${path}.route_config`, ctx.clusterNames, errors, ctx.warnings);

  const common = (tc.common_http_protocol_options ?? {}) as Obj;
  const underscores = underscoresOf(common.headers_with_underscores_action);
  if (underscores === null) errors.push({ path: `${path}.common_http_protocol_options.headers_with_underscores_action`, message: `unknown action ${String(common.headers_with_underscores_action)}` });
  const h1 = (tc.http_protocol_options ?? {}) as Obj;
  for (const f of ['header_key_format', 'enable_trailers', 'allow_chunked_length', 'override_stream_error_on_invalid_http_message', 'send_fully_qualified_url', 'allow_custom_methods'] as const) {
    const v = h1[f];
    if (v !== undefined && v !== null && v !== false) errors.push({ path: `${path}.http_protocol_options.${f}`, message: 'is not supported yet' });
  }

  const upgrades = new Set<string>();
  ((tc.upgrade_configs ?? []) as Obj[]).forEach((u, i) => {
    const up = `${path}.upgrade_configs[${i}]`;
    if (u.filters?.length) errors.push({ path: `${up}.filters`, message: 'is not supported yet' });
    if (u.upgrade_type === undefined || String(u.upgrade_type).toUpperCase() === 'CONNECT') errors.push({ path: `${up}.upgrade_type`, message: 'CONNECT is not supported yet' });
    if (u.enabled !== false) upgrades.add(String(u.upgrade_type).toLowerCase());
  });
  const sht = (tc.server_header_transformation ?? 'OVERWRITE') as ServerHeaderTransformation;
  const tracing = parseTracing(tc.tracing, `${path}.tracing`, ctx.clusterNames, errors, ctx.warnings);
  const accessLogs = parseAccessLogs(tc.access_log, `${path}.access_log`, errors, ctx.warnings);
  const localReply = parseLocalReplyConfig(tc.local_reply_config, `${path}.local_reply_config`, errors);
  if (errors.length > start) return null;
  return Object.freeze({
    statPrefix: String(tc.stat_prefix ?? ''),
    codec: codec as CodecType,
    routes: routes!,
    limits: Object.freeze({
      maxHeadBytes: tc.max_request_headers_kb === undefined || tc.max_request_headers_kb === null ? DEFAULT_LIMITS.maxHeadBytes : Number(tc.max_request_headers_kb) * 1024,
      maxHeaders: common.max_headers_count === undefined || common.max_headers_count === null ? DEFAULT_LIMITS.maxHeaders : Number(common.max_headers_count),
    }),
    acceptHttp10: h1.accept_http_10 === true,
    allowAbsoluteUrl: h1.allow_absolute_url !== false,
    useRemoteAddress: tc.use_remote_address === true,
    skipXffAppend: tc.skip_xff_append === true,
    generateRequestId: tc.generate_request_id !== false,
    alwaysSetRequestIdInResponse: tc.always_set_request_id_in_response === true,
    // Envoy's default server name; dashboards and tests written against Envoy see the same header.
    serverName: typeof tc.server_name === 'string' && tc.server_name ? tc.server_name : 'envoy',
    serverHeaderTransformation: sht,
    stripAnyHostPort: tc.strip_any_host_port === true,
    stripMatchingHostPort: tc.strip_matching_host_port === true,
    idleTimeoutMs: common.idle_timeout === undefined || common.idle_timeout === null ? DEFAULT_IDLE_MS : durationMs(common.idle_timeout)!,
    requestHeadersTimeoutMs: durationMs(tc.request_headers_timeout) ?? 0,
    proxy100Continue: tc.proxy_100_continue === true,
    // Unset means off here; Envoy's stream_idle_timeout defaults to 5 minutes (see stream_timeouts.ts).
    streamIdleTimeoutMs: durationMs(tc.stream_idle_timeout) ?? 0,
    requestTimeoutMs: durationMs(tc.request_timeout) ?? 0,
    maxStreamDurationMs: durationMs(common.max_stream_duration) ?? 0,
    underscores: underscores!,
    maxConnectionDurationMs: durationMs(common.max_connection_duration) ?? 0,
    maxRequestsPerConnection: Number(common.max_requests_per_connection ?? 0),
    normalizePath: tc.normalize_path === true,
    mergeSlashes: tc.merge_slashes === true,
    escapedSlashes,
    pathWork: tc.normalize_path === true || tc.merge_slashes === true || escapedSlashes !== 'KEEP_UNCHANGED',
    xfcc: xfcc!,
    h2Settings: Object.freeze(h2Settings),
    httpFilters: Object.freeze(httpFilters),
    upgrades,
    tracing,
    accessLogs,
    localReply,
  });
}

/** forward_client_cert_details (default SANITIZE) and the set_current_client_cert_details Strait fills. */
function parseXfcc(tc: Obj, path: string, errors: FieldError[]): XfccConfig | null {
  const mode = String(tc.forward_client_cert_details ?? 'SANITIZE') as ForwardClientCert;
  if (!FORWARD_CLIENT_CERT.includes(mode)) {
    errors.push({ path: `${path}.forward_client_cert_details`, message: `${mode} is not a ForwardClientCertDetails value` });
    return null;
  }
  const d = (tc.set_current_client_cert_details ?? {}) as Obj;
  const on = (v: unknown) => v === true || (v !== null && typeof v === 'object' && (v as Obj).value === true);
  return Object.freeze({ mode, subject: on(d.subject), cert: on(d.cert), chain: on(d.chain), uri: on(d.uri), dns: on(d.dns) });
}

const UUID_REQUEST_ID = 'type.googleapis.com/envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig';

/**
 * `request_id_extension`: the UUID one (Istio configures it on every HCM) is what Strait does
 * anyway — x-request-id generated as a random UUID when missing. Its two options change what
 * Strait does not do: packing the trace decision into the id, and sampling by the id's hash.
 */
function checkRequestIdExtension(ext: unknown, path: string, ctx: FactoryContext): void {
  if (ext === undefined || ext === null) return;
  const tc = ((ext as Obj).typed_config ?? {}) as Obj;
  if (tc['@type'] !== UUID_REQUEST_ID) {
    ctx.errors.push({ path: `${path}.typed_config`, message: `${String(tc['@type'] ?? 'a missing type')} is not supported yet (${UUID_REQUEST_ID} is)` });
    return;
  }
  for (const f of ['pack_trace_reason', 'use_request_id_for_trace_sampling'] as const) {
    // Both default to true in Envoy: unset counts as on.
    if (tc[f] !== false) ctx.warnings.push({ path: `${path}.typed_config.${f}`, message: 'is not implemented yet (ids are not altered; tracing samples at random); ignored' });
  }
}

/**
 * `rds: { route_config_name, config_source }`. The source is either ADS, where the configuration
 * comes from xDS (the dynamic side supplies `ctx.rds`), or a file (filesystem xDS:
 * `path_config_source`, or the older `path`), read now and watched once the listener runs.
 */
function parseRds(rds: Obj, path: string, ctx: FactoryContext): RouteLookup | null {
  const errors = ctx.errors;
  const start = errors.length;
  const name = rds.route_config_name;
  if (typeof name !== 'string' || !name) errors.push({ path: `${path}.route_config_name`, message: 'is required' });
  const src = (rds.config_source ?? null) as Obj | null;
  const pcs = (src?.path_config_source ?? null) as Obj | null;
  const file = pcs ? pcs.path : src?.path;
  if (src && (typeof file === 'string' || pcs)) {
    const fp = pcs ? `${path}.config_source.path_config_source.path` : `${path}.config_source.path`;
    if (typeof file !== 'string' || !file) errors.push({ path: fp, message: 'is required' });
    const wd = pcs?.watched_directory?.path;
    if (errors.length > start) return null;
    const { table, problems } = fileRdsTable(name as string, file as string, ctx.clusterNames, typeof wd === 'string' && wd ? wd : null);
    if (problems) {
      for (const p of problems) errors.push({ path: fp, message: `${file}${p.path ? `: ${p.path}` : ''}: ${p.message}` });
      return null;
    }
    return table;
  }
  if (!src || src.ads === undefined || src.ads === null) {
    errors.push({ path: `${path}.config_source`, message: 'only ads: {} and path_config_source are supported as the RDS config source' });
    return null;
  }
  if (!ctx.rds) errors.push({ path: `${path}.config_source.ads`, message: 'needs dynamic_resources.ads_config in the bootstrap; RDS over ADS is not supported without it (path_config_source reads routes from a file instead)' });
  if (errors.length > start) return null;
  return ctx.rds!(name as string);
}

/**
 * The router must be present and last, as Envoy requires a terminal filter; before it, the HTTP
 * filters Strait implements (fault, local rate limit), each validated by its own factory.
 */
function checkHttpFilters(list: unknown, path: string, ctx: FactoryContext): Array<{ factory: HttpFilterFactory<any>; config: unknown; name: string; disabled: boolean }> {
  const errors = ctx.errors;
  const out: Array<{ factory: HttpFilterFactory<any>; config: unknown; name: string; disabled: boolean }> = [];
  const filters = (list ?? []) as Obj[];
  if (filters.length === 0) {
    errors.push({ path, message: 'needs envoy.filters.http.router as the last filter' });
    return out;
  }
  filters.forEach((f, i) => {
    const type = f.typed_config?.['@type'] as string | undefined;
    const isRouter = type ? type === ROUTER_TYPE : f.name === 'envoy.filters.http.router';
    if (!isRouter) {
      const factory = findHttpFilter(String(f.name ?? ''), type);
      if (!factory) {
        if (f.is_optional === true) {
          ctx.warnings.push({ path: `${path}[${i}]`, message: `optional HTTP filter ${type ?? f.name} is not supported; skipped` });
          return;
        }
        errors.push({ path: `${path}[${i}]`, message: `HTTP filter ${type ?? f.name} is not supported yet (supported: router, buffer, fault, local_ratelimit, rbac, ext_authz, cors, grpc_stats, compressor (gzip, brotli; zstd accepted, never chosen), strait.filters.http.priority_ratelimit)` });
        return;
      }
      const config = factory.parse((f.typed_config ?? {}) as Obj, `${path}[${i}].typed_config`, ctx);
      // Valid but acting on nothing (a zstd-only compressor): no place in the chain.
      if (config && config !== INERT_FILTER) out.push({ factory, config, name: String(f.name ?? factory.name), disabled: f.disabled === true });
      return;
    }
    if (i !== filters.length - 1) errors.push({ path: `${path}[${i}]`, message: 'the router must be the last HTTP filter' });
    const rc = (f.typed_config ?? {}) as Obj;
    for (const k of ['upstream_http_filters', 'strict_check_headers']) {
      if (rc[k]?.length) errors.push({ path: `${path}[${i}].typed_config.${k}`, message: 'is not supported yet' });
    }
  });
  return out;
}

export const httpConnectionManagerFactory = {
  name: 'envoy.filters.network.http_connection_manager',
  typeUrls: [HCM_TYPE],
  terminal: true,
  parse,
  create: (config, rt) => {
    const f = new HttpConnectionManagerFilter(config, rt);
    // A file-backed route table starts watching once a listener serves it.
    config.routes.start?.(rt.stats.scope('http').scope(config.statPrefix, 'envoy_http_conn_manager_prefix'));
    return f;
  },
} satisfies NetworkFilterFactory<HcmConfig>;
