import { describe, expect, it } from 'vitest';
import { StatsStore } from '../../../src/observability/stats.js';
import { countUpstreamStatus, httpClusterStats } from '../../../src/upstream/http_stats.js';

// countUpstreamStatus remembers the (table, status) it counted last: interleaved clusters and
// codes must still land on their own counters.
describe('countUpstreamStatus', () => {
  it('counts each cluster and code on its own counter when they interleave', () => {
    const store = new StatsStore();
    const a = httpClusterStats(store.root.scope('cluster').scope('a', 'envoy_cluster_name'));
    const b = httpClusterStats(store.root.scope('cluster').scope('b', 'envoy_cluster_name'));
    const calls: [typeof a, number][] = [[a, 200], [a, 200], [b, 200], [a, 200], [a, 503], [b, 200], [b, 200], [a, 503], [b, 404], [a, 200]];
    for (const [s, code] of calls) countUpstreamStatus(s, code);
    const v = (name: string): number | undefined => (store.get(name) as { value: number } | undefined)?.value;
    expect(v('cluster.a.upstream_rq_200')).toBe(4);
    expect(v('cluster.a.upstream_rq_503')).toBe(2);
    expect(v('cluster.b.upstream_rq_200')).toBe(3);
    expect(v('cluster.b.upstream_rq_404')).toBe(1);
    expect(v('cluster.a.upstream_rq_2xx')).toBe(4);
    expect(v('cluster.a.upstream_rq_5xx')).toBe(2);
    expect(v('cluster.b.upstream_rq_4xx')).toBe(1);
    expect(store.get('cluster.b.upstream_rq_503')).toBeUndefined();
  });
});
