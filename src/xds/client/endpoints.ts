import type { FieldError } from '../../errors.js';
import type { EndpointSpec } from '../../upstream/cluster.js';
import { endpointAddress } from '../../upstream/cluster_config.js';

type Obj = Record<string, any>;

/**
 * A ClusterLoadAssignment → the endpoints an EDS cluster balances over. Addresses must be IP
 * literals or pipes (EDS carries resolved endpoints). Drop policies change traffic and are not
 * implemented, so they are refused; locality weights are accepted and not applied (warned).
 */
export function buildEndpoints(cla: Obj, errors: FieldError[], warnings: FieldError[]): EndpointSpec[] {
  const out: EndpointSpec[] = [];
  const policy = (cla.policy ?? {}) as Obj;
  if (policy.drop_overloads?.length) errors.push({ path: 'policy.drop_overloads', message: 'drop overloads are not supported yet' });
  if (cla.named_endpoints && Object.keys(cla.named_endpoints).length) errors.push({ path: 'named_endpoints', message: 'named endpoints (LEDS) are not supported' });
  let localityWeights = false;
  ((cla.endpoints ?? []) as Obj[]).forEach((loc, i) => {
    const lpath = `endpoints[${i}]`;
    const priority = Number(loc.priority ?? 0);
    if (loc.load_balancing_weight !== undefined) localityWeights = true;
    if (loc.leds_cluster_locality_config) errors.push({ path: `${lpath}.leds_cluster_locality_config`, message: 'LEDS is not supported' });
    ((loc.lb_endpoints ?? []) as Obj[]).forEach((le, j) => {
      const epath = `${lpath}.lb_endpoints[${j}]`;
      if (le.endpoint_name) {
        errors.push({ path: `${epath}.endpoint_name`, message: 'named endpoints (LEDS) are not supported' });
        return;
      }
      const ep = (le.endpoint ?? {}) as Obj;
      const address = endpointAddress(ep.address, `${epath}.endpoint.address`, errors, false);
      if (!address) return;
      if (address.family !== 'unix' && address.port === 0) {
        errors.push({ path: `${epath}.endpoint.address.socket_address.port_value`, message: 'an upstream endpoint needs a port' });
        return;
      }
      const weight = le.load_balancing_weight === undefined ? 1 : Number(le.load_balancing_weight);
      const hs = String(le.health_status ?? 'UNKNOWN');
      out.push({
        address,
        weight,
        priority,
        healthy: hs !== 'UNHEALTHY' && hs !== 'DRAINING' && hs !== 'TIMEOUT',
        hostname: String(ep.hostname ?? ''),
        metadata: le.metadata ?? null,
      });
    });
  });
  if (localityWeights) warnings.push({ path: 'endpoints', message: 'locality weights are not applied yet; endpoints are balanced by their own weights' });
  return out;
}
