import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchTag, tagServer } from '../helpers/net.js';
import { ADMIN, startStrait, tcpListener } from '../helpers/strait.js';

type Tag = Awaited<ReturnType<typeof tagServer>>;

/** A STATIC cluster over the tag servers with the given weights and extra cluster fields. */
function cluster(name: string, tags: Tag[], weights: number[], extra = ''): string {
  const eps = tags
    .map(
      (t, i) =>
        `        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${t.port} } } }\n          load_balancing_weight: ${weights[i]}`,
    )
    .join('\n');
  return `  - name: ${name}
    type: STATIC
    connect_timeout: 1s
${extra}    load_assignment:
      cluster_name: ${name}
      endpoints:
      - lb_endpoints:
${eps}
`;
}

describe('load balancing through real clusters', () => {
  const tags: Tag[] = [];
  beforeAll(async () => {
    for (const t of ['a', 'b', 'c']) tags.push(await tagServer(t));
  });
  afterAll(async () => {
    for (const t of tags) await t.close();
  });

  async function spread(port: number, n: number): Promise<Record<string, number>> {
    const seen: Record<string, number> = { a: 0, b: 0, c: 0 };
    for (let i = 0; i < n; i++) seen[await fetchTag(port)]!++;
    return seen;
  }

  it('weighted ROUND_ROBIN serves 1:2:3 exactly over full cycles', async () => {
    const p = await startStrait(`${ADMIN}static_resources:\n  listeners:\n${tcpListener('wrr', 'wrr')}\n  clusters:\n${cluster('wrr', tags, [1, 2, 3])}`);
    try {
      // Whatever point of the schedule the balancer starts at, 10 cycles of 6 are exact.
      expect(await spread(await p.port('wrr'), 60)).toEqual({ a: 10, b: 20, c: 30 });
    } finally {
      await p.stop();
    }
  });

  it('RING_HASH and MAGLEV without a hash key pick at random across every host, and report their tables', async () => {
    const p = await startStrait(`${ADMIN}static_resources:
  listeners:
${tcpListener('rh', 'rh')}
${tcpListener('mg', 'mg')}
  clusters:
${cluster('rh', tags, [1, 1, 2], '    lb_policy: RING_HASH\n    ring_hash_lb_config: { minimum_ring_size: 2048 }\n')}
${cluster('mg', tags, [1, 1, 1], '    lb_policy: MAGLEV\n    maglev_lb_config: { table_size: 10007 }\n')}`);
    try {
      // tcp_proxy brings no hash key, so each connection lands on a random point (Envoy does
      // the same); the ring gives c, with twice the weight, about half of them.
      const rh = await spread(await p.port('rh'), 400);
      // Expected 100/100/200, σ ≈ 8.7 and 10: the bands are over 5σ wide.
      expect(rh.a).toBeGreaterThan(55);
      expect(rh.a).toBeLessThan(145);
      expect(rh.b).toBeGreaterThan(55);
      expect(rh.b).toBeLessThan(145);
      expect(rh.c).toBeGreaterThan(150);
      expect(rh.c).toBeLessThan(250);
      const mg = await spread(await p.port('mg'), 300);
      for (const k of ['a', 'b', 'c']) {
        expect(mg[k]).toBeGreaterThan(55);
        expect(mg[k]).toBeLessThan(145);
      }
      // Envoy's gauges: ceil(2048/4) = 512 points for a weight-1 host, 1024 for weight 2.
      expect(await p.stat('cluster.rh.ring_hash_lb.size')).toBe(2048);
      expect(await p.stat('cluster.rh.ring_hash_lb.min_hashes_per_host')).toBe(512);
      expect(await p.stat('cluster.rh.ring_hash_lb.max_hashes_per_host')).toBe(1024);
      // 10007 slots over 3 equal hosts: 3335 or 3336 each.
      expect(await p.stat('cluster.mg.maglev_lb.min_entries_per_host')).toBe(3335);
      expect(await p.stat('cluster.mg.maglev_lb.max_entries_per_host')).toBe(3336);
    } finally {
      await p.stop();
    }
  });
});
