import { durationMs } from '../../../config/values.js';
import { compileStringMatcher, type StringMatch } from '../../../router/string_matcher.js';
import { fraction, PER_ROUTE_DISABLED, type HttpFilterFactory, type HttpFilterParseContext, type MetadataValue } from '../types.js';
import { ExtAuthzFilter } from './filter.js';

export const EXT_AUTHZ_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz';
export const EXT_AUTHZ_PER_ROUTE_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute';

type Obj = Record<string, any>;

/** Envoy's default for both services: 200 ms. */
const DEFAULT_TIMEOUT_MS = 200;

/** A compiled `ListStringMatcher`: a name matches when any pattern does. */
export type NameList = readonly StringMatch[];

/** `grpc_service`: envoy.service.auth.v3.Authorization/Check on a cluster's hosts, or a target URI. */
export interface GrpcAuthzService {
  readonly kind: 'grpc';
  /** envoy_grpc: a host of this cluster per call. */
  readonly cluster: string | null;
  /** google_grpc: a gRPC target (`127.0.0.1:9191`, `dns:authz:9191`) dialled directly. */
  readonly target: string | null;
  /** The `:authority` of the calls: envoy_grpc.authority, else the cluster name (Envoy's default). */
  readonly authority: string;
  /** initial_metadata, sent on every call. */
  readonly metadata: ReadonlyArray<readonly [string, string]>;
}

/** `http_service`: the request's method and path (prefixed) with allowed headers and no body. */
export interface HttpAuthzService {
  readonly kind: 'http';
  readonly cluster: string;
  readonly pathPrefix: string;
  /** The server_uri's authority, sent as Host. */
  readonly authority: string;
  /** authorization_request.headers_to_add: set on every check request. */
  readonly headersToAdd: ReadonlyArray<readonly [string, string]>;
  /** authorization_response.allowed_upstream_headers (set) / _to_append (appended); null: none. */
  readonly upstream: NameList | null;
  readonly upstreamAppend: NameList | null;
  /** authorization_response.allowed_client_headers; null: every header but Host and hop-by-hop ones. */
  readonly client: NameList | null;
  /** authorization_response.allowed_client_headers_on_success: an allowing answer's headers for the client's response; null: none. */
  readonly clientOnSuccess: NameList | null;
  /** authorization_response.dynamic_metadata_from_headers: the answer's headers published as dynamic metadata; null: none. */
  readonly toMetadata: NameList | null;
}

export interface ExtAuthzConfig {
  readonly service: GrpcAuthzService | HttpAuthzService;
  readonly timeoutMs: number;
  readonly failureModeAllow: boolean;
  readonly failureModeAllowHeaderAdd: boolean;
  /** status_on_error: the local reply's status when the service fails (403 by default). */
  readonly statusOnError: number;
  /** The filter's own stat_prefix, between `ext_authz.` and the counter names ('' = none). */
  readonly statPrefix: string;
  /** filter_enabled's default_value as a probability; 1 when unset. */
  readonly enabledFraction: number;
  /** filter_enabled_metadata: the request is checked only when this holds. */
  readonly enabledMetadata: { readonly ns: string; readonly key: string; readonly test: (v: MetadataValue | undefined) => boolean } | null;
  /** deny_at_disable's default_value: a request the filter is disabled for is answered status_on_error. */
  readonly denyAtDisable: boolean;
  /** allowed_headers / disallowed_headers for the check request; null = the service's default set. */
  readonly allowedHeaders: NameList | null;
  readonly disallowedHeaders: NameList | null;
  /** with_request_body: the body (up to maxBytes) goes into the check; null = no body. */
  readonly withBody: { readonly maxBytes: number; readonly allowPartial: boolean; readonly packAsBytes: boolean } | null;
  /** enable_dynamic_metadata_ingestion: publish the service's dynamic metadata (true unless set false). */
  readonly ingestMetadata: boolean;
}

/** ExtAuthzPerRoute's check_settings (disabled: true is PER_ROUTE_DISABLED). */
export interface ExtAuthzPerRoute {
  readonly contextExtensions: ReadonlyArray<readonly [string, string]>;
  /** check_settings.disable_request_body_buffering: this route's checks go without the body. */
  readonly noBody: boolean;
}

/** Fields whose non-default value changes traffic and that Strait does not implement: refused. */
const UNSUPPORTED = [
  'clear_route_cache',
  'validate_mutations',
  'metadata_context_namespaces',
  'typed_metadata_context_namespaces',
  'route_metadata_context_namespaces',
  'route_typed_metadata_context_namespaces',
  'include_peer_certificate',
  'include_tls_session',
  'bootstrap_metadata_labels_key',
  'encode_raw_headers',
  'decoder_header_mutation_rules',
] as const;

function isSet(v: unknown): boolean {
  if (v === undefined || v === null || v === false || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  return true;
}

function nameList(l: unknown, path: string, ctx: HttpFilterParseContext): NameList | null {
  if (l === undefined || l === null) return null;
  const patterns = ((l as Obj).patterns ?? []) as Obj[];
  const out: StringMatch[] = [];
  patterns.forEach((p, i) => {
    const m = compileStringMatcher(p, `${path}.patterns[${i}]`, ctx.errors);
    if (m) out.push(m);
  });
  return Object.freeze(out);
}

/** A list that matches nothing is no list: the filter skips the work. */
function nonEmpty(l: NameList | null): NameList | null {
  return l && l.length ? l : null;
}

function headerValues(list: unknown, path: string, ctx: HttpFilterParseContext): Array<readonly [string, string]> {
  return ((list ?? []) as Obj[]).flatMap((h, i) => {
    const key = String(h.key ?? '').toLowerCase();
    if (!key) {
      ctx.errors.push({ path: `${path}[${i}].key`, message: 'is required' });
      return [];
    }
    return [[key, String(h.value ?? '')] as const];
  });
}

/** An HttpStatus message (`{code: 401}` or `{code: Unauthorized}`) as a number; `dflt` when unset. */
function httpStatus(s: unknown, path: string, ctx: HttpFilterParseContext, dflt: number): number {
  if (s === undefined || s === null) return dflt;
  const c = (s as Obj).code;
  const n = typeof c === 'number' ? c : Number(HTTP_STATUS_NAMES[String(c)] ?? c);
  if (!Number.isInteger(n) || n < 200 || n > 599) {
    ctx.errors.push({ path: `${path}.code`, message: `${String(c)} is not an HTTP status` });
    return dflt;
  }
  return n;
}

/** The names of envoy.type.v3.StatusCode a config is likely to use (YAML may give either form). */
const HTTP_STATUS_NAMES: Readonly<Record<string, number>> = {
  OK: 200,
  BadRequest: 400,
  Unauthorized: 401,
  Forbidden: 403,
  NotFound: 404,
  TooManyRequests: 429,
  InternalServerError: 500,
  BadGateway: 502,
  ServiceUnavailable: 503,
  GatewayTimeout: 504,
};

function parseGrpc(gs: Obj, path: string, ctx: HttpFilterParseContext): GrpcAuthzService | null {
  const start = ctx.errors.length;
  let cluster: string | null = null;
  let target: string | null = null;
  let authority = '';
  if (gs.envoy_grpc) {
    const eg = gs.envoy_grpc as Obj;
    cluster = String(eg.cluster_name ?? '');
    if (!cluster) ctx.errors.push({ path: `${path}.envoy_grpc.cluster_name`, message: 'is required' });
    else if (ctx.clusterNames && !ctx.clusterNames.has(cluster)) ctx.errors.push({ path: `${path}.envoy_grpc.cluster_name`, message: `"${cluster}" is not a configured cluster` });
    authority = String(eg.authority ?? '') || cluster;
    for (const f of ['retry_policy', 'max_receive_message_length', 'skip_envoy_headers'] as const) {
      if (isSet(eg[f])) ctx.errors.push({ path: `${path}.envoy_grpc.${f}`, message: 'is not supported yet' });
    }
  } else if (gs.google_grpc) {
    const gg = gs.google_grpc as Obj;
    target = String(gg.target_uri ?? '');
    if (!target) ctx.errors.push({ path: `${path}.google_grpc.target_uri`, message: 'is required' });
    if (gg.channel_credentials || gg.call_credentials?.length) ctx.errors.push({ path: `${path}.google_grpc`, message: 'channel and call credentials (TLS to the service) are not supported yet' });
  } else ctx.errors.push({ path, message: 'needs envoy_grpc or google_grpc' });
  if (isSet(gs.retry_policy)) ctx.errors.push({ path: `${path}.retry_policy`, message: 'is not supported yet' });
  const metadata = headerValues(gs.initial_metadata, `${path}.initial_metadata`, ctx);
  if (ctx.errors.length > start) return null;
  return Object.freeze({ kind: 'grpc', cluster, target, authority, metadata: Object.freeze(metadata) });
}

function parseHttp(hs: Obj, path: string, ctx: HttpFilterParseContext): { service: HttpAuthzService; timeoutMs: number; allowed: NameList | null } | null {
  const start = ctx.errors.length;
  const su = (hs.server_uri ?? null) as Obj | null;
  if (!su) {
    ctx.errors.push({ path: `${path}.server_uri`, message: 'is required' });
    return null;
  }
  const cluster = String(su.cluster ?? '');
  if (!cluster) ctx.errors.push({ path: `${path}.server_uri.cluster`, message: 'is required' });
  else if (ctx.clusterNames && !ctx.clusterNames.has(cluster)) ctx.errors.push({ path: `${path}.server_uri.cluster`, message: `"${cluster}" is not a configured cluster` });
  let authority = cluster;
  const uri = String(su.uri ?? '');
  if (!uri) ctx.errors.push({ path: `${path}.server_uri.uri`, message: 'is required' });
  else {
    try {
      authority = new URL(uri).host || cluster;
    } catch {
      ctx.errors.push({ path: `${path}.server_uri.uri`, message: `"${uri}" is not a URI` });
    }
  }
  const pathPrefix = String(hs.path_prefix ?? '');
  if (pathPrefix && !pathPrefix.startsWith('/')) ctx.errors.push({ path: `${path}.path_prefix`, message: 'must start with /' });
  if (isSet(hs.path_override)) ctx.errors.push({ path: `${path}.path_override`, message: 'is not supported yet' });
  if (isSet(hs.retry_policy)) ctx.errors.push({ path: `${path}.retry_policy`, message: 'is not supported yet' });
  const rq = (hs.authorization_request ?? {}) as Obj;
  const rs = (hs.authorization_response ?? {}) as Obj;
  const service: HttpAuthzService = Object.freeze({
    kind: 'http',
    cluster,
    pathPrefix,
    authority,
    headersToAdd: Object.freeze(headerValues(rq.headers_to_add, `${path}.authorization_request.headers_to_add`, ctx)),
    upstream: nameList(rs.allowed_upstream_headers, `${path}.authorization_response.allowed_upstream_headers`, ctx),
    upstreamAppend: nameList(rs.allowed_upstream_headers_to_append, `${path}.authorization_response.allowed_upstream_headers_to_append`, ctx),
    client: nameList(rs.allowed_client_headers, `${path}.authorization_response.allowed_client_headers`, ctx),
    clientOnSuccess: nonEmpty(nameList(rs.allowed_client_headers_on_success, `${path}.authorization_response.allowed_client_headers_on_success`, ctx)),
    toMetadata: nonEmpty(nameList(rs.dynamic_metadata_from_headers, `${path}.authorization_response.dynamic_metadata_from_headers`, ctx)),
  });
  const allowed = nameList(rq.allowed_headers, `${path}.authorization_request.allowed_headers`, ctx);
  const t = su.timeout === undefined || su.timeout === null ? DEFAULT_TIMEOUT_MS : durationMs(su.timeout);
  if (t === undefined) ctx.errors.push({ path: `${path}.server_uri.timeout`, message: 'is not a duration' });
  if (ctx.errors.length > start) return null;
  return { service, timeoutMs: t!, allowed };
}

/** A MetadataMatcher on one key with a string or presence match (what Istio writes). */
function parseEnabledMetadata(m: Obj, path: string, ctx: HttpFilterParseContext): ExtAuthzConfig['enabledMetadata'] {
  const ns = String(m.filter ?? '');
  if (!ns) ctx.errors.push({ path: `${path}.filter`, message: 'is required' });
  const keys = ((m.path ?? []) as Obj[]).map((s) => String(s.key ?? ''));
  if (keys.length !== 1 || !keys[0]) ctx.errors.push({ path: `${path}.path`, message: 'must be exactly one key (nested metadata is not supported yet)' });
  const v = (m.value ?? {}) as Obj;
  const invert = m.invert === true;
  let test: ((s: MetadataValue | undefined) => boolean) | null = null;
  if (v.string_match) {
    const sm = compileStringMatcher(v.string_match as Obj, `${path}.value.string_match`, ctx.errors);
    // A string matcher matches string values only (Envoy's ValueMatcher).
    if (sm) test = (s) => typeof s === 'string' && sm(s);
  } else if (v.present_match !== undefined) {
    const want = v.present_match === true;
    test = (s) => (s !== undefined) === want;
  } else ctx.errors.push({ path: `${path}.value`, message: 'only string_match and present_match are supported' });
  if (!test || keys.length !== 1 || !ns) return null;
  const t = test;
  return Object.freeze({ ns, key: keys[0]!, test: invert ? (s: MetadataValue | undefined) => !t(s) : t });
}

function parse(tc: Obj, path: string, ctx: HttpFilterParseContext): ExtAuthzConfig | null {
  const start = ctx.errors.length;
  for (const f of UNSUPPORTED) if (isSet(tc[f])) ctx.errors.push({ path: `${path}.${f}`, message: 'is not supported yet' });
  const api = String(tc.transport_api_version ?? 'AUTO');
  // AUTO means V3 since Envoy dropped v2.
  if (api !== 'V3' && api !== 'AUTO') ctx.errors.push({ path: `${path}.transport_api_version`, message: `${api} is not supported (V3 is)` });
  // Not traffic: what Envoy logs or counts beside the check. Noted, not applied.
  for (const f of ['filter_metadata', 'charge_cluster_response_stats'] as const) {
    if (tc[f] !== undefined && tc[f] !== null) ctx.warnings.push({ path: `${path}.${f}`, message: 'is not implemented yet; ignored' });
  }
  let service: GrpcAuthzService | HttpAuthzService | null = null;
  let timeoutMs = DEFAULT_TIMEOUT_MS;
  let allowedHeaders: NameList | null = null;
  if (tc.grpc_service && tc.http_service) ctx.errors.push({ path: `${path}.http_service`, message: 'grpc_service and http_service are exclusive' });
  else if (tc.grpc_service) {
    const gs = tc.grpc_service as Obj;
    service = parseGrpc(gs, `${path}.grpc_service`, ctx);
    if (gs.timeout !== undefined && gs.timeout !== null) {
      const t = durationMs(gs.timeout);
      if (t === undefined) ctx.errors.push({ path: `${path}.grpc_service.timeout`, message: 'is not a duration' });
      else timeoutMs = t;
    }
  } else if (tc.http_service) {
    const h = parseHttp(tc.http_service as Obj, `${path}.http_service`, ctx);
    if (h) {
      service = h.service;
      timeoutMs = h.timeoutMs;
      allowedHeaders = h.allowed;
    }
  } else ctx.errors.push({ path, message: 'needs grpc_service or http_service' });
  // The top-level list wins over the deprecated authorization_request one.
  if (tc.allowed_headers) allowedHeaders = nameList(tc.allowed_headers, `${path}.allowed_headers`, ctx);
  const disallowedHeaders = nameList(tc.disallowed_headers, `${path}.disallowed_headers`, ctx);
  const statusOnError = httpStatus(tc.status_on_error, `${path}.status_on_error`, ctx, 403);
  // Strait has no runtime layer: a runtime_key reads as absent, so the default applies (as in Envoy without one).
  const fe = tc.filter_enabled as Obj | undefined;
  const enabledFraction = fe ? fraction(fe.default_value as Obj | undefined) : 1;
  const enabledMetadata = tc.filter_enabled_metadata ? parseEnabledMetadata(tc.filter_enabled_metadata as Obj, `${path}.filter_enabled_metadata`, ctx) : null;
  const dd = tc.deny_at_disable as Obj | undefined;
  const dv = dd?.default_value;
  const denyAtDisable = dv === true || (dv !== null && typeof dv === 'object' && (dv as Obj).value === true);
  let withBody: ExtAuthzConfig['withBody'] = null;
  const wb = tc.with_request_body as Obj | undefined;
  if (wb) {
    const raw = wb.max_request_bytes?.value ?? wb.max_request_bytes;
    const max = Number(raw ?? 0);
    if (!Number.isInteger(max) || max < 1) ctx.errors.push({ path: `${path}.with_request_body.max_request_bytes`, message: `must be a positive integer, got ${JSON.stringify(raw)}` });
    else withBody = Object.freeze({ maxBytes: max, allowPartial: wb.allow_partial_message === true, packAsBytes: wb.pack_as_bytes === true });
  }
  // A BoolValue, true when unset: false drops what the service asks to publish (counted as ignored_dynamic_metadata).
  const ing = tc.enable_dynamic_metadata_ingestion as unknown;
  const ingestMetadata = !(ing === false || (ing !== null && typeof ing === 'object' && (ing as Obj).value === false));
  if (ctx.errors.length > start || !service) return null;
  return Object.freeze({
    service,
    timeoutMs,
    failureModeAllow: tc.failure_mode_allow === true,
    failureModeAllowHeaderAdd: tc.failure_mode_allow_header_add === true,
    statusOnError,
    statPrefix: String(tc.stat_prefix ?? ''),
    enabledFraction,
    enabledMetadata,
    denyAtDisable,
    allowedHeaders,
    disallowedHeaders,
    withBody,
    ingestMetadata,
  });
}

/** ExtAuthzPerRoute: `disabled: true` turns the filter off for the route; check_settings adds context. */
function parsePerRoute(tc: Obj, path: string, ctx: HttpFilterParseContext): ExtAuthzPerRoute | typeof PER_ROUTE_DISABLED | null {
  if (tc.disabled === true) return PER_ROUTE_DISABLED;
  const cs = tc.check_settings as Obj | undefined;
  if (!cs) {
    ctx.errors.push({ path, message: 'needs disabled: true or check_settings' });
    return null;
  }
  const start = ctx.errors.length;
  if (isSet(cs.with_request_body)) ctx.errors.push({ path: `${path}.check_settings.with_request_body`, message: 'is not supported yet (the filter-level with_request_body is)' });
  const ext = (cs.context_extensions ?? {}) as Obj;
  if (ctx.errors.length > start) return null;
  return Object.freeze({ contextExtensions: Object.freeze(Object.entries(ext).map(([k, v]) => [k, String(v)] as const)), noBody: cs.disable_request_body_buffering === true });
}

export const extAuthzFactory = {
  name: 'envoy.filters.http.ext_authz',
  typeUrls: [EXT_AUTHZ_TYPE],
  parse,
  create: (config, scope, _root, name, services) => new ExtAuthzFilter(config, scope, name, services?.clusters ?? null),
  perRoute: { typeUrls: [EXT_AUTHZ_PER_ROUTE_TYPE], parse: parsePerRoute },
} satisfies HttpFilterFactory<ExtAuthzConfig>;
