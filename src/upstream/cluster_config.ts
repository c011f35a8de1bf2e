import net from 'node:net';
import { durationMs } from '../config/values.js';
import type { FieldError } from '../errors.js';
import type { PeerAddress } from '../io/engine.js';
import { NO_SECRETS, parseUpstreamTls, type SecretTable } from '../tls/context.js';
import type { ClusterSpec, DnsLookupFamily, EndpointSpec } from './cluster.js';
import { buildLbConfig } from './lb/config.js';
import { buildHealthCheckConfig } from './health/config.js';
import { buildOutlierConfig } from './outlier/config.js';
import { DEFAULT_OVERPROVISIONING, DEFAULT_PANIC_THRESHOLD } from './priority_set.js';
import { buildSubsetConfig } from './subset/config.js';
import { parseCircuitBreakers } from './circuit_breakers.js';

type Obj = Record<string, any>;

/** Envoy's defaults: 5 s connect timeout, 5 s DNS refresh, 1 MiB per-connection buffer. */
const DEFAULT_CONNECT_TIMEOUT_MS = 5000;
const DEFAULT_DNS_REFRESH_MS = 5000;
const DEFAULT_BUFFER_LIMIT = 1024 * 1024;

/** Where an endpoint address is a socket address or a pipe; `dns` when it needs resolving. */
export function endpointAddress(
  addr: Obj | undefined,
  path: string,
  errors: FieldError[],
  allowDns: boolean,
): EndpointSpec['address'] | null {
  if (!addr) {
    errors.push({ path, message: 'is required' });
    return null;
  }
  if (addr.pipe) return { family: 'unix', address: String(addr.pipe.path ?? ''), port: 0 };
  const sa = addr.socket_address as Obj | undefined;
  if (!sa) {
    errors.push({ path, message: 'must be a socket_address or a pipe' });
    return null;
  }
  const host = String(sa.address ?? '');
  const port = Number(sa.port_value ?? 0);
  if (sa.named_port) errors.push({ path: `${path}.socket_address.named_port`, message: 'named ports are not supported' });
  if (sa.protocol && sa.protocol !== 'TCP') errors.push({ path: `${path}.socket_address.protocol`, message: `protocol ${sa.protocol} is not supported (TCP only)` });
  if (!host) {
    errors.push({ path: `${path}.socket_address.address`, message: 'is required' });
    return null;
  }
  const fam = net.isIP(host);
  if (fam === 0) {
    if (!allowDns) {
      errors.push({ path: `${path}.socket_address.address`, message: `"${host}" is not an IP address (a STATIC cluster needs IP literals; use STRICT_DNS for names)` });
      return null;
    }
    return { family: 'dns', address: host, port };
  }
  return { family: fam === 6 ? 'IPv6' : 'IPv4', address: host, port } satisfies PeerAddress;
}

/**
 * Turns one normalized `envoy.config.cluster.v3.Cluster` into a frozen spec, reporting every
 * problem; settings accepted but not acted on go to `warnings` when given.
 */
export function buildClusterSpec(c: Obj, path: string, errors: FieldError[], warnings: FieldError[] | null = null, secrets: SecretTable = NO_SECRETS): ClusterSpec | null {
  const start = errors.length;
  const name = String(c.name ?? '');
  if (!name) errors.push({ path: `${path}.name`, message: 'is required' });

  if (c.cluster_type) errors.push({ path: `${path}.cluster_type`, message: `custom cluster type "${c.cluster_type.name ?? ''}" is not supported` });
  const type = (c.type ?? 'STATIC') as string;
  if (type !== 'STATIC' && type !== 'STRICT_DNS' && type !== 'LOGICAL_DNS' && type !== 'EDS' && type !== 'ORIGINAL_DST') {
    errors.push({ path: `${path}.type`, message: `cluster type ${type} is not supported yet (supported: STATIC, STRICT_DNS, LOGICAL_DNS, EDS, ORIGINAL_DST)` });
  }
  const originalDst = type === 'ORIGINAL_DST' ? originalDstSettings(c, path, errors) : null;

  // ORIGINAL_DST picks its host from the connection, not with a balancer.
  const lb = buildLbConfig(originalDst ? { ...c, lb_policy: undefined } : c, path, errors, warnings);

  const endpoints: EndpointSpec[] = [];
  const la = c.load_assignment as Obj | undefined;
  if (la) {
    (la.endpoints ?? []).forEach((locality: Obj, i: number) => {
      const lpath = `${path}.load_assignment.endpoints[${i}]`;
      const priority = Number(locality.priority ?? 0);
      (locality.lb_endpoints ?? []).forEach((le: Obj, j: number) => {
        const epath = `${lpath}.lb_endpoints[${j}]`;
        if (le.endpoint_name) {
          errors.push({ path: `${epath}.endpoint_name`, message: 'named endpoints (LEDS) are not supported' });
          return;
        }
        const ep = (le.endpoint ?? {}) as Obj;
        const address = endpointAddress(ep.address, `${epath}.endpoint.address`, errors, type === 'STRICT_DNS' || type === 'LOGICAL_DNS');
        if (!address) return;
        if (address.family !== 'unix' && address.port === 0) {
          errors.push({ path: `${epath}.endpoint.address.socket_address.port_value`, message: 'an upstream endpoint needs a port' });
        }
        const weight = le.load_balancing_weight === undefined ? 1 : Number(le.load_balancing_weight);
        if (weight < 1) errors.push({ path: `${epath}.load_balancing_weight`, message: 'must be at least 1' });
        const hs = (le.health_status ?? 'UNKNOWN') as string;
        endpoints.push({
          address,
          weight,
          priority,
          healthy: hs !== 'UNHEALTHY' && hs !== 'DRAINING' && hs !== 'TIMEOUT',
          hostname: String(ep.hostname ?? ''),
          metadata: le.metadata ?? null,
        });
      });
    });
  } else if (type === 'STATIC' || type === 'STRICT_DNS' || type === 'LOGICAL_DNS') {
    errors.push({ path: `${path}.load_assignment`, message: `a ${type} cluster needs load_assignment` });
  }

  // Envoy's rule: a LOGICAL_DNS cluster is one name, so exactly one endpoint in one locality.
  if (type === 'LOGICAL_DNS' && la) {
    const locs = (la.endpoints ?? []) as Obj[];
    if (locs.length !== 1 || ((locs[0]!.lb_endpoints ?? []) as Obj[]).length !== 1) {
      errors.push({ path: `${path}.load_assignment.endpoints`, message: 'a LOGICAL_DNS cluster needs exactly one locality with exactly one lb_endpoint' });
    }
  }
  const connectTimeoutMs = c.connect_timeout === undefined ? DEFAULT_CONNECT_TIMEOUT_MS : durationMs(c.connect_timeout)!;
  // The pools read idle_timeout from HttpProtocolOptions, else from the deprecated cluster field;
  // Envoy rejects a negative Duration rather than guess (0s is how to disable it).
  const hpo = c.typed_extension_protocol_options?.['envoy.extensions.upstreams.http.v3.HttpProtocolOptions'] as Obj | undefined;
  const idleTimeoutMs = durationMs((hpo ? hpo.common_http_protocol_options : c.common_http_protocol_options)?.idle_timeout);
  if (idleTimeoutMs !== undefined && idleTimeoutMs < 0) {
    const where = hpo ? `typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].common_http_protocol_options` : 'common_http_protocol_options';
    errors.push({ path: `${path}.${where}.idle_timeout`, message: 'must not be negative (0s disables it)' });
  }
  const dnsRefreshRateMs = c.dns_refresh_rate === undefined ? DEFAULT_DNS_REFRESH_MS : durationMs(c.dns_refresh_rate)!;
  const hashing = c.lb_policy === 'RING_HASH' || c.lb_policy === 'MAGLEV';
  if (hashing && c.common_lb_config?.consistent_hashing_lb_config?.use_hostname_for_hashing === true && type === 'STATIC') {
    // Envoy hashes the hostname as given; without one every such host would share a key.
    const missing = endpoints.findIndex((e) => !e.hostname);
    if (missing >= 0) {
      errors.push({
        path: `${path}.common_lb_config.consistent_hashing_lb_config.use_hostname_for_hashing`,
        message: 'needs endpoint.hostname on every endpoint of a STATIC cluster (or a STRICT_DNS cluster, where the DNS name is the hostname)',
      });
    }
  }

  const tls = c.transport_socket ? parseUpstreamTls(c.transport_socket, `${path}.transport_socket`, secrets, errors) : null;

  const hcs = (c.health_checks ?? []) as Obj[];
  // Envoy runs each checker independently over one shared health flag; one is what clusters use.
  if (hcs.length > 1) errors.push({ path: `${path}.health_checks`, message: 'only one health check per cluster is supported' });
  const healthCheck = hcs.length ? buildHealthCheckConfig(hcs[0]!, `${path}.health_checks[0]`, errors, warnings) : null;
  // Checks speak plaintext; only a bare TCP connect means the same over TLS.
  if (healthCheck && tls && !(healthCheck.probe.kind === 'tcp' && !healthCheck.probe.send && healthCheck.probe.receive.length === 0)) {
    errors.push({ path: `${path}.health_checks[0]`, message: 'health checks of TLS clusters are not supported yet (except a plain tcp_health_check connect)' });
  }
  const outlier = c.outlier_detection ? buildOutlierConfig(c.outlier_detection as Obj, `${path}.outlier_detection`, errors) : null;
  const subset = c.lb_subset_config && (c.lb_subset_config.subset_selectors ?? []).length
    ? buildSubsetConfig(c.lb_subset_config as Obj, `${path}.lb_subset_config`, errors)
    : null;
  // Validated here so a bad threshold is reported with its path; the cluster builds the state.
  if (c.circuit_breakers) parseCircuitBreakers(c.circuit_breakers as Obj, `${path}.circuit_breakers`, errors, warnings);
  const panic = c.common_lb_config?.healthy_panic_threshold?.value;
  const panicThreshold = panic === undefined ? DEFAULT_PANIC_THRESHOLD : Number(panic);
  if (!(panicThreshold >= 0 && panicThreshold <= 100)) errors.push({ path: `${path}.common_lb_config.healthy_panic_threshold.value`, message: 'must be a percentage 0-100' });
  const of = la?.policy?.overprovisioning_factor;
  const overprovisioningFactor = of === undefined ? DEFAULT_OVERPROVISIONING : Number(of);
  if (!(overprovisioningFactor > 0)) errors.push({ path: `${path}.load_assignment.policy.overprovisioning_factor`, message: 'must be greater than 0' });

  if (errors.length > start || !lb) return null;
  return Object.freeze({
    name,
    // Istio sets `alt_stat_name: "<name>;"` so its tag regexes can find where a dotted name ends.
    ...(typeof c.alt_stat_name === 'string' && c.alt_stat_name ? { statName: c.alt_stat_name } : {}),
    type: type as ClusterSpec['type'],
    // EDS endpoints are looked up by this name (src/xds); the cluster's own name when unset.
    ...(originalDst ? { originalDstPortOverride: originalDst.portOverride, originalDstCleanupMs: originalDst.cleanupMs } : {}),
    edsServiceName: type === 'EDS' ? String(c.eds_cluster_config?.service_name || name) : undefined,
    connectTimeoutMs,
    lb,
    endpoints: Object.freeze(endpoints),
    dnsLookupFamily: (c.dns_lookup_family ?? 'AUTO') as DnsLookupFamily,
    dnsRefreshRateMs,
    perConnectionBufferLimitBytes: c.per_connection_buffer_limit_bytes ?? DEFAULT_BUFFER_LIMIT,
    tls,
    healthCheck,
    outlier,
    subset,
    priority: Object.freeze({ overprovisioningFactor, panicThreshold }),
    source: c,
  });
}

/**
 * An ORIGINAL_DST cluster's own rules: its hosts are each connection's original destination
 * (listener `use_original_dst`), so it takes no endpoints and lb_policy CLUSTER_PROVIDED.
 */
function originalDstSettings(c: Obj, path: string, errors: FieldError[]): { portOverride: number; cleanupMs: number } {
  if (c.lb_policy !== undefined && c.lb_policy !== 'CLUSTER_PROVIDED') {
    errors.push({ path: `${path}.lb_policy`, message: 'an ORIGINAL_DST cluster needs lb_policy CLUSTER_PROVIDED' });
  }
  if (c.load_assignment) errors.push({ path: `${path}.load_assignment`, message: "an ORIGINAL_DST cluster takes its hosts from each connection's original destination, not from endpoints" });
  const o = (c.original_dst_lb_config ?? {}) as Obj;
  if (o.use_http_header) errors.push({ path: `${path}.original_dst_lb_config.use_http_header`, message: 'is not supported yet' });
  const portOverride = Number(o.upstream_port_override ?? 0);
  if (!Number.isInteger(portOverride) || portOverride < 0 || portOverride > 65535) {
    errors.push({ path: `${path}.original_dst_lb_config.upstream_port_override`, message: 'must be a port (0-65535)' });
  }
  // Envoy's default: a destination unused for 5 s is forgotten and its pooled connections drain.
  const cleanupMs = c.cleanup_interval === undefined ? 5000 : durationMs(c.cleanup_interval);
  if (cleanupMs == null || !(cleanupMs > 0)) errors.push({ path: `${path}.cleanup_interval`, message: 'must be a positive duration' });
  return { portOverride, cleanupMs: cleanupMs ?? 5000 };
}
