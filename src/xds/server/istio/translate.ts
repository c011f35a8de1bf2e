import { isIP } from 'node:net';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE } from '../../proto.js';
import type { Generated, IstioDoc, IstioProblem, Obj, TranslateOptions } from './types.js';
import { durationMs, isObj } from './validate.js';

/** Envoy's proto-JSON duration for a number of milliseconds. */
const dur = (ms: number) => `${ms / 1000}s`;
const ADS = { ads: {}, resource_api_version: 'V3' };
const HTTP_PROTOCOLS = new Set(['HTTP', 'HTTP2', 'GRPC', 'GRPC-WEB', 'HTTP_PROXY']);
const H2_PROTOCOLS = new Set(['HTTP2', 'GRPC', 'GRPC-WEB']);
/** Envoy's "no limit" for circuit breakers, as Istio sets them when a DestinationRule does not. */
const MAX = 4294967295;

/** `outbound|<port>|<subset>|<host>`: Istio's outbound cluster name, also the EDS service name. */
export function clusterName(port: number, subset: string, host: string): string {
  return `outbound|${port}|${subset}|${host}`;
}

/** A short name ("reviews") means the object's namespace, as Kubernetes DNS resolves it. */
function fqdn(host: string, ns: string): string {
  return host.includes('.') || host.includes('*') ? host : `${host}.${ns}.svc.cluster.local`;
}

function hostMatches(pattern: string, host: string): boolean {
  if (pattern === host) return true;
  return pattern.startsWith('*') && host.endsWith(pattern.slice(1));
}

interface ServicePort {
  readonly number: number;
  readonly name: string;
  readonly protocol: string;
  readonly targetPort?: number;
}

interface Service {
  readonly host: string;
  readonly ports: ServicePort[];
  readonly resolution: string;
  readonly endpoints: Obj[];
  readonly doc: IstioDoc;
}

function portProtocol(p: Obj): string {
  const proto = String(p.protocol ?? '').toUpperCase();
  if (proto) return proto;
  // Istio's naming convention when the protocol is not declared: "http-foo", "grpc", "tcp-db".
  const prefix = String(p.name ?? '').split('-')[0]!.toUpperCase();
  return HTTP_PROTOCOLS.has(prefix) || prefix === 'HTTP2' ? prefix : 'TCP';
}

function isHttp(protocol: string): boolean {
  return HTTP_PROTOCOLS.has(protocol);
}

/** Field names a spec object carries beyond `known`, for "not supported" warnings. */
function extra(o: Obj | undefined, known: readonly string[]): string[] {
  if (!isObj(o)) return [];
  return Object.keys(o).filter((k) => !known.includes(k) && o[k] !== undefined && o[k] !== null);
}

/**
 * Translates Istio ServiceEntry, DestinationRule and VirtualService objects into the xDS an
 * Istio sidecar gets for its outbound traffic: `outbound|port|subset|host` clusters (+ their
 * assignments), one RouteConfiguration per HTTP port named by the port, and one outbound
 * listener per port. Fields that would change traffic and are not translated are warned about
 * with their path; the rest of the object still applies.
 */
export function translateIstio(docs: readonly IstioDoc[], opts: TranslateOptions): { resources: Generated[]; problems: IstioProblem[] } {
  const out: Generated[] = [];
  const problems: IstioProblem[] = [];
  const warn = (d: IstioDoc, path: string, message: string) => problems.push({ file: d.file, path: `${d.where}${path}`, message, severity: 'warning' });
  const emit = (d: IstioDoc, path: string, type: string, value: Obj) => out.push({ type, value, file: d.file, where: `${d.where}${path}` });

  // --- the service registry: ServiceEntry hosts × ports ---
  const services = new Map<string, Service>();
  for (const d of docs.filter((x) => x.kind === 'ServiceEntry')) {
    const s = d.spec;
    for (const f of extra(s, ['hosts', 'addresses', 'ports', 'location', 'resolution', 'endpoints', 'exportTo', 'subjectAltNames'])) {
      warn(d, `spec.${f}`, `is not supported; ignored (${f === 'workloadSelector' ? 'workload entries are not read' : 'it changes which endpoints serve'})`);
    }
    (s.hosts as string[]).forEach((h, i) => {
      const host = fqdn(h, d.namespace);
      if (services.has(host)) {
        warn(d, `spec.hosts[${i}]`, `host "${host}" is already defined by ${services.get(host)!.doc.file}; this one is ignored`);
        return;
      }
      const ports = (s.ports as Obj[]).map((p) => ({ number: p.number, name: String(p.name ?? p.number), protocol: portProtocol(p), targetPort: p.targetPort }));
      services.set(host, { host, ports, resolution: s.resolution ?? 'NONE', endpoints: (s.endpoints ?? []) as Obj[], doc: d });
    });
  }
  const lookup = (d: IstioDoc, host: string): Service | undefined => services.get(fqdn(host, d.namespace));

  // --- destination rules: the most specific host wins (exact before wildcard), as in Istio ---
  const rules = docs.filter((x) => x.kind === 'DestinationRule');
  const ruleFor = (host: string): IstioDoc | undefined => {
    let best: IstioDoc | undefined;
    for (const r of rules) {
      const h = fqdn(r.spec.host, r.namespace);
      if (!hostMatches(h, host)) continue;
      if (!best || (h === host && fqdn(best.spec.host, best.namespace) !== host)) best = r;
    }
    return best;
  };
  for (const r of rules) {
    const h = fqdn(r.spec.host, r.namespace);
    if (![...services.keys()].some((s) => hostMatches(h, s))) warn(r, 'spec.host', `no ServiceEntry defines "${h}"; the rule applies to nothing`);
    for (const f of extra(r.spec, ['host', 'trafficPolicy', 'subsets', 'exportTo'])) warn(r, `spec.${f}`, 'is not supported; ignored');
  }

  /** Subsets each (host) has, for checking route destinations. */
  const subsetsOf = new Map<string, Set<string>>();
  /** Route-level hash policies a consistentHash load balancer needs, by cluster name. */
  const hashPolicies = new Map<string, Obj[]>();

  for (const svc of services.values()) {
    const dr = ruleFor(svc.host);
    const subsets = ((dr?.spec.subsets ?? []) as Obj[]);
    subsetsOf.set(svc.host, new Set(subsets.map((x) => x.name)));
    for (const port of svc.ports) {
      const variants: Array<{ subset: string; labels: Obj; policies: Array<{ tp: Obj; path: string }> }> = [{ subset: '', labels: {}, policies: [] }];
      const top = dr?.spec.trafficPolicy as Obj | undefined;
      const level = (tp: Obj | undefined, path: string) => {
        if (!isObj(tp)) return [];
        const out: Array<{ tp: Obj; path: string }> = [{ tp, path }];
        const i = ((tp.portLevelSettings ?? []) as Obj[]).findIndex((pl) => pl.port?.number === port.number);
        if (i >= 0) out.push({ tp: tp.portLevelSettings[i], path: `${path}.portLevelSettings[${i}]` });
        return out;
      };
      variants[0]!.policies.push(...level(top, 'spec.trafficPolicy'));
      subsets.forEach((sub, i) => {
        variants.push({ subset: sub.name, labels: sub.labels ?? {}, policies: [...level(top, 'spec.trafficPolicy'), ...level(sub.trafficPolicy, `spec.subsets[${i}].trafficPolicy`)] });
      });
      for (const v of variants) {
        const name = clusterName(port.number, v.subset, svc.host);
        const cluster = buildCluster(svc, port, name, v.labels, svc.doc);
        for (const { tp, path } of v.policies) applyPolicy(cluster, tp, path, (p, m) => warn(dr!, p, m), hashPolicies, name);
        emit(svc.doc, 'spec', CLUSTER_TYPE, cluster);
        if (cluster.type === 'EDS') emit(svc.doc, 'spec.endpoints', ENDPOINT_TYPE, assignment(svc, port, name, v.labels));
      }
    }
  }

  // --- virtual services: routes per port ---
  type Vhost = { name: string; domains: string[]; routes: Obj[]; doc: IstioDoc };
  const vhostsByPort = new Map<number, Vhost[]>();
  const tcpByPort = new Map<number, { svc: Service; route: Obj; doc?: IstioDoc }>();
  const claimed = new Map<string, IstioDoc>();
  const vsFor = new Map<string, IstioDoc>();
  for (const vs of docs.filter((x) => x.kind === 'VirtualService')) {
    const gw = vs.spec.gateways as unknown;
    if (Array.isArray(gw) && gw.length && !gw.includes('mesh')) {
      warn(vs, 'spec.gateways', 'only sidecar ("mesh") routing is served; this VirtualService binds gateways only and is ignored');
      continue;
    }
    for (const f of extra(vs.spec, ['hosts', 'gateways', 'http', 'tcp', 'exportTo'])) warn(vs, `spec.${f}`, 'is not supported; ignored');
    (vs.spec.hosts as string[]).forEach((h, i) => {
      const host = fqdn(h, vs.namespace);
      if (!services.has(host)) warn(vs, `spec.hosts[${i}]`, `no ServiceEntry defines "${host}"; not routed`);
      else if (claimed.has(host)) warn(vs, `spec.hosts[${i}]`, `"${host}" is already routed by ${claimed.get(host)!.file}; ignored here`);
      else {
        claimed.set(host, vs);
        vsFor.set(host, vs);
      }
    });
  }

  const destCluster = (vs: IstioDoc, dst: Obj, path: string, port: number): string | null => {
    const svc = lookup(vs, dst.host);
    if (!svc) {
      warn(vs, `${path}.host`, `no ServiceEntry defines "${fqdn(dst.host, vs.namespace)}"; the destination is dropped`);
      return null;
    }
    const p = dst.port?.number ?? (svc.ports.length === 1 ? svc.ports[0]!.number : port);
    if (!svc.ports.some((x) => x.number === p)) {
      warn(vs, `${path}.port`, `"${svc.host}" has no port ${p}; the destination is dropped`);
      return null;
    }
    const subset = dst.subset ?? '';
    // Istio still names the cluster when the subset is missing; clients then answer 503. Say so.
    if (subset && !subsetsOf.get(svc.host)?.has(subset)) warn(vs, `${path}.subset`, `no DestinationRule defines subset "${subset}" of "${svc.host}"; requests to it fail with 503`);
    return clusterName(p, subset, svc.host);
  };

  for (const svc of services.values()) {
    const vs = vsFor.get(svc.host);
    for (const port of svc.ports) {
      const defaultCluster = clusterName(port.number, '', svc.host);
      if (!isHttp(port.protocol)) {
        const prev = tcpByPort.get(port.number);
        if (prev) {
          warn(svc.doc, 'spec.ports', `TCP port ${port.number} is already served for "${prev.svc.host}" (no VIPs to tell them apart); "${svc.host}" gets no listener on it`);
          continue;
        }
        let route: Obj | null = null;
        if (vs) {
          const i = ((vs.spec.tcp ?? []) as Obj[]).findIndex((t) => !t.match || (t.match as Obj[]).some((m) => m.port === undefined || m.port === port.number));
          if (i >= 0) {
            const t = vs.spec.tcp[i];
            ((t.match ?? []) as Obj[]).forEach((m, j) => {
              for (const f of extra(m, ['port'])) warn(vs, `spec.tcp[${i}].match[${j}].${f}`, 'is not supported; ignored');
            });
            route = weighted(vs, t.route, `spec.tcp[${i}].route`, port.number, destCluster);
          }
        }
        tcpByPort.set(port.number, { svc, route: route ?? { cluster: defaultCluster }, doc: vs });
        continue;
      }
      const routes: Obj[] = [];
      if (vs) {
        ((vs.spec.http ?? []) as Obj[]).forEach((h, i) => {
          const built = httpRoutes(vs, h, `spec.http[${i}]`, port.number, destCluster, hashPolicies, (p, m) => warn(vs, p, m));
          routes.push(...built.routes);
        });
      } else {
        routes.push({ name: 'default', match: { prefix: '/' }, route: { cluster: defaultCluster, timeout: '0s', retry_policy: defaultRetry(), ...(hashPolicies.get(defaultCluster) ? { hash_policy: hashPolicies.get(defaultCluster) } : {}) } });
      }
      if (opts.grpcListeners) {
        emit(svc.doc, 'spec.ports', LISTENER_TYPE, {
          name: `${svc.host}:${port.number}`,
          api_listener: {
            api_listener: {
              '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
              stat_prefix: `${svc.host}:${port.number}`,
              rds: { route_config_name: String(port.number), config_source: ADS },
              http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }],
            },
          },
        });
      }
      const list = vhostsByPort.get(port.number) ?? [];
      vhostsByPort.set(port.number, list);
      list.push({ name: `${svc.host}:${port.number}`, domains: domains(svc.host, port.number, svc.doc.namespace), routes, doc: svc.doc });
    }
  }

  const listenerName = (port: number) => `${opts.outboundBind}_${port}`;
  for (const [port, vhosts] of vhostsByPort) {
    // Domains must be unique across a route configuration's virtual hosts; the first claim wins.
    const used = new Set<string>();
    const virtual_hosts = vhosts.map((v) => ({
      name: v.name,
      domains: v.domains.filter((d) => !used.has(d) && used.add(d)),
      routes: v.routes,
      // As Istio: each try tells the upstream which attempt it is.
      include_request_attempt_count: true,
    }));
    const origin = vhosts[0]!.doc;
    emit(origin, 'spec.ports', ROUTE_TYPE, { name: String(port), virtual_hosts, validate_clusters: false });
    // Istio's shape: an empty fault filter in every HTTP chain, the faults themselves per route,
    // so a VirtualService that adds one changes routes only, never the listener. The cors filter too (before fault, Istio's order): it acts only on routes with a policy.
    const httpFilters: Obj[] = [
      { name: CORS_FILTER, typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors' } },
      { name: 'envoy.filters.http.fault', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault' } },
    ];
    httpFilters.push({ name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } });
    emit(origin, 'spec.ports', LISTENER_TYPE, {
      name: listenerName(port),
      address: { socket_address: { address: opts.outboundBind, port_value: port } },
      traffic_direction: 'OUTBOUND',
      filter_chains: [
        {
          filters: [
            {
              name: 'envoy.filters.network.http_connection_manager',
              typed_config: {
                '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
                stat_prefix: `outbound_${opts.outboundBind}_${port}`,
                rds: { route_config_name: String(port), config_source: { ...ADS, initial_fetch_timeout: '0s' } },
                http_filters: httpFilters,
              },
            },
          ],
        },
      ],
    });
  }
  for (const [port, t] of tcpByPort) {
    if (vhostsByPort.has(port)) {
      warn(t.svc.doc, 'spec.ports', `port ${port} carries HTTP for another service; TCP to "${t.svc.host}" on it is not served`);
      continue;
    }
    const cl = t.route;
    emit(t.doc ?? t.svc.doc, 'spec', LISTENER_TYPE, {
      name: listenerName(port),
      address: { socket_address: { address: opts.outboundBind, port_value: port } },
      traffic_direction: 'OUTBOUND',
      filter_chains: [
        {
          filters: [
            {
              name: 'envoy.filters.network.tcp_proxy',
              typed_config: {
                '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
                stat_prefix: cl.cluster ?? `outbound|${port}||${t.svc.host}`,
                ...cl,
              },
            },
          ],
        },
      ],
    });
  }
  return { resources: out, problems };
}

/** The names a sidecar answers for a host: the host, its Kubernetes short forms, each with and without the port. */
function domains(host: string, port: number, ns: string): string[] {
  const names = [host];
  const suffix = `.${ns}.svc.cluster.local`;
  if (host.endsWith(suffix)) {
    const short = host.slice(0, -suffix.length);
    names.push(short, `${short}.${ns}`, `${short}.${ns}.svc`);
  }
  return names.flatMap((n) => [n, `${n}:${port}`]);
}

/** Istio's default retry conditions for mesh routes. */
const DEFAULT_RETRY_ON = 'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes';

/** What Istio adds to every retry policy: a retry goes to a host the request has not tried. */
const RETRY_HOSTS: Obj = {
  retry_host_predicate: [
    { name: 'envoy.retry_host_predicates.previous_hosts', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate' } },
  ],
  host_selection_retry_max_attempts: '5',
};

function defaultRetry(): Obj {
  return { retry_on: DEFAULT_RETRY_ON, num_retries: 2, retriable_status_codes: [503], ...RETRY_HOSTS };
}

/** `{cluster}` or `{weighted_clusters}` from Istio route destinations; null when none is usable. */
function weighted(vs: IstioDoc, list: Obj[], path: string, port: number, destCluster: (vs: IstioDoc, dst: Obj, path: string, port: number) => string | null): Obj | null {
  const picked: Array<{ name: string; weight: number }> = [];
  list.forEach((r, k) => {
    const name = destCluster(vs, r.destination, `${path}[${k}].destination`, port);
    // A single destination without a weight takes everything, as Istio reads it.
    const weight = r.weight ?? (list.length === 1 ? 100 : 0);
    if (name && weight > 0) picked.push({ name, weight });
  });
  if (!picked.length) return null;
  if (picked.length === 1) return { cluster: picked[0]!.name };
  return { weighted_clusters: { clusters: picked } };
}

function stringMatcher(m: Obj, ignoreCase = false): Obj {
  if (m.exact !== undefined) return { exact: m.exact, ...(ignoreCase ? { ignore_case: true } : {}) };
  if (m.prefix !== undefined) return { prefix: m.prefix, ...(ignoreCase ? { ignore_case: true } : {}) };
  return { safe_regex: { regex: m.regex } };
}

function headerMatcher(name: string, m: Obj, invert = false): Obj {
  // An empty StringMatch means "present", as Istio reads it.
  const base = !isObj(m) || !Object.keys(m).length ? { name, present_match: true } : { name, string_match: stringMatcher(m) };
  return invert ? { ...base, invert_match: true } : base;
}

function fraction(p: unknown): Obj {
  const v = isObj(p) ? Number(p.value) : Number(p ?? 100);
  // Millionths keep Istio's fractional percentages (0.1%) exact.
  return { numerator: Math.round(v * 10_000), denominator: 'MILLION' };
}

function headerOps(h: Obj | undefined): { add: Obj[]; remove: string[] } {
  const add: Obj[] = [];
  for (const [k, v] of Object.entries(h?.set ?? {})) add.push({ header: { key: k, value: String(v) }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' });
  for (const [k, v] of Object.entries(h?.add ?? {})) add.push({ header: { key: k, value: String(v) }, append_action: 'APPEND_IF_EXISTS_OR_ADD' });
  return { add, remove: ((h?.remove ?? []) as string[]).map(String) };
}

const CORS_FILTER = 'envoy.filters.http.cors';
const CORS_KNOWN = ['allowOrigins', 'allowOrigin', 'allowMethods', 'allowHeaders', 'exposeHeaders', 'maxAge', 'allowCredentials', 'unmatchedPreflights'];

/**
 * An HTTPRoute's corsPolicy as Istio writes it: a CorsPolicy in the route's typed_per_filter_config
 * (lists joined with commas, maxAge in seconds), on for every request; unmatchedPreflights IGNORE
 * answers preflights from other origins instead of forwarding them. null when it allows no origin.
 */
function corsPolicy(c: Obj, path: string, warn: (path: string, message: string) => void): Obj | null {
  for (const f of extra(c, CORS_KNOWN)) warn(`${path}.${f}`, 'is not supported; ignored');
  const origins: Obj[] = ((c.allowOrigins ?? []) as Obj[]).map((m) => stringMatcher(m));
  // The deprecated allowOrigin list holds exact origins.
  for (const o of (c.allowOrigin ?? []) as string[]) origins.push({ exact: String(o) });
  if (!origins.length) {
    warn(path, 'allows no origin; no CORS policy is set');
    return null;
  }
  const out: Obj = {
    '@type': 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy',
    allow_origin_string_match: origins,
    filter_enabled: { default_value: { numerator: 100, denominator: 'HUNDRED' } },
  };
  const list = (v: unknown) => ((v ?? []) as unknown[]).map(String).join(',');
  if (c.allowMethods?.length) out.allow_methods = list(c.allowMethods);
  if (c.allowHeaders?.length) out.allow_headers = list(c.allowHeaders);
  if (c.exposeHeaders?.length) out.expose_headers = list(c.exposeHeaders);
  if (c.maxAge !== undefined) out.max_age = String(Math.floor(durationMs(c.maxAge)! / 1000));
  if (c.allowCredentials !== undefined) out.allow_credentials = c.allowCredentials === true;
  if (c.unmatchedPreflights === 'IGNORE') out.forward_not_matching_preflights = false;
  return out;
}

const HTTP_KNOWN = ['name', 'match', 'route', 'redirect', 'directResponse', 'rewrite', 'timeout', 'retries', 'fault', 'mirror', 'mirrors', 'mirrorPercentage', 'mirrorPercent', 'mirror_percent', 'headers', 'corsPolicy'];
const MATCH_KNOWN = ['name', 'uri', 'scheme', 'method', 'authority', 'headers', 'port', 'queryParams', 'ignoreUriCase', 'withoutHeaders', 'sourceNamespace', 'gateways'];

/** One Istio HTTPRoute as Envoy routes: one per match (none: a catch-all), all with the same action. */
function httpRoutes(
  vs: IstioDoc,
  h: Obj,
  path: string,
  port: number,
  destCluster: (vs: IstioDoc, dst: Obj, path: string, port: number) => string | null,
  hashPolicies: Map<string, Obj[]>,
  warn: (path: string, message: string) => void,
): { routes: Obj[] } {
  for (const f of extra(h, HTTP_KNOWN)) warn(`${path}.${f}`, 'is not supported; ignored');
  const matches = ((h.match ?? []) as Obj[]).map((m, j) => ({ m, j })).filter(({ m }) => m.port === undefined || m.port === port);
  if (h.match?.length && !matches.length) return { routes: [] };
  const action: Obj = {};
  const extras: Obj = {};
  if (h.route) {
    const target = weighted(vs, h.route, `${path}.route`, port, destCluster);
    if (!target) {
      warn(`${path}.route`, 'no usable destination; the route answers 503');
      action.cluster = 'unknown-destination';
    } else Object.assign(action, target);
    action.timeout = h.timeout !== undefined ? dur(durationMs(h.timeout)!) : '0s';
    if (h.retries) {
      const r = h.retries as Obj;
      if (r.attempts === 0) action.retry_policy = { num_retries: 0 };
      else {
        action.retry_policy = {
          retry_on: r.retryOn ?? DEFAULT_RETRY_ON,
          num_retries: r.attempts ?? 2,
          ...(r.perTryTimeout !== undefined ? { per_try_timeout: dur(durationMs(r.perTryTimeout)!) } : {}),
          ...RETRY_HOSTS,
        };
        // Istio accepts bare status codes in retryOn ("503,gateway-error").
        const parts = String(action.retry_policy.retry_on).split(',').map((s) => s.trim()).filter(Boolean);
        const codes = parts.filter((s) => /^\d{3}$/.test(s)).map(Number);
        const on = parts.filter((s) => !/^\d{3}$/.test(s));
        if (codes.length && !on.includes('retriable-status-codes')) on.push('retriable-status-codes');
        action.retry_policy.retry_on = on.join(',');
        if (codes.length) action.retry_policy.retriable_status_codes = codes;
      }
      for (const f of extra(r, ['attempts', 'perTryTimeout', 'retryOn'])) warn(`${path}.retries.${f}`, 'is not supported; ignored');
    } else action.retry_policy = defaultRetry();
    const mirrors: Obj[] = [];
    const mirrorPct = h.mirrorPercentage ?? (h.mirrorPercent !== undefined ? { value: h.mirrorPercent } : undefined);
    if (h.mirror) {
      const c = destCluster(vs, h.mirror, `${path}.mirror`, port);
      if (c) mirrors.push({ cluster: c, runtime_fraction: { default_value: fraction(mirrorPct ?? { value: 100 }) } });
    }
    ((h.mirrors ?? []) as Obj[]).forEach((m, j) => {
      const c = destCluster(vs, m.destination, `${path}.mirrors[${j}].destination`, port);
      if (c) mirrors.push({ cluster: c, runtime_fraction: { default_value: fraction(m.percentage ?? mirrorPct ?? { value: 100 }) } });
    });
    if (mirrors.length) action.request_mirror_policies = mirrors;
    const hp = (action.cluster ? [action.cluster] : (action.weighted_clusters?.clusters ?? []).map((c: Obj) => c.name)).map((n: string) => hashPolicies.get(n)).find(Boolean);
    if (hp) action.hash_policy = hp;
    if (h.rewrite) {
      const rw = h.rewrite as Obj;
      if (rw.uri !== undefined) action.prefix_rewrite = rw.uri;
      if (rw.authority !== undefined) action.host_rewrite_literal = rw.authority;
      if (rw.uriRegexRewrite) action.regex_rewrite = { pattern: { regex: rw.uriRegexRewrite.match }, substitution: rw.uriRegexRewrite.rewrite ?? '' };
      for (const f of extra(rw, ['uri', 'authority', 'uriRegexRewrite'])) warn(`${path}.rewrite.${f}`, 'is not supported; ignored');
    }
  }
  const kind = h.route ? 'route' : h.redirect ? 'redirect' : h.directResponse ? 'direct_response' : null;
  if (!kind) {
    warn(path, 'delegate is not supported; the route is ignored');
    return { routes: [] };
  }
  if (h.redirect) {
    const r = h.redirect as Obj;
    action.path_redirect = r.uri;
    if (r.authority) action.host_redirect = r.authority;
    if (r.scheme) action.scheme_redirect = r.scheme;
    if (r.port) action.port_redirect = r.port;
    const codes: Record<number, string> = { 301: 'MOVED_PERMANENTLY', 302: 'FOUND', 303: 'SEE_OTHER', 307: 'TEMPORARY_REDIRECT', 308: 'PERMANENT_REDIRECT' };
    if (r.redirectCode) action.response_code = codes[r.redirectCode] ?? 'MOVED_PERMANENTLY';
    for (const k of Object.keys(action)) if (action[k] === undefined) delete action[k];
  }
  if (h.directResponse) {
    const d = h.directResponse as Obj;
    action.status = d.status;
    if (d.body?.string !== undefined) action.body = { inline_string: d.body.string };
  }
  if (h.fault) {
    const f = h.fault as Obj;
    const cfg: Obj = { '@type': 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault' };
    if (f.delay) cfg.delay = { fixed_delay: dur(durationMs(f.delay.fixedDelay)!), percentage: fraction(f.delay.percentage ?? (f.delay.percent !== undefined ? { value: f.delay.percent } : undefined)) };
    if (f.abort) {
      cfg.abort = { percentage: fraction(f.abort.percentage) };
      if (f.abort.httpStatus !== undefined) cfg.abort.http_status = f.abort.httpStatus;
      else cfg.abort.grpc_status = typeof f.abort.grpcStatus === 'number' ? f.abort.grpcStatus : 14;
    }
    extras.typed_per_filter_config = { 'envoy.filters.http.fault': cfg };
  }
  if (h.corsPolicy) {
    const cors = corsPolicy(h.corsPolicy as Obj, `${path}.corsPolicy`, warn);
    if (cors) extras.typed_per_filter_config = { ...extras.typed_per_filter_config, [CORS_FILTER]: cors };
  }
  const hdr = h.headers as Obj | undefined;
  if (hdr) {
    const req = headerOps(hdr.request);
    const res = headerOps(hdr.response);
    if (req.add.length) extras.request_headers_to_add = req.add;
    if (req.remove.length) extras.request_headers_to_remove = req.remove;
    if (res.add.length) extras.response_headers_to_add = res.add;
    if (res.remove.length) extras.response_headers_to_remove = res.remove;
  }
  const build = (m: Obj | null, j: number): Obj => {
    const match: Obj = {};
    if (m) {
      for (const f of extra(m, MATCH_KNOWN)) warn(`${path}.match[${j}].${f}`, 'is not supported; this match condition is ignored');
      const ic = m.ignoreUriCase === true;
      if (m.uri?.exact !== undefined) match.path = m.uri.exact;
      else if (m.uri?.prefix !== undefined) match.prefix = m.uri.prefix;
      else if (m.uri?.regex !== undefined) match.safe_regex = { regex: m.uri.regex };
      else match.prefix = '/';
      if (ic && (match.path !== undefined || match.prefix !== undefined)) match.case_sensitive = false;
      const headers: Obj[] = [];
      for (const [k, v] of Object.entries((m.headers ?? {}) as Obj)) headers.push(headerMatcher(k.toLowerCase(), v));
      for (const [k, v] of Object.entries((m.withoutHeaders ?? {}) as Obj)) headers.push(headerMatcher(k.toLowerCase(), v, true));
      if (m.method) headers.push(headerMatcher(':method', m.method));
      if (m.authority) headers.push(headerMatcher(':authority', m.authority));
      if (m.scheme) headers.push(headerMatcher(':scheme', m.scheme));
      if (headers.length) match.headers = headers;
      const qp = Object.entries((m.queryParams ?? {}) as Obj).map(([k, v]) => (isObj(v) && Object.keys(v).length ? { name: k, string_match: stringMatcher(v) } : { name: k, present_match: true }));
      if (qp.length) match.query_parameters = qp;
      if (m.sourceNamespace !== undefined || m.gateways !== undefined) warn(`${path}.match[${j}]`, 'sourceNamespace/gateways conditions are not supported; ignored');
    } else match.prefix = '/';
    const route: Obj = { match, [kind]: action, ...extras };
    const name = m?.name ?? h.name;
    if (name) route.name = String(name);
    return route;
  };
  const routes = matches.length ? matches.map(({ m, j }) => build(m, j)) : [build(null, 0)];
  return { routes };
}

/** Applies one DestinationRule traffic policy (top, port-level or subset) onto a cluster. */
function applyPolicy(c: Obj, tp: Obj, path: string, warn: (path: string, message: string) => void, hashPolicies: Map<string, Obj[]>, name: string): void {
  for (const f of extra(tp, ['loadBalancer', 'connectionPool', 'outlierDetection', 'portLevelSettings', 'port', 'tls'])) warn(`${path}.${f}`, 'is not supported; ignored');
  if (tp.tls && tp.tls.mode && tp.tls.mode !== 'DISABLE') warn(`${path}.tls`, `TLS origination (mode ${tp.tls.mode}) is not supported; traffic stays plain text`);
  const lb = tp.loadBalancer as Obj | undefined;
  if (lb) {
    for (const f of extra(lb, ['simple', 'consistentHash'])) warn(`${path}.loadBalancer.${f}`, 'is not supported; ignored');
    if (lb.simple) {
      const map: Record<string, string | undefined> = { ROUND_ROBIN: 'ROUND_ROBIN', LEAST_CONN: 'LEAST_REQUEST', LEAST_REQUEST: 'LEAST_REQUEST', RANDOM: 'RANDOM', UNSPECIFIED: undefined };
      if (lb.simple === 'PASSTHROUGH') warn(`${path}.loadBalancer.simple`, 'PASSTHROUGH is not supported; the default (LEAST_REQUEST) is used');
      else if (map[lb.simple]) c.lb_policy = map[lb.simple];
      delete c.ring_hash_lb_config;
      hashPolicies.delete(name);
    }
    const ch = lb.consistentHash as Obj | undefined;
    if (ch) {
      if (ch.maglev) {
        c.lb_policy = 'MAGLEV';
        if (ch.maglev.tableSize) c.maglev_lb_config = { table_size: ch.maglev.tableSize };
      } else {
        c.lb_policy = 'RING_HASH';
        const min = ch.ringHash?.minimumRingSize ?? ch.minimumRingSize;
        if (min) c.ring_hash_lb_config = { minimum_ring_size: min };
      }
      let hp: Obj;
      if (ch.httpHeaderName) hp = { header: { header_name: ch.httpHeaderName } };
      else if (ch.httpCookie) hp = { cookie: { name: ch.httpCookie.name, ...(ch.httpCookie.path ? { path: ch.httpCookie.path } : {}), ...(ch.httpCookie.ttl ? { ttl: dur(durationMs(ch.httpCookie.ttl)!) } : {}) } };
      else if (ch.useSourceIp) hp = { connection_properties: { source_ip: true } };
      else hp = { query_parameter: { name: ch.httpQueryParameterName } };
      hashPolicies.set(name, [hp]);
    }
  }
  const cp = tp.connectionPool as Obj | undefined;
  if (cp) {
    const th = c.circuit_breakers.thresholds[0];
    const tcp = (cp.tcp ?? {}) as Obj;
    const http = (cp.http ?? {}) as Obj;
    if (tcp.maxConnections !== undefined) th.max_connections = tcp.maxConnections;
    if (tcp.connectTimeout !== undefined) c.connect_timeout = dur(durationMs(tcp.connectTimeout)!);
    for (const f of extra(tcp, ['maxConnections', 'connectTimeout'])) warn(`${path}.connectionPool.tcp.${f}`, 'is not supported; ignored');
    if (http.http1MaxPendingRequests !== undefined) th.max_pending_requests = http.http1MaxPendingRequests;
    if (http.http2MaxRequests !== undefined) th.max_requests = http.http2MaxRequests;
    if (http.maxRetries !== undefined) th.max_retries = http.maxRetries;
    const common: Obj = {};
    if (http.maxRequestsPerConnection) common.max_requests_per_connection = http.maxRequestsPerConnection;
    if (http.idleTimeout !== undefined) common.idle_timeout = dur(durationMs(http.idleTimeout)!);
    if (Object.keys(common).length) {
      const key = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
      const o = (c.typed_extension_protocol_options ??= {});
      o[key] = { '@type': `type.googleapis.com/${key}`, ...(o[key] ?? { explicit_http_config: { http_protocol_options: {} } }), common_http_protocol_options: { ...(o[key]?.common_http_protocol_options ?? {}), ...common } };
    }
    for (const f of extra(http, ['http1MaxPendingRequests', 'http2MaxRequests', 'maxRetries', 'maxRequestsPerConnection', 'idleTimeout'])) warn(`${path}.connectionPool.http.${f}`, 'is not supported; ignored');
  }
  const od = tp.outlierDetection as Obj | undefined;
  if (od) {
    const v = (x: unknown) => (isObj(x) ? x.value : x) as number | undefined;
    const o: Obj = {};
    // Istio turns off every detector it was not asked for: Envoy's defaults would eject on 5xx.
    const c5 = v(od.consecutive5xxErrors) ?? v(od.consecutiveErrors);
    o.enforcing_consecutive_5xx = c5 ? 100 : 0;
    if (c5) o.consecutive_5xx = c5;
    const gw = v(od.consecutiveGatewayErrors);
    o.enforcing_consecutive_gateway_failure = gw ? 100 : 0;
    if (gw) o.consecutive_gateway_failure = gw;
    o.enforcing_success_rate = 0;
    if (od.interval !== undefined) o.interval = dur(durationMs(od.interval)!);
    if (od.baseEjectionTime !== undefined) o.base_ejection_time = dur(durationMs(od.baseEjectionTime)!);
    if (od.maxEjectionPercent !== undefined) o.max_ejection_percent = od.maxEjectionPercent;
    if (od.splitExternalLocalOriginErrors) {
      o.split_external_local_origin_errors = true;
      const lo = v(od.consecutiveLocalOriginFailures);
      if (lo) o.consecutive_local_origin_failure = lo;
    }
    c.outlier_detection = o;
    if (od.minHealthPercent !== undefined) c.common_lb_config = { ...(c.common_lb_config ?? {}), healthy_panic_threshold: { value: od.minHealthPercent } };
    for (const f of extra(od, ['consecutive5xxErrors', 'consecutiveErrors', 'consecutiveGatewayErrors', 'interval', 'baseEjectionTime', 'maxEjectionPercent', 'minHealthPercent', 'splitExternalLocalOriginErrors', 'consecutiveLocalOriginFailures'])) {
      warn(`${path}.outlierDetection.${f}`, 'is not supported; ignored');
    }
  }
}

function buildCluster(svc: Service, port: ServicePort, name: string, labels: Obj, d: IstioDoc): Obj {
  const c: Obj = {
    name,
    connect_timeout: '10s',
    lb_policy: 'LEAST_REQUEST',
    circuit_breakers: { thresholds: [{ max_connections: MAX, max_pending_requests: MAX, max_requests: MAX, max_retries: MAX, track_remaining: true }] },
    metadata: { filter_metadata: { istio: { services: [{ host: svc.host, name: svc.host.split('.')[0], namespace: d.namespace }], default_original_port: port.number, ...(Object.keys(labels).length ? { subset: name.split('|')[2] } : {}) } } },
  };
  if (H2_PROTOCOLS.has(port.protocol)) {
    c.typed_extension_protocol_options = {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': { '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions', explicit_http_config: { http2_protocol_options: {} } },
    };
  }
  if (svc.resolution === 'STATIC') {
    c.type = 'EDS';
    c.eds_cluster_config = { service_name: name, eds_config: { ...ADS, initial_fetch_timeout: '0s' } };
  } else if (svc.resolution === 'DNS' || svc.resolution === 'DNS_ROUND_ROBIN') {
    c.type = svc.resolution === 'DNS' ? 'STRICT_DNS' : 'LOGICAL_DNS';
    c.dns_lookup_family = 'V4_ONLY';
    const eps = svc.endpoints.length ? svc.endpoints.filter((e) => selects(labels, e.labels)) : [{ address: svc.host }];
    c.load_assignment = { cluster_name: name, endpoints: localities(eps.map((e) => lbEndpoint(e, port, svc.host))) };
  } else {
    // NONE: the destination the application dialled, as Istio's passthrough does.
    c.type = 'ORIGINAL_DST';
    c.lb_policy = 'CLUSTER_PROVIDED';
  }
  return c;
}

function selects(want: Obj, have: Obj | undefined): boolean {
  for (const [k, v] of Object.entries(want)) if (have?.[k] !== v) return false;
  return true;
}

function lbEndpoint(e: Obj, port: ServicePort, host: string): Obj & { locality: string } {
  const portValue = e.ports?.[port.name] ?? port.targetPort ?? port.number;
  const address = e.address.startsWith('unix://')
    ? { pipe: { path: e.address.slice('unix://'.length) } }
    : { socket_address: { address: e.address, port_value: portValue } };
  const labels = (e.labels ?? {}) as Obj;
  const lb: Obj = { endpoint: { address, hostname: isIP(e.address) ? undefined : e.address }, load_balancing_weight: e.weight || 1 };
  if (!lb.endpoint.hostname) delete lb.endpoint.hostname;
  // The labels ride along as metadata, as Istio's endpoints carry them, so subset and metadata matching can see them.
  if (Object.keys(labels).length) lb.metadata = { filter_metadata: { 'envoy.lb': labels, istio: { labels, service: host } } };
  return Object.assign(lb, { locality: String(e.locality ?? '') });
}

/** Groups endpoints by Istio's "region/zone/subzone" locality; every group weighted (gRPC's xDS client requires it). */
function localities(eps: Array<Obj & { locality: string }>): Obj[] {
  const groups = new Map<string, Obj[]>();
  for (const { locality, ...e } of eps) {
    let g = groups.get(locality);
    if (!g) groups.set(locality, (g = []));
    g.push(e);
  }
  return [...groups].map(([loc, list]) => {
    const [region, zone, sub_zone] = loc.split('/');
    const locality: Obj = {};
    if (region) locality.region = region;
    if (zone) locality.zone = zone;
    if (sub_zone) locality.sub_zone = sub_zone;
    return { locality, load_balancing_weight: list.reduce((a, e) => a + (e.load_balancing_weight ?? 1), 0), lb_endpoints: list };
  });
}

function assignment(svc: Service, port: ServicePort, name: string, labels: Obj): Obj {
  const eps = svc.endpoints.filter((e) => selects(labels, e.labels)).map((e) => lbEndpoint(e, port, svc.host));
  return { cluster_name: name, endpoints: localities(eps) };
}
