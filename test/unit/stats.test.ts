import { describe, expect, it } from 'vitest';
import { defineStats, StatsStore } from '../../src/observability/stats.js';

describe('stats store', () => {
  const T = defineStats({ counters: ['upstream_cx_total'], gauges: ['upstream_cx_active'] });

  it('names stats the Envoy way and renders text sorted by name', () => {
    const store = new StatsStore();
    const a = store.root.scope('cluster').scope('b-svc', 'envoy_cluster_name').table(T);
    const b = store.root.scope('cluster').scope('a-svc', 'envoy_cluster_name').table(T);
    a.upstream_cx_total.value += 3;
    b.upstream_cx_active.value = 2;
    expect(store.renderText()).toBe(
      'cluster.a-svc.upstream_cx_active: 2\ncluster.a-svc.upstream_cx_total: 0\ncluster.b-svc.upstream_cx_active: 0\ncluster.b-svc.upstream_cx_total: 3\n',
    );
  });

  it('renders Prometheus families once, with tags as labels and escaped values', () => {
    const store = new StatsStore();
    store.root.scope('cluster').scope('x"y', 'envoy_cluster_name').table(T).upstream_cx_total.value = 7;
    store.root.scope('cluster').scope('z', 'envoy_cluster_name').table(T);
    const text = store.renderPrometheus();
    expect(text.match(/# TYPE envoy_cluster_upstream_cx_total counter/g)).toHaveLength(1);
    expect(text).toContain('envoy_cluster_upstream_cx_total{envoy_cluster_name="x\\"y"} 7');
    expect(text).toContain('# TYPE envoy_cluster_upstream_cx_active gauge');
  });

  it('returns the same stat for the same name and refuses a kind change', () => {
    const store = new StatsStore();
    const s = store.root.scope('server');
    expect(s.counter('x')).toBe(s.counter('x'));
    expect(() => s.gauge('x')).toThrow(/registered as counter/);
  });
});
