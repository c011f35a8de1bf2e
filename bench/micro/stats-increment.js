// The data path increments a stat as a plain field (`stats.x.value++`); this checks that stays a
// few nanoseconds, for a counter from a stats table and one looked up by name once.
const OPS = 1000;

export default {
  name: 'stats increment',
  description: 'dist/observability/stats.js: counter.value++ on a table-declared stat',
  async load({ importDist }) {
    const mod = await importDist('observability/stats.js');
    if (!mod) return { skip: 'module not built (dist/observability/stats.js)' };
    if (typeof mod.StatsStore !== 'function' || typeof mod.defineStats !== 'function') return { skip: 'module not built: dist/observability/stats.js lacks StatsStore/defineStats' };
    const store = new mod.StatsStore();
    const table = mod.defineStats({ counters: ['rq_total', 'cx_total'], gauges: ['cx_active'] });
    const stats = store.root.scope('cluster').scope('bench', 'envoy_cluster_name').table(table);
    return {
      tasks: [
        {
          name: 'counter ++ (x1000)',
          opsPerCall: OPS,
          fn: () => {
            const c = stats.rq_total;
            for (let i = 0; i < OPS; i++) c.value++;
          },
        },
        {
          name: 'gauge +1/-1 (x1000)',
          opsPerCall: OPS,
          fn: () => {
            const g = stats.cx_active;
            for (let i = 0; i < OPS; i++) {
              g.value++;
              g.value--;
            }
          },
        },
      ],
    };
  },
};
