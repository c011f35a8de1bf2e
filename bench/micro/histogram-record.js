// Request-time histograms are recorded once per request on the data path (HCM, rpc_proxy);
// this measures one record() (a bucket scan over Envoy's 19 bounds plus sum/min/max) for values
// that land in a low, a middle and the overflow bucket, next to the performance.now() call
// every recording site pairs it with.
const OPS = 1000;

export default {
  name: 'histogram record',
  description: 'dist/observability/stats.js: Histogram.record(ms) with Envoy default buckets',
  async load({ importDist }) {
    const mod = await importDist('observability/stats.js');
    if (!mod) return { skip: 'module not built (dist/observability/stats.js)' };
    if (typeof mod.StatsStore !== 'function' || typeof mod.Scope?.prototype?.histogram !== 'function') return { skip: 'module not built: dist/observability/stats.js lacks Scope.histogram' };
    const store = new mod.StatsStore();
    const h = store.root.scope('cluster').scope('bench', 'envoy_cluster_name').histogram('upstream_rq_time');
    let sink = 0;
    return {
      tasks: [
        {
          name: 'record 0.3 ms (first bucket) (x1000)',
          opsPerCall: OPS,
          fn: () => {
            for (let i = 0; i < OPS; i++) h.record(0.3);
          },
        },
        {
          name: 'record 37 ms (6th bucket) (x1000)',
          opsPerCall: OPS,
          fn: () => {
            for (let i = 0; i < OPS; i++) h.record(37);
          },
        },
        {
          name: 'record 5e6 ms (overflow) (x1000)',
          opsPerCall: OPS,
          fn: () => {
            for (let i = 0; i < OPS; i++) h.record(5e6);
          },
        },
        {
          name: 'performance.now() delta + record (x1000)',
          opsPerCall: OPS,
          fn: () => {
            for (let i = 0; i < OPS; i++) {
              const t0 = performance.now();
              h.record(performance.now() - t0);
            }
          },
        },
        {
          name: 'render /stats/prometheus, 1 histogram (x1)',
          opsPerCall: 1,
          fn: () => {
            sink += store.renderPrometheus().length;
          },
        },
      ],
    };
  },
};
