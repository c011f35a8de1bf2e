import { expect } from 'vitest';
import type { FieldError } from '../../src/errors.js';
import { StatsStore } from '../../src/observability/stats.js';
import { Cluster } from '../../src/upstream/cluster.js';
import { buildClusterSpec } from '../../src/upstream/cluster_config.js';
import { httpClusterStats, type HttpClusterStats } from '../../src/upstream/http_stats.js';

/**
 * A STATIC cluster named "c" with one endpoint, 127.0.0.1:`port` (more cluster fields in
 * `extra`), built as a config would build it; its HTTP stats live in `store` under cluster.c.
 */
export function localCluster(port: number, extra: Record<string, unknown> = {}): { cluster: Cluster; stats: HttpClusterStats; store: StatsStore } {
  const errors: FieldError[] = [];
  const spec = buildClusterSpec(
    {
      name: 'c',
      type: 'STATIC',
      connect_timeout: '1s',
      ...extra,
      load_assignment: { cluster_name: 'c', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }] },
    },
    '',
    errors,
  );
  expect(errors).toEqual([]);
  const store = new StatsStore();
  const scope = store.root.scope('cluster').scope('c', 'envoy_cluster_name');
  return { cluster: new Cluster(spec!, scope), stats: httpClusterStats(scope), store };
}
