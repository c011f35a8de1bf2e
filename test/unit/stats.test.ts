import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { defineStats, StatsStore } from '../../src/observability/stats.js';
import { REPO } from '../helpers/strait.js';

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

  it('builds tables whose objects keep fast properties, so `stats.x.value++` stays an inline load', () => {
    // Built by keyed stores into {}, a table of more than ~16 stats became a dictionary and every
    // bump on the request path went through V8's generic LoadIC. Asked of V8 in a child process
    // (the compiled module, as the proxy runs it).
    const mod = (p: string) => JSON.stringify(path.join(REPO, 'dist', p));
    const script = `
      const { StatsStore } = await import(${mod('observability/stats.js')});
      const { HCM_STATS } = await import(${mod('filters/network/http_connection_manager/stats.js')});
      const t = new StatsStore().root.scope('http').scope('ingress').table(HCM_STATS);
      console.log(HCM_STATS.counters.length + HCM_STATS.gauges.length, %HasFastProperties(t), Object.isFrozen(t));
    `;
    const r = spawnSync(process.execPath, ['--allow-natives-syntax', '--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    const [size, fast, frozen] = r.stdout.trim().split(' ');
    expect(Number(size)).toBeGreaterThan(20);
    expect([fast, frozen]).toEqual(['true', 'true']);
  });
});
