// Medians over rounds and ratios within one run. Only clean runs (no error of any kind) count:
// a flagged run is listed in the report but never becomes throughput.

export function median(xs) {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

function describe(xs) {
  const v = xs.filter((x) => Number.isFinite(x));
  if (!v.length) return null;
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const sd = v.length > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1)) : 0;
  return { median: median(v), min: Math.min(...v), max: Math.max(...v), n: v.length, cv: mean ? sd / mean : 0 };
}

/** Nonzero error counters of a run, plus its failure if it threw. */
export function runFlags(run) {
  const f = Object.entries(run.errors ?? {})
    .filter(([, n]) => n)
    .map(([k, n]) => `${k} ${n}`);
  if (run.failure) f.push(`failed: ${run.failure}`);
  return f;
}

const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? a / b : null);

/**
 * Per workload and peer: stats of every metric over clean runs; then, on the primary metric,
 * ratio to direct and to the best proxy, p99 ratio to direct, and CPU per unit relative to the
 * most efficient proxy.
 */
export function summarize(results) {
  const kinds = Object.fromEntries(results.peers.map((p) => [p.name, p.kind]));
  const out = {};
  for (const w of results.workloads) {
    if (w.status !== 'ran') {
      out[w.name] = { status: w.status, reason: w.reason };
      continue;
    }
    const peers = {};
    for (const [name, info] of Object.entries(w.peers)) {
      const runs = w.runs.filter((r) => r.peer === name && !r.skipped);
      const clean = runs.filter((r) => r.ok);
      const keys = new Set(clean.flatMap((r) => Object.keys(r.metrics ?? {}).filter((k) => typeof r.metrics[k] === 'number')));
      const stats = {};
      for (const k of keys) {
        const d = describe(clean.map((r) => r.metrics[k]));
        if (d) stats[k] = d;
      }
      peers[name] = {
        status: info.status,
        reason: info.reason ?? null,
        runs: runs.length,
        clean: clean.length,
        flagged: runs.length - clean.length,
        not_run: w.runs.filter((r) => r.peer === name && r.skipped).map((r) => ({ round: r.round, reason: r.skipped })),
        flags: runs.filter((r) => !r.ok).map((r) => ({ round: r.round, flags: runFlags(r), notes: r.notes ?? [] })),
        stats,
      };
    }
    const pk = w.primary.key;
    const higher = w.primary.better === 'higher';
    const med = (name, key) => peers[name]?.stats[key]?.median;
    const proxies = Object.keys(peers).filter((n) => kinds[n] === 'proxy' && Number.isFinite(med(n, pk)));
    const bestOf = (names, key, hi) =>
      names.reduce((best, n) => (best === null || (hi ? med(n, key) > med(best, key) : med(n, key) < med(best, key)) ? n : best), null);
    const best = bestOf(proxies, pk, higher);
    const cpuKey = w.cpu?.key;
    const cpuProxies = cpuKey ? proxies.filter((n) => Number.isFinite(med(n, cpuKey))) : [];
    const bestCpu = cpuKey ? bestOf(cpuProxies, cpuKey, false) : null;
    const directV = med('direct', pk);
    for (const [name, p] of Object.entries(peers)) {
      p.ratios = {
        vs_direct: ratio(med(name, pk), directV),
        vs_best: best ? ratio(med(name, pk), med(best, pk)) : null,
        p99_vs_direct: ratio(med(name, 'p99_ms'), med('direct', 'p99_ms')),
        p99_added_ms: Number.isFinite(med(name, 'p99_ms')) && Number.isFinite(med('direct', 'p99_ms')) ? med(name, 'p99_ms') - med('direct', 'p99_ms') : null,
        cpu_vs_best: bestCpu && kinds[name] === 'proxy' ? ratio(med(name, cpuKey), med(bestCpu, cpuKey)) : null,
      };
    }
    out[w.name] = { status: 'ran', best_proxy: best, best_cpu_proxy: bestCpu, peers };
  }
  return out;
}
