import { describe, expect, it } from 'vitest';
import { DEFAULT_BUCKETS, StatsStore } from '../../src/observability/stats.js';

describe('histograms', () => {
  it('use Envoy default buckets and render Prometheus _bucket (cumulative), _sum and _count', () => {
    const store = new StatsStore();
    const h = store.root.scope('cluster').scope('backend', 'envoy_cluster_name').histogram('upstream_rq_time');
    for (const v of [0.2, 3, 3, 7, 40, 70_000]) h.record(v);
    const text = store.renderPrometheus();
    expect(text.match(/# TYPE envoy_cluster_upstream_rq_time histogram/g)).toHaveLength(1);
    expect(text).toContain('envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="backend",le="0.5"} 1\n');
    expect(text).toContain('envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="backend",le="5"} 3\n');
    expect(text).toContain('envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="backend",le="10"} 4\n');
    expect(text).toContain('envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="backend",le="50"} 5\n');
    expect(text).toContain('envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="backend",le="60000"} 5\n');
    expect(text).toContain('envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="backend",le="300000"} 6\n');
    expect(text).toContain('envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="backend",le="3600000"} 6\n');
    expect(text).toContain('envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="backend",le="+Inf"} 6\n');
    expect(text).toContain('envoy_cluster_upstream_rq_time_sum{envoy_cluster_name="backend"} 70053.2\n');
    expect(text).toContain('envoy_cluster_upstream_rq_time_count{envoy_cluster_name="backend"} 6\n');
    // One _bucket line per default bound plus +Inf.
    expect(text.match(/_bucket\{/g)).toHaveLength(DEFAULT_BUCKETS.length + 1);
  });

  it('renders without labels when the scope has no tag', () => {
    const store = new StatsStore();
    store.root.scope('server').histogram('initialization_time_ms').record(12);
    const text = store.renderPrometheus();
    expect(text).toContain('envoy_server_initialization_time_ms_bucket{le="25"} 1\n');
    expect(text).toContain('envoy_server_initialization_time_ms_sum 12\n');
  });

  it('summarises quantiles in /stats text after counters, exact at P0 and P100', () => {
    const store = new StatsStore();
    const scope = store.root.scope('http').scope('ingress', 'envoy_http_conn_manager_prefix');
    scope.counter('downstream_rq_total').value = 100;
    const h = scope.histogram('downstream_rq_time');
    expect(store.renderText()).toContain('http.ingress.downstream_rq_time: No recorded values\n');
    for (let i = 1; i <= 100; i++) h.record(i);
    const text = store.renderText();
    const lines = text.trim().split('\n');
    expect(lines[0]).toBe('http.ingress.downstream_rq_total: 100');
    const summary = lines[1]!;
    expect(summary.startsWith('http.ingress.downstream_rq_time: P0(nan,1) P25(nan,')).toBe(true);
    expect(summary).toContain('P100(nan,100)');
    // P50 of 1..100 falls in the (50, 100] bucket's lower end or the (25, 50] bucket's top.
    const p50 = Number(/P50\(nan,([\d.]+)\)/.exec(summary)![1]);
    expect(p50).toBeGreaterThanOrEqual(25);
    expect(p50).toBeLessThanOrEqual(60);
    expect(h.quantile(0.99)).toBeGreaterThan(h.quantile(0.5));
    expect(store.renderText(/rq_time/)).toBe(`${summary}\n`);
  });

  it('lists histograms in the JSON stats with Envoy quantile shape', () => {
    const store = new StatsStore();
    store.root.scope('cluster').scope('a', 'envoy_cluster_name').histogram('upstream_rq_time').record(4);
    const json = JSON.parse(store.renderJson()) as { stats: Array<{ histograms?: { supported_quantiles: number[]; computed_quantiles: Array<{ name: string; values: Array<{ cumulative: number }> }> } }> };
    const h = json.stats.find((s) => s.histograms)!.histograms!;
    expect(h.supported_quantiles).toEqual([0, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 100]);
    expect(h.computed_quantiles[0]!.name).toBe('cluster.a.upstream_rq_time');
    expect(h.computed_quantiles[0]!.values[0]!.cumulative).toBe(4);
  });

  it('returns the same histogram for a name and refuses a counter of that name', () => {
    const store = new StatsStore();
    const s = store.root.scope('x');
    expect(s.histogram('t')).toBe(s.histogram('t'));
    expect(() => s.counter('t')).toThrow(/registered as histogram/);
    s.counter('c');
    expect(() => s.histogram('c')).toThrow(/registered as counter/);
  });
});
