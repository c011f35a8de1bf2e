import { describe, expect, it } from 'vitest';
import type { FieldError } from '../../../src/errors.js';
import { StatsStore } from '../../../src/observability/stats.js';
import { Cluster, logicalDnsAddress, type Resolver } from '../../../src/upstream/cluster.js';
import { buildClusterSpec } from '../../../src/upstream/cluster_config.js';
import { eventually } from '../../helpers/xds.js';

type Obj = Record<string, any>;

const A = (address: string) => ({ address, family: address.includes(':') ? 6 : 4 });

function logical(extra: Obj = {}, endpoints: Obj[] = [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 'db.example', port_value: 5432 } } } }] }]) {
  const errors: FieldError[] = [];
  const spec = buildClusterSpec({ name: 'l', type: 'LOGICAL_DNS', connect_timeout: '1s', ...extra, load_assignment: { cluster_name: 'l', endpoints } }, 'c', errors);
  return { spec, errors };
}

describe('LOGICAL_DNS', () => {
  it('takes the first address of the wanted family as its one host', () => {
    const addrs = [A('10.0.0.7'), A('::1'), A('10.0.0.8')];
    expect(logicalDnsAddress(addrs, 'V4_ONLY')).toBe('10.0.0.7');
    expect(logicalDnsAddress(addrs, 'AUTO')).toBe('::1');
    expect(logicalDnsAddress([A('10.0.0.9'), A('10.0.0.7')], 'AUTO')).toBe('10.0.0.9');
    expect(logicalDnsAddress([A('::1')], 'V4_ONLY')).toBeNull();
  });

  it('needs exactly one endpoint, and accepts a name for it', () => {
    expect(logical().errors).toEqual([]);
    const ep = { endpoint: { address: { socket_address: { address: 'a.example', port_value: 1 } } } };
    expect(logical({}, [{ lb_endpoints: [ep, ep] }]).errors.map((e) => e.path)).toEqual(['c.load_assignment.endpoints']);
    expect(logical({}, [{ lb_endpoints: [ep] }, { lb_endpoints: [ep] }]).errors.map((e) => e.path)).toEqual(['c.load_assignment.endpoints']);
  });

  it('keeps one host, the same one while the first address is unchanged, a new one when it changes', async () => {
    let answer = [A('10.0.0.1'), A('10.0.0.2'), A('10.0.0.3')];
    let lookups = 0;
    const resolver: Resolver = async () => {
      lookups++;
      return answer;
    };
    const { spec, errors } = logical({ dns_refresh_rate: '0.05s', dns_lookup_family: 'V4_ONLY' });
    expect(errors).toEqual([]);
    const store = new StatsStore();
    const cluster = new Cluster(spec!, store.root.scope('cluster').scope('l'), resolver);
    try {
      await cluster.initialize();
      expect(cluster.allHosts.map((h) => h.label)).toEqual(['10.0.0.1:5432']);
      const first = cluster.allHosts[0]!;
      // The order behind the first address changes: the host (and its pooled connections) stays.
      answer = [A('10.0.0.1'), A('10.0.0.3')];
      const seen = lookups;
      await eventually(async () => lookups, (n) => n >= seen + 2, 10_000, 'two refreshes');
      expect(cluster.allHosts).toHaveLength(1);
      expect(cluster.allHosts[0]).toBe(first);
      answer = [A('10.0.0.9'), A('10.0.0.1')];
      await eventually(async () => cluster.allHosts[0]!.label, (l) => l === '10.0.0.9:5432', 10_000, 'the new first address');
      expect(cluster.allHosts).toHaveLength(1);
    } finally {
      cluster.close();
    }
  });
});
