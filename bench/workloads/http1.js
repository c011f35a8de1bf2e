// HTTP/1.1 through the peer with wrk: keep-alive (one request in flight per connection) or
// pipelined (DEPTH requests written back to back). Upstream: nginx serving a fixed body.
// Each shape runs at one of two layers (HTTP_LAYERS): L7, every proxy parsing and routing HTTP
// (Strait/Envoy http_connection_manager, HAProxy mode http, nginx http {}), or L4, every proxy
// forwarding the bytes (tcp_proxy, mode tcp, stream {}).
import path from 'node:path';
import { runPinned } from '../lib/proc.js';
import { findTool, TOOLS_DIR } from '../lib/tools.js';
import { bodyFor } from '../upstreams/index.js';
import { rawGet } from './check.js';

const LUA = path.join(TOOLS_DIR, 'wrk-report.lua');

/** wrk takes whole seconds. */
const secs = (s) => `${Math.max(1, Math.round(s))}s`;

async function wrk(target, ctx, { urlPath, depth, seconds, close = false }) {
  const c = ctx.settings.connections;
  const args = ['-t1', `-c${c}`, `-d${secs(seconds)}`, '--timeout', '5s', '--latency', ...(close ? ['-H', 'Connection: close'] : []), '-s', LUA, `http://127.0.0.1:${target.port}${urlPath}`, '--', String(depth)];
  const r = await runPinned('wrk', findTool('wrk').path, args, { cpu: ctx.cpus.loadgen, timeoutMs: (seconds + 30) * 1000 });
  const m = r.stdout.match(/^BENCH_JSON (\{.*\})$/m);
  if (!m) throw new Error(`wrk gave no summary (exit ${r.code}${r.timedOut ? ', timed out' : ''}): ${(r.stderr || r.stdout).slice(-800)}`);
  return { json: JSON.parse(m[1]), args };
}

/** Peer layer (the key of each peer's config generator) and the label every row carries. */
export const HTTP_LAYERS = {
  l7: { http1: 'http1', h2c: 'h2c', label: 'L7 (http_connection_manager)' },
  l4: { http1: 'l4', h2c: 'l4', label: 'L4 (tcp_proxy)' },
  /** Answered by the proxy itself, no upstream: what terminating the protocol costs alone. */
  local: { h2c: 'h2c-local', label: 'L7, answered by the proxy' },
};

/** One exact request through the peer; remembers the response size for the byte checks. */
export async function preflightGet(target, urlPath, bodySize, extraHeaders = '') {
  const r = await rawGet(target.port, urlPath, 5000, extraHeaders);
  if (r.status !== 200) throw new Error(`preflight GET ${urlPath}: status ${r.status}`);
  if (r.body !== bodyFor(bodySize)) throw new Error(`preflight GET ${urlPath}: body differs from the upstream's (${r.body.length} bytes)`);
  return { responseBytes: r.rawLength };
}

/**
 * `rounds` overrides the profile's rounds (the full profile's L4 rows run fewer). `close`: every
 * request asks `Connection: close`, so each is a new client connection (wrk reconnects): what a
 * connection costs a proxy, which keep-alive rows hardly show. Upstream connections stay pooled.
 */
export function http1Workload({ name, bodySize, depth, quick, layer = 'l7', rounds = null, close = false }) {
  const urlPath = `/${bodySize}`;
  const pipelined = depth > 1;
  const closeHeader = close ? 'Connection: close\r\n' : '';
  return {
    name,
    title: `HTTP/1.1 ${pipelined ? 'pipelined' : close ? 'connection per request' : 'keep-alive'}, ${bodySize === 1024 ? '1 KiB' : `${bodySize} B`} body`,
    layer: HTTP_LAYERS[layer].http1,
    layerLabel: HTTP_LAYERS[layer].label,
    quick,
    ...(rounds ? { rounds: (s) => Math.min(s.rounds, rounds) } : {}),
    upstream: { kind: 'nginx-http', endpoint: 'h1' },
    requires() {
      const t = findTool('wrk');
      return t.ok ? null : t.reason;
    },
    warmup: true,
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
    describe: (s) =>
      `wrk -t1 -c${s.connections} -d<duration> --latency${pipelined ? `, ${s.pipelineDepth ?? depth} requests per write (pipelined; latency is per batch)` : ''}${close ? " -H 'Connection: close' (a new connection for every request; the proxies keep their upstream connections)" : ''}, GET ${urlPath} (${bodySize} B body). ` +
      'Every response is counted only if wrk saw no socket error and no status >= 400, and the bytes read must equal requests x the exact response size measured in the preflight (plus at most one in-flight batch per connection).',
    preflight: (target) => preflightGet(target, urlPath, bodySize, closeHeader),
    async warm(target, ctx) {
      await wrk(target, ctx, { urlPath, depth: pipelined ? ctx.settings.pipelineDepth : 1, seconds: ctx.settings.warmupS, close });
    },
    async run(target, ctx) {
      const d = pipelined ? ctx.settings.pipelineDepth : 1;
      const { json, args } = await wrk(target, ctx, { urlPath, depth: d, seconds: ctx.settings.durationS, close });
      const e = json.errors;
      const errors = { connect: e.connect, read: e.read, write: e.write, timeout: e.timeout, status_ge_400: e.status };
      const per = target.preflight?.responseBytes;
      const notes = [];
      if (per && json.requests > 0) {
        const lo = per * json.requests;
        const hi = per * (json.requests + ctx.settings.connections * d);
        if (json.bytes < lo || json.bytes > hi) {
          errors.byte_count = 1;
          notes.push(`read ${json.bytes} bytes for ${json.requests} responses of ${per} bytes (expected ${lo}..${hi})`);
        }
      }
      if (json.requests === 0) errors.no_responses = 1;
      const durS = json.duration_us / 1e6;
      return {
        metrics: {
          rps: json.requests / durS,
          requests: json.requests,
          duration_s: durS,
          bytes: json.bytes,
          p50_ms: json.latency_us.p50 / 1000,
          p90_ms: json.latency_us.p90 / 1000,
          p99_ms: json.latency_us.p99 / 1000,
          max_ms: json.latency_us.max / 1000,
          mean_ms: json.latency_us.mean / 1000,
          latency_visible_fraction: json.latency_us.visible_fraction,
        },
        errors,
        notes,
        command: `wrk ${args.join(' ')}`,
      };
    },
  };
}
