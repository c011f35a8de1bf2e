import { durationMs } from '../../config/values.js';
import type { FieldError } from '../../errors.js';
import { protocols } from '../../protocols/lazy.js';

type Obj = Record<string, any>;

/** The custom checker name for RPC heartbeats (typed_config `strait.health_checkers.v1.RpcHeartbeat`). */
export const RPC_HEARTBEAT_CHECKER = 'strait.health_checkers.rpc_heartbeat';
export const RPC_HEARTBEAT_TYPE = 'type.googleapis.com/strait.health_checkers.v1.RpcHeartbeat';

export type ProbeSpec =
  | { readonly kind: 'tcp'; readonly send: Buffer | null; readonly receive: readonly Buffer[] }
  | {
      readonly kind: 'http';
      readonly host: string;
      readonly path: string;
      readonly method: string;
      /** Half-open ranges [start, end), as Envoy's Int64Range. */
      readonly expected: ReadonlyArray<readonly [number, number]>;
      readonly retriable: ReadonlyArray<readonly [number, number]>;
      readonly headers: ReadonlyArray<readonly [string, string]>;
    }
  | { readonly kind: 'grpc'; readonly serviceName: string; readonly authority: string; readonly metadata: ReadonlyArray<readonly [string, string]> }
  | { readonly kind: 'rpc'; readonly protocol: string };

/** One validated `health_checks[]` entry, Envoy's defaults filled in. */
export interface HealthCheckConfig {
  readonly timeoutMs: number;
  readonly intervalMs: number;
  readonly initialJitterMs: number;
  readonly intervalJitterMs: number;
  readonly intervalJitterPercent: number;
  readonly unhealthyThreshold: number;
  readonly healthyThreshold: number;
  readonly unhealthyIntervalMs: number;
  readonly unhealthyEdgeIntervalMs: number;
  readonly healthyEdgeIntervalMs: number;
  /** Used until the cluster has carried traffic (Envoy: 60 s), so idle clusters cost little. */
  readonly noTrafficIntervalMs: number;
  readonly noTrafficHealthyIntervalMs: number;
  readonly reuseConnection: boolean;
  readonly probe: ProbeSpec;
}

/** Envoy's `core.v3.HealthCheck.Payload`: hex `text` or base64 `binary`. */
function payload(p: Obj, path: string, errors: FieldError[]): Buffer | null {
  if (typeof p.text === 'string') {
    if (!/^([0-9a-fA-F]{2})*$/.test(p.text)) {
      errors.push({ path: `${path}.text`, message: 'must be hex bytes (e.g. "000102")' });
      return null;
    }
    return Buffer.from(p.text, 'hex');
  }
  if (p.binary !== undefined) return Buffer.from(p.binary as string, 'base64');
  errors.push({ path, message: 'needs text (hex) or binary' });
  return null;
}

function ranges(list: Obj[] | undefined, dflt: ReadonlyArray<readonly [number, number]>, path: string, errors: FieldError[]): ReadonlyArray<readonly [number, number]> {
  if (!list || list.length === 0) return dflt;
  return list.map((r, i) => {
    const s = Number(r.start ?? 0);
    const e = Number(r.end ?? 0);
    if (!(s >= 100 && e <= 600 && s < e)) errors.push({ path: `${path}[${i}]`, message: `must be a range of HTTP statuses, start < end, within [100, 600) (got ${s}-${e})` });
    return [s, e] as const;
  });
}

function headerList(list: Obj[] | undefined): ReadonlyArray<readonly [string, string]> {
  return (list ?? []).map((o) => [String(o.header?.key ?? o.key ?? '').toLowerCase(), String(o.header?.value ?? o.value ?? '')] as const);
}

/** Parses one `health_checks[]` entry, pushing every problem with its path. */
export function buildHealthCheckConfig(hc: Obj, path: string, errors: FieldError[], warnings: FieldError[] | null): HealthCheckConfig | null {
  const start = errors.length;
  const req = (f: string): number => {
    const v = hc[f];
    if (v === undefined || v === null) {
      errors.push({ path: `${path}.${f}`, message: 'is required' });
      return 0;
    }
    return typeof v === 'number' ? v : durationMs(v)!;
  };
  const opt = (f: string, dflt: number): number => (hc[f] === undefined || hc[f] === null ? dflt : durationMs(hc[f])!);
  const timeoutMs = req('timeout');
  const intervalMs = req('interval');
  if (hc.timeout !== undefined && timeoutMs <= 0) errors.push({ path: `${path}.timeout`, message: 'must be greater than 0' });
  if (hc.interval !== undefined && intervalMs <= 0) errors.push({ path: `${path}.interval`, message: 'must be greater than 0' });
  const threshold = (f: string): number => {
    const v = hc[f];
    if (v === undefined || v === null) {
      errors.push({ path: `${path}.${f}`, message: 'is required' });
      return 1;
    }
    const n = Number(v);
    if (!(Number.isInteger(n) && n >= 1)) errors.push({ path: `${path}.${f}`, message: `must be at least 1 (got ${v})` });
    return n;
  };
  const unhealthyThreshold = threshold('unhealthy_threshold');
  const healthyThreshold = threshold('healthy_threshold');
  const unhealthyIntervalMs = opt('unhealthy_interval', intervalMs);

  for (const f of ['alt_port', 'transport_socket_match_criteria', 'tls_options'] as const) {
    if (hc[f] !== undefined) errors.push({ path: `${path}.${f}`, message: 'is not supported yet' });
  }
  for (const f of ['event_log_path', 'event_logger', 'always_log_health_check_failures', 'always_log_health_check_success', 'event_service'] as const) {
    if (hc[f] !== undefined) warnings?.push({ path: `${path}.${f}`, message: 'health check event logs are not written; ignored' });
  }

  let probe: ProbeSpec | null = null;
  const kinds = ['tcp_health_check', 'http_health_check', 'grpc_health_check', 'custom_health_check'].filter((k) => hc[k] !== undefined);
  if (kinds.length !== 1) errors.push({ path, message: 'needs exactly one of tcp_health_check, http_health_check, grpc_health_check, custom_health_check' });
  if (hc.tcp_health_check !== undefined) {
    const t = hc.tcp_health_check as Obj;
    const p = `${path}.tcp_health_check`;
    const send = t.send ? payload(t.send, `${p}.send`, errors) : null;
    const receive = ((t.receive ?? []) as Obj[]).map((r, i) => payload(r, `${p}.receive[${i}]`, errors)).filter((b): b is Buffer => b !== null);
    if (t.proxy_protocol_config) errors.push({ path: `${p}.proxy_protocol_config`, message: 'is not supported yet' });
    probe = { kind: 'tcp', send: send && send.length ? send : null, receive };
  } else if (hc.http_health_check !== undefined) {
    const h = hc.http_health_check as Obj;
    const p = `${path}.http_health_check`;
    if (!h.path) errors.push({ path: `${p}.path`, message: 'is required' });
    if (h.codec_client_type && h.codec_client_type !== 'HTTP1') errors.push({ path: `${p}.codec_client_type`, message: `${h.codec_client_type} health checks are not supported yet (HTTP1 only)` });
    for (const f of ['send', 'receive', 'service_name_matcher', 'response_buffer_size'] as const) {
      const v = h[f];
      if (v !== undefined && !(Array.isArray(v) && v.length === 0)) errors.push({ path: `${p}.${f}`, message: 'is not supported yet' });
    }
    const method = String(h.method ?? 'GET');
    if (method === 'CONNECT') errors.push({ path: `${p}.method`, message: 'CONNECT cannot be a health check' });
    probe = {
      kind: 'http',
      host: String(h.host ?? ''),
      path: String(h.path ?? '/'),
      method: method === 'METHOD_UNSPECIFIED' ? 'GET' : method,
      // Envoy's default: 200 only.
      expected: ranges(h.expected_statuses, [[200, 201]], `${p}.expected_statuses`, errors),
      retriable: ranges(h.retriable_statuses, [], `${p}.retriable_statuses`, errors),
      headers: headerList(h.request_headers_to_add),
    };
    if (h.request_headers_to_remove?.length) warnings?.push({ path: `${p}.request_headers_to_remove`, message: 'ignored (the check sends only Host, User-Agent and the headers to add)' });
  } else if (hc.grpc_health_check !== undefined) {
    const g = hc.grpc_health_check as Obj;
    probe = { kind: 'grpc', serviceName: String(g.service_name ?? ''), authority: String(g.authority ?? ''), metadata: headerList(g.initial_metadata) };
  } else if (hc.custom_health_check !== undefined) {
    const c = hc.custom_health_check as Obj;
    const p = `${path}.custom_health_check`;
    const tc = (c.typed_config ?? {}) as Obj;
    if (c.name !== RPC_HEARTBEAT_CHECKER && tc['@type'] !== RPC_HEARTBEAT_TYPE) {
      errors.push({ path: `${p}.name`, message: `unknown health checker "${c.name}" (supported: ${RPC_HEARTBEAT_CHECKER})` });
    } else {
      const protocol = String(tc.protocol ?? '').toLowerCase();
      const { getCodec, protocolNames } = protocols();
      const codec = getCodec(protocol);
      if (!codec) errors.push({ path: `${p}.typed_config.protocol`, message: `must name an RPC codec (${protocolNames().join(', ')})` });
      else if (!codec.heartbeatRequest(0, 1)) errors.push({ path: `${p}.typed_config.protocol`, message: `the ${protocol} codec has no heartbeat to check with` });
      probe = { kind: 'rpc', protocol };
    }
  }

  if (errors.length > start || !probe) return null;
  const noTrafficIntervalMs = opt('no_traffic_interval', 60_000);
  return Object.freeze({
    timeoutMs,
    intervalMs,
    initialJitterMs: opt('initial_jitter', 0),
    intervalJitterMs: opt('interval_jitter', 0),
    intervalJitterPercent: Number(hc.interval_jitter_percent ?? 0),
    unhealthyThreshold,
    healthyThreshold,
    unhealthyIntervalMs,
    unhealthyEdgeIntervalMs: opt('unhealthy_edge_interval', unhealthyIntervalMs),
    healthyEdgeIntervalMs: opt('healthy_edge_interval', intervalMs),
    noTrafficIntervalMs,
    noTrafficHealthyIntervalMs: opt('no_traffic_healthy_interval', noTrafficIntervalMs),
    reuseConnection: hc.reuse_connection !== false,
    probe,
  });
}
