import type { FieldError } from '../../errors.js';

type Obj = Record<string, any>;

const ZIPKIN_NAME = 'envoy.tracers.zipkin';
const ZIPKIN_TYPE = 'type.googleapis.com/envoy.config.trace.v3.ZipkinConfig';

/** HCM `tracing` with an `envoy.tracers.zipkin` provider, validated and frozen. */
export interface TracingConfig {
  readonly collectorCluster: string;
  readonly collectorPath: string;
  readonly collectorHostname: string;
  /** New traces get 128-bit ids (trace_id_128bit); 64-bit otherwise, as Envoy defaults. */
  readonly traceId128: boolean;
  /** random_sampling in [0, 1]: the share of new traces (no caller decision) that are sampled. */
  readonly randomSampling: number;
  /** max_path_tag_length: http.url tags are cut to this many characters (Envoy's default 256). */
  readonly maxPathTagLength: number;
}

function percent(v: Obj | undefined, dflt: number): number {
  if (!v || v.value === undefined || v.value === null) return dflt;
  return Math.min(1, Math.max(0, Number(v.value) / 100));
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
  if (type ? type !== ZIPKIN_TYPE : p.name !== ZIPKIN_NAME) {
    // Tracing changes no traffic: a control plane's other tracer (OpenTelemetry, Datadog…) is
    // reported and skipped, as this field was before Strait traced at all.
    warnings.push({ path: `${path}.provider`, message: `tracer ${type ?? p.name} is not supported (supported: ${ZIPKIN_NAME}); no spans will be created` });
    return null;
  }
  const tp = `${path}.provider.typed_config`;
  const cluster = String(tc.collector_cluster ?? '');
  if (!cluster) errors.push({ path: `${tp}.collector_cluster`, message: 'is required' });
  else if (!clusterNames.has(cluster)) errors.push({ path: `${tp}.collector_cluster`, message: `unknown cluster "${cluster}"` });
  const endpoint = String(tc.collector_endpoint ?? '');
  if (!endpoint.startsWith('/')) errors.push({ path: `${tp}.collector_endpoint`, message: 'is required and must be a path (e.g. /api/v2/spans)' });
  const version = tc.collector_endpoint_version ?? 'HTTP_JSON';
  if (version !== 'HTTP_JSON') errors.push({ path: `${tp}.collector_endpoint_version`, message: `${version} is not supported (supported: HTTP_JSON)` });
  if (tc.shared_span_context === true) warnings.push({ path: `${tp}.shared_span_context`, message: 'server spans always get their own id (child of the caller span); ignored' });
  for (const f of ['custom_tags', 'client_sampling', 'overall_sampling'] as const) {
    const v = t[f];
    if (v !== undefined && v !== null && !(Array.isArray(v) && v.length === 0)) warnings.push({ path: `${path}.${f}`, message: 'is not implemented yet; ignored' });
  }
  if (errors.length > start) return null;
  return Object.freeze({
    collectorCluster: cluster,
    collectorPath: endpoint,
    collectorHostname: String(tc.collector_hostname ?? ''),
    traceId128: tc.trace_id_128bit === true,
    randomSampling: percent(t.random_sampling, 1),
    maxPathTagLength: t.max_path_tag_length === undefined || t.max_path_tag_length === null ? 256 : Number(t.max_path_tag_length),
  });
}
