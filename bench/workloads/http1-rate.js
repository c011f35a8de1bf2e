// HTTP/1.1 keep-alive at a fixed request rate (open loop) with bench/tools/rateload.c: latency
// at equal load. The closed-loop rows (wrk) offer each proxy as much load as it can take, so
// their p99 is read at a different throughput per peer; here every peer gets the same schedule
// and its p99 is its own tail, not its throughput. Upstream: nginx serving a fixed body.
import { runPinned } from '../lib/proc.js';
import { cTool } from '../lib/tools.js';
import { HTTP_LAYERS, preflightGet } from './http1.js';

/** Warm-up at the same rate (JIT, upstream pools), at most half a run. */
const warmSeconds = (s) => Math.min(s.warmupS, s.durationS / 2);

async function rateload(target, ctx, { urlPath, rate, seconds }) {
  const req = Buffer.from(`GET ${urlPath} HTTP/1.1\r\nHost: 127.0.0.1:${target.port}\r\n\r\n`, 'latin1');
  const conns = ctx.settings.connections;
  const args = [String(target.port), String(conns), String(rate), String(seconds), req.toString('hex'), String(target.preflight.responseBytes)];
  const r = await runPinned('rateload', cTool('rateload').path, args, { cpu: ctx.cpus.loadgen, timeoutMs: (seconds + 20) * 1000 });
  const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
  if (r.code !== 0 || !line) throw new Error(`rateload exited ${r.code}${r.timedOut ? ' (timed out)' : ''}: ${(r.stderr || r.stdout).slice(-800)}`);
  return { json: JSON.parse(line), command: ['rateload', ...args.slice(0, 4), `<GET ${urlPath}>`, args[5]].join(' ') };
}

export function http1RateWorkload({ name, bodySize, rate, quick, rounds = null }) {
  const urlPath = `/${bodySize}`;
  return {
    name,
    title: `HTTP/1.1 keep-alive at ${rate / 1000}k req/s (fixed rate), ${bodySize} B body`,
    layer: HTTP_LAYERS.l7.http1,
    layerLabel: HTTP_LAYERS.l7.label,
    quick,
    ...(rounds ? { rounds: (s) => Math.min(s.rounds, rounds) } : {}),
    upstream: { kind: 'nginx-http', endpoint: 'h1' },
    requires() {
      const t = cTool('rateload');
      return t.ok ? null : t.reason;
    },
    warmup: true,
    primary: { key: 'p99_ms', label: 'p99 at fixed rate', unit: 'ms', better: 'lower' },
    latency: [
      { key: 'p50_ms', label: 'p50' },
      { key: 'p99_ms', label: 'p99' },
    ],
    cpu: { key: 'cpu_s_per_10k', label: 'CPU s / 10k req', per: (m) => m.requests / 1e4 },
    columns: [
      { key: 'rps', label: 'req/s', digits: 0 },
      { key: 'p50_ms', label: 'p50 ms', digits: 3 },
      { key: 'p99_ms', label: 'p99 ms', digits: 3 },
      { key: 'p999_ms', label: 'p99.9 ms', digits: 3 },
      { key: 'late', label: 'sent >1 ms late', digits: 0 },
      { key: 'cpu_s_per_10k', label: 'CPU s/10k req', digits: 4 },
      { key: 'cpu_util', label: 'proxy CPU (cores)', digits: 2 },
    ],
    describe: (s) =>
      `bench/tools/rateload.c: ${s.connections} keep-alive connections share ${rate} GET ${urlPath} per second (${bodySize} B body), each on its own ` +
      'staggered schedule with one request in flight. Open loop: latency runs from the time a request was due, so a request held back by a slow ' +
      'response is charged its wait (coordinated-omission corrected, as wrk2 does). Every response must be a 200 of the exact size measured in the ' +
      'preflight; requests in flight at the end get 2 s. "sent >1 ms late" counts requests the schedule could not keep: a row with many is not at the stated rate.',
    preflight: (target) => preflightGet(target, urlPath, bodySize),
    async warm(target, ctx) {
      await rateload(target, ctx, { urlPath, rate, seconds: warmSeconds(ctx.settings) });
    },
    async run(target, ctx) {
      const seconds = ctx.settings.durationS;
      const { json, command } = await rateload(target, ctx, { urlPath, rate, seconds });
      const e = json.errors;
      const errors = { connect: e.connect, closed: e.closed, status_ne_200: e.bad_status, length: e.bad_length, lost: e.lost, short_send: e.short_send };
      if (json.requests === 0) errors.no_responses = 1;
      const notes = [];
      if (json.late > json.sent * 0.01) notes.push(`${json.late} of ${json.sent} requests left more than 1 ms late: the schedule was not kept`);
      return {
        metrics: {
          rps: json.rps,
          requests: json.requests,
          duration_s: json.duration_us / 1e6,
          late: json.late,
          p50_ms: json.latency_us.p50 / 1000,
          p90_ms: json.latency_us.p90 / 1000,
          p99_ms: json.latency_us.p99 / 1000,
          p999_ms: json.latency_us.p999 / 1000,
          max_ms: json.latency_us.max / 1000,
          mean_ms: json.latency_us.mean / 1000,
        },
        errors,
        notes,
        command,
      };
    },
  };
}
