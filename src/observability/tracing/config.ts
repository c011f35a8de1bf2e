import type { FieldError } from '../../errors.js';
import { durationMs } from '../../config/values.js';

type Obj = Record<string, any>;

const ZIPKIN_NAME = 'envoy.tracers.zipkin';
const ZIPKIN_TYPE = 'type.googleapis.com/envoy.config.trace.v3.ZipkinConfig';
const OTEL_NAME = 'envoy.tracers.opentelemetry';
const OTEL_TYPE = 'type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig';

/** Where finished spans go: a Zipkin v2 JSON collector or an OTLP/HTTP (JSON) receiver. */
export type TraceSink =
  | {
      readonly kind: 'zipkin';
      readonly cluster: string;
      readonly path: string;
      /** Host header; '' = the collector cluster's name, as Envoy sends by default. */
      readonly hostname: string;
    }
  | {
      readonly kind: 'otlp';
      readonly cluster: string;
      /** From http_uri.uri: the path (default /v1/traces) and the authority sent as Host. */
      readonly path: string;
      readonly hostname: string;
      readonly timeoutMs: number;
      /** request_headers_to_add, in order. */
      readonly headers: ReadonlyArray<readonly [string, string]>;
      /** service_name: the resource's service.name; '' = the listener's own name. */
      readonly serviceName: string;
    };

/** A `tracing` block (HCM's, also rpc_proxy's) with a supported provider, validated and frozen. */
export interface TracingConfig {
  readonly sink: TraceSink;
  /** New traces get 128-bit ids (Zipkin's trace_id_128bit; always for OpenTelemetry); 64-bit otherwise, as Envoy defaults. */
  readonly traceId128: boolean;
  /** random_sampling in [0, 1]: the share of new traces (no caller decision) that are sampled. */
  readonly randomSampling: number;
  /** max_path_tag_length: http.url tags are cut to this many characters (Envoy's default 256). */
  readonly maxPathTagLength: number;
  /** OpenTelemetry reads W3C traceparent before B3; Zipkin the other way round. */
  readonly preferW3c: boolean;
}

function percent(v: Obj | undefined, dflt: number): number {
  if (!v || v.value === undefined || v.value === null) return dflt;
  return Math.min(1, Math.max(0, Number(v.value) / 100));
}

function zipkinSink(tc: Obj, tp: string, clusterNames: ReadonlySet<string>, errors: FieldError[], warnings: FieldError[]): TraceSink {
  const cluster = String(tc.collector_cluster ?? '');
  if (!cluster) errors.push({ path: `${tp}.collector_cluster`, message: 'is required' });
  else if (!clusterNames.has(cluster)) errors.push({ path: `${tp}.collector_cluster`, message: `unknown cluster "${cluster}"` });
  const endpoint = String(tc.collector_endpoint ?? '');
  if (!endpoint.startsWith('/')) errors.push({ path: `${tp}.collector_endpoint`, message: 'is required and must be a path (e.g. /api/v2/spans)' });
  const version = tc.collector_endpoint_version ?? 'HTTP_JSON';
  if (version !== 'HTTP_JSON') errors.push({ path: `${tp}.collector_endpoint_version`, message: `${version} is not supported (supported: HTTP_JSON)` });
  if (tc.shared_span_context === true) warnings.push({ path: `${tp}.shared_span_context`, message: 'server spans always get their own id (child of the caller span); ignored' });
  return { kind: 'zipkin', cluster, path: endpoint, hostname: String(tc.collector_hostname ?? '') };
}

function otlpSink(tc: Obj, tp: string, clusterNames: ReadonlySet<string>, errors: FieldError[], warnings: FieldError[]): TraceSink {
  // OTLP/gRPC would need a second exporter for the same spans; OTLP/HTTP carries them as well.
  if (tc.grpc_service) errors.push({ path: `${tp}.grpc_service`, message: 'OTLP/gRPC export is not supported; use http_service (OTLP/HTTP with JSON encoding)' });
  const hs = tc.http_service as Obj | undefined;
  const hp = `${tp}.http_service`;
  if (!hs) {
    if (!tc.grpc_service) errors.push({ path: hp, message: 'is required (the OTLP/HTTP receiver)' });
    return { kind: 'otlp', cluster: '', path: '', hostname: '', timeoutMs: 0, headers: [], serviceName: '' };
  }
  const uri = (hs.http_uri ?? {}) as Obj;
  const cluster = String(uri.cluster ?? '');
  if (!cluster) errors.push({ path: `${hp}.http_uri.cluster`, message: 'is required' });
  else if (!clusterNames.has(cluster)) errors.push({ path: `${hp}.http_uri.cluster`, message: `unknown cluster "${cluster}"` });
  let path = '/v1/traces';
  let hostname = cluster;
  const raw = String(uri.uri ?? '');
  if (!raw) errors.push({ path: `${hp}.http_uri.uri`, message: 'is required (e.g. http://otel-collector:4318/v1/traces)' });
  else {
    // Envoy accepts a bare "host:port/path" too; a scheme only makes it parseable.
    let u: URL | null = null;
    try {
      u = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `http://${raw}`);
    } catch {
      errors.push({ path: `${hp}.http_uri.uri`, message: `"${raw}" is not a URI` });
    }
    if (u) {
      if (u.protocol === 'https:') errors.push({ path: `${hp}.http_uri.uri`, message: 'https is not supported for the OTLP exporter; use http' });
      if (u.pathname && u.pathname !== '/') path = u.pathname + u.search;
      hostname = u.host;
    }
  }
  const timeoutMs = durationMs(uri.timeout) ?? 0;
  if (!(timeoutMs > 0)) errors.push({ path: `${hp}.http_uri.timeout`, message: 'is required and must be more than 0s' });
  const headers: Array<readonly [string, string]> = [];
  ((hs.request_headers_to_add ?? []) as Obj[]).forEach((o, i) => {
    const key = String(o.header?.key ?? '').toLowerCase();
    if (!/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(key)) errors.push({ path: `${hp}.request_headers_to_add[${i}].header.key`, message: `"${o.header?.key ?? ''}" is not a header name` });
    else if (key === 'content-type' || key === 'content-length' || key === 'host') errors.push({ path: `${hp}.request_headers_to_add[${i}].header.key`, message: `${key} is set by the exporter` });
    else headers.push([key, String(o.header?.value ?? '')]);
  });
  if (tc.sampler) warnings.push({ path: `${tp}.sampler`, message: 'samplers are not implemented; random_sampling decides; ignored' });
  if (Array.isArray(tc.resource_detectors) && tc.resource_detectors.length) warnings.push({ path: `${tp}.resource_detectors`, message: 'are not implemented; only service.name is sent; ignored' });
  return { kind: 'otlp', cluster, path, hostname, timeoutMs, headers, serviceName: String(tc.service_name ?? '') };
}

/** null when `tracing` is absent; errors name every field Strait cannot honour. */
export function parseTracing(t: Obj | undefined | null, path: string, clusterNames: ReadonlySet<string>, errors: FieldError[], warnings: FieldError[]): TracingConfig | null {
  if (t === undefined || t === null) return null;
  const start = errors.length;
  const p = t.provider as Obj | undefined;
  if (!p) {
    // Envoy without a provider traces nothing; say so rather than pretend.
    warnings.push({ path: `${path}.provider`, message: 'no tracing provider; no spans will be created' });
    return null;
  }
  const tc = (p.typed_config ?? {}) as Obj;
  const type = tc['@type'] as string | undefined;
  const zipkin = type ? type === ZIPKIN_TYPE : p.name === ZIPKIN_NAME;
  const otel = type ? type === OTEL_TYPE : p.name === OTEL_NAME;
  if (!zipkin && !otel) {
    // Tracing changes no traffic: a control plane's other tracer (Datadog, SkyWalking…) is
    // reported and skipped, as this field was before Strait traced at all.
    warnings.push({ path: `${path}.provider`, message: `tracer ${type ?? p.name} is not supported (supported: ${ZIPKIN_NAME}, ${OTEL_NAME}); no spans will be created` });
    return null;
  }
  const tp = `${path}.provider.typed_config`;
  const sink = zipkin ? zipkinSink(tc, tp, clusterNames, errors, warnings) : otlpSink(tc, tp, clusterNames, errors, warnings);
  for (const f of ['custom_tags', 'client_sampling', 'overall_sampling'] as const) {
    const v = t[f];
    if (v !== undefined && v !== null && !(Array.isArray(v) && v.length === 0)) warnings.push({ path: `${path}.${f}`, message: 'is not implemented yet; ignored' });
  }
  if (errors.length > start) return null;
  return Object.freeze({
    sink: Object.freeze(sink),
    // W3C trace ids are 128-bit; OpenTelemetry has no 64-bit form.
    traceId128: otel || tc.trace_id_128bit === true,
    randomSampling: percent(t.random_sampling, 1),
    maxPathTagLength: t.max_path_tag_length === undefined || t.max_path_tag_length === null ? 256 : Number(t.max_path_tag_length),
    preferW3c: otel,
  });
}
