// HTTP/2 cleartext (prior knowledge) through the peer with h2load. Latency percentiles come from
// h2load's per-request log (--log-file), which also carries every response's status.
// At L7 every proxy terminates h2c and forwards each stream as an HTTP/1.1 request over pooled
// keep-alive connections (nginx cannot proxy plain HTTP upstream over HTTP/2), so the proxies talk
// to the upstream's HTTP/1.1 port while "direct" talks h2c to its h2c port. At L4 the proxies
// carry the h2c bytes to the h2c port.
import fs from 'node:fs';
import path from 'node:path';
import { runPinned } from '../lib/proc.js';
import { findTool } from '../lib/tools.js';
import { bodyFor } from '../upstreams/index.js';
import { h2Get } from './check.js';
import { HTTP_LAYERS } from './http1.js';

/** What every h2load-driven workload reports: requests/s, p50/p99, CPU per 10k requests. */
export const H2LOAD_REPORTING = {
  primary: { key: 'rps', label: 'req/s', unit: 'req/s', better: 'higher' },
  latency: [
    { key: 'p50_ms', label: 'p50' },
    { key: 'p99_ms', label: 'p99' },
  ],
  cpu: { key: 'cpu_s_per_10k', label: 'CPU s / 10k req', per: (m) => m.requests / 1e4 },
  columns: [
    { key: 'rps', label: 'req/s', digits: 0 },
    { key: 'p50_ms', label: 'p50 ms', digits: 3 },
    { key: 'p99_ms', label: 'p99 ms', digits: 3 },
    { key: 'cpu_s_per_10k', label: 'CPU s/10k req', digits: 4 },
    { key: 'cpu_util', label: 'proxy CPU (cores)', digits: 2 },
    { key: 'requests', label: 'requests', digits: 0 },
  ],
};

export function pct(sorted, q) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((q / 100) * sorted.length) - 1))];
}

/** `extra`: more h2load options before the URL (the gRPC workload's -d FILE and -H headers). */
export async function h2load(target, ctx, { urlPath, seconds, logFile, extra = [] }) {
  const s = ctx.settings;
  const args = ['-t1', `-c${s.connections}`, `-m${s.h2Streams}`, '-D', `${Math.max(1, Math.round(seconds * 1000))}ms`, ...extra, `http://127.0.0.1:${target.port}${urlPath}`];
  if (logFile) args.push('--log-file', logFile);
  const r = await runPinned('h2load', findTool('h2load').path, args, { cpu: ctx.cpus.loadgen, timeoutMs: (seconds + 30) * 1000 });
  const fin = r.stdout.match(/finished in ([\d.]+)(m?s), ([\d.]+) req\/s/);
  const req = r.stdout.match(/requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/);
  const st = r.stdout.match(/status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/);
  if (!fin || !req || !st) throw new Error(`h2load output not understood (exit ${r.code}${r.timedOut ? ', timed out' : ''}): ${(r.stderr || r.stdout).slice(-800)}`);
  return { args, fin, req: req.slice(1).map(Number), st: st.slice(1).map(Number) };
}

/**
 * The warm-up as two h2load runs of half the time each. Every measured run opens its connections
 * and ends them; with a single warm-up run, the first measured run was the first in which a JIT
 * peer served new connections after a set had ended, and on Strait it spent its first ~100 ms
 * re-optimizing hot functions (requests of 5-15 ms there; p99 4.4-6.3 ms against 3.5-3.9 ms in
 * the runs after it, bench/tail.js on 2026-12-06). Same total time; a peer without a JIT sees one
 * more connection set-up.
 */
export async function warmH2load(target, ctx, { urlPath, extra = [] }) {
  const half = ctx.settings.warmupS / 2;
  await h2load(target, ctx, { urlPath, seconds: half, extra });
  await h2load(target, ctx, { urlPath, seconds: half, extra });
}

const LAYER_NOTE = {
  l7: ' (proxies: h2c downstream, HTTP/1.1 keep-alive upstream; direct: h2c to the upstream)',
  l4: '',
  local: ' (proxies answer with the same body themselves: Strait and Envoy direct_response, HAProxy http-request return, nginx return 200; direct: the upstream nginx answering over h2c, the same local reply). Read against the h2c row: the gap between the two is what forwarding to the upstream costs',
};

/**
 * `rate` (requests/s over all connections) makes it a fixed-rate row: h2load --rps gives each
 * connection an equal share, and the row's primary figure is p99 at that load (lower is better).
 */
export function h2cWorkload({ name, bodySize, quick, layer = 'l7', rounds = null, rate = null }) {
  const urlPath = `/${bodySize}`;
  const rateArgs = (s) => (rate ? [`--rps=${rate / s.connections}`] : []);
  return {
    name,
    title: `HTTP/2 (h2c)${rate ? ` at ${rate / 1000}k req/s (fixed rate)` : ''}, ${bodySize === 1024 ? '1 KiB' : `${bodySize} B`} body`,
    layer: HTTP_LAYERS[layer].h2c,
    layerLabel: HTTP_LAYERS[layer].label,
    quick,
    ...(rounds ? { rounds: (s) => Math.min(s.rounds, rounds) } : {}),
    // The local layer's proxies answer by themselves; direct asks the upstream, which answers the same way.
    upstream: layer === 'l7' ? { kind: 'nginx-http', endpoint: 'h2c', proxyEndpoint: 'h1' } : { kind: 'nginx-http', endpoint: 'h2c' },
    requires() {
      const t = findTool('h2load');
      return t.ok ? null : t.reason;
    },
    warmup: true,
    ...H2LOAD_REPORTING,
    ...(rate ? { primary: { key: 'p99_ms', label: 'p99 at fixed rate', unit: 'ms', better: 'lower' } } : {}),
    describe: (s) =>
      (rate
        ? `Fixed rate: h2load --rps=${rate / s.connections} per connection (${rate} req/s in all); requests start on schedule, and latency runs from each request's actual start (h2load does not correct for coordinated omission), so compare p99 only where no peer falls short of the rate. `
        : '') +
      `h2load -t1 -c${s.connections} -m${s.h2Streams} -D <duration>, GET ${urlPath} over h2c${LAYER_NOTE[layer]}. Counted: responses h2load reports as succeeded; ` +
      'failed/errored/timed-out requests and any non-2xx status (from the summary and from every line of the per-request log) are errors; p50/p99 come from that log.',
    async preflight(target) {
      const r = await h2Get(target.port, urlPath);
      if (r.status !== 200) throw new Error(`preflight h2 GET ${urlPath}: status ${r.status}`);
      if (r.body !== bodyFor(bodySize)) throw new Error(`preflight h2 GET ${urlPath}: body differs from the upstream's`);
      return {};
    },
    async warm(target, ctx) {
      await warmH2load(target, ctx, { urlPath, extra: rateArgs(ctx.settings) });
    },
    async run(target, ctx) {
      const logFile = path.join(ctx.mkdir('h2load'), `${target.peer}-${Date.now()}.log`);
      const { args, fin, req, st } = await h2load(target, ctx, { urlPath, seconds: ctx.settings.durationS, logFile, extra: rateArgs(ctx.settings) });
      const [, , done, succeeded, failed, errored, timeout] = req;
      const lat = [];
      let badStatus = 0;
      for (const line of fs.readFileSync(logFile, 'utf8').split('\n')) {
        if (!line) continue;
        const f = line.split('\t');
        if (f[1] !== '200') badStatus++;
        lat.push(Number(f[2]));
      }
      fs.rmSync(logFile, { force: true });
      lat.sort((a, b) => a - b);
      const durS = Number(fin[1]) / (fin[2] === 'ms' ? 1000 : 1);
      const errors = { failed, errored, timeout, non_2xx: st[1] + st[2] + st[3], bad_status_in_log: badStatus };
      if (succeeded === 0) errors.no_responses = 1;
      return {
        metrics: {
          rps: succeeded / durS,
          requests: succeeded,
          done,
          duration_s: durS,
          p50_ms: pct(lat, 50) / 1000,
          p90_ms: pct(lat, 90) / 1000,
          p99_ms: pct(lat, 99) / 1000,
          max_ms: lat.length ? lat[lat.length - 1] / 1000 : NaN,
        },
        errors,
        notes: [],
        command: `h2load ${args.join(' ')}`,
      };
    },
  };
}
