// Bolt and Dubbo RPC through the peer with bench/tools/rpcload.c: CONNS connections, each
// keeping DEPTH calls in flight, every call a request frame encoded once by the real client
// library (sofa-rpc-node's Bolt encoder, apache-dubbo-js) with its own id. Upstream:
// bench/tools/rpc-echo-server.c answering each call with a pre-encoded success response.
//
// Strait routes these at L7 (rpc_proxy: decode, route, map ids onto its upstream connection);
// HAProxy and nginx cannot parse either protocol and forward bytes at L4. The design goal read
// off this table: Strait's CPU per 10k calls at L7 no higher than HAProxy's at L4.
import { runPinned } from '../lib/proc.js';
import { rpcFrames, rpcPreflight, rpcUnavailable, RPC_SERVICE } from '../lib/rpc.js';
import { cTool } from '../lib/tools.js';

const LIB = { bolt: "sofa-bolt-node's encoder (as sofa-rpc-node sends it)", dubbo: 'apache-dubbo-js (Dubbo 2.0.2, hessian2)' };
const NAME = { bolt: 'Bolt', dubbo: 'Dubbo' };

/** Seconds of one measured run: the quick profile shortens RPC runs to fit its 3 minutes. */
export const rpcSeconds = (s) => s.rpcDurationS ?? s.durationS;
/** Warm-up (JIT, connection pools) per peer: the profile's, at most half a run. */
const warmSeconds = (s) => Math.min(s.warmupS, rpcSeconds(s) / 2);

async function rpcload(target, ctx, { protocol, payloadSize, conns, depth, seconds }) {
  const f = rpcFrames(protocol, payloadSize);
  const args = [protocol, String(target.port), String(conns), String(depth), String(seconds), f.request.toString('hex'), String(f.response.length)];
  const r = await runPinned('rpcload', cTool('rpcload').path, args, { cpu: ctx.cpus.loadgen, timeoutMs: (seconds + 20) * 1000 });
  const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
  if (r.code !== 0 || !line) throw new Error(`rpcload exited ${r.code}${r.timedOut ? ' (timed out)' : ''}: ${(r.stderr || r.stdout).slice(-800)}`);
  const cmd = ['rpcload', ...args.slice(0, 5), `<${f.request.length}-byte request>`, args[6]].join(' ');
  return { json: JSON.parse(line), command: cmd };
}

export function rpcWorkload({ name, protocol, payloadSize, conns, depth, quick }) {
  const inFlight = conns * depth;
  const size = payloadSize === 1024 ? '1 KiB' : `${payloadSize} B`;
  return {
    name,
    title: `${NAME[protocol]} RPC, ${inFlight} calls in flight, ${size} payload`,
    layer: protocol,
    layerLabel:
      protocol === 'bolt' ? 'L7 Bolt (Strait rpc_proxy; HAProxy/nginx L4)' : 'L7 Dubbo (Strait rpc_proxy, Envoy dubbo_proxy; HAProxy/nginx L4)',
    quick,
    upstream: { kind: 'rpc-echo', endpoint: 'rpc', payloadSize },
    requires() {
      const t = cTool('rpcload');
      return t.ok ? rpcUnavailable() : t.reason;
    },
    peerUnavailable(peer) {
      if (protocol === 'bolt' && peer.name === 'envoy') return 'n/a: Envoy has no Bolt (SOFARPC) filter';
      return null;
    },
    warmup: true,
    runSeconds: rpcSeconds,
    primary: { key: 'rps', label: 'calls/s', unit: 'calls/s', better: 'higher' },
    latency: [
      { key: 'p50_ms', label: 'p50' },
      { key: 'p99_ms', label: 'p99' },
    ],
    cpu: { key: 'cpu_s_per_10k', label: 'CPU s / 10k calls', per: (m) => m.requests / 1e4 },
    columns: [
      { key: 'rps', label: 'calls/s', digits: 0 },
      { key: 'p50_ms', label: 'p50 ms', digits: 3 },
      { key: 'p99_ms', label: 'p99 ms', digits: 3 },
      { key: 'cpu_s_per_10k', label: 'CPU s/10k calls', digits: 4 },
      { key: 'cpu_util', label: 'proxy CPU (cores)', digits: 2 },
      { key: 'loadgen_cpu_util', label: 'rpcload CPU (cores)', digits: 2 },
      { key: 'requests', label: 'calls', digits: 0 },
    ],
    describe: (s) =>
      `bench/tools/rpcload.c: ${conns} connections x ${depth} calls in flight for ${rpcSeconds(s)} s; each call is ${RPC_SERVICE}:1.0.0 echo(String of ${payloadSize} B) ` +
      `encoded once by ${LIB[protocol]}, ids numbered from 1 per connection (so they collide in a shared upstream connection). ` +
      'Counted: responses within the window; every call must get exactly one response with its id, the success status and the exact response size, and calls in flight at the end get 2 s to finish (else lost) — any miss flags the run. ' +
      'The preflight sends 3 calls on each of 2 connections with the same ids and decodes every response with the client library. Latency is per call (log-linear histogram, 0.1 % resolution).',
    async preflight(target) {
      return rpcPreflight(target.port, protocol, payloadSize);
    },
    async warm(target, ctx) {
      await rpcload(target, ctx, { protocol, payloadSize, conns, depth, seconds: warmSeconds(ctx.settings) });
    },
    async run(target, ctx) {
      const seconds = rpcSeconds(ctx.settings);
      const { json, command } = await rpcload(target, ctx, { protocol, payloadSize, conns, depth, seconds });
      const errors = { ...json.errors };
      if (json.requests === 0) errors.no_responses = 1;
      return {
        metrics: {
          rps: json.rps,
          requests: json.requests,
          duration_s: json.duration_s,
          p50_ms: json.p50_us / 1000,
          p90_ms: json.p90_us / 1000,
          p99_ms: json.p99_us / 1000,
          max_ms: json.max_us / 1000,
          mean_ms: json.mean_us / 1000,
          bytes_out: json.bytes_out,
          bytes_in: json.bytes_in,
          loadgen_cpu_util: json.duration_s > 0 ? json.cpu_s / json.duration_s : NaN,
        },
        errors,
        notes: json.heartbeats_answered ? [`answered ${json.heartbeats_answered} heartbeats from the upstream side`] : [],
        command,
      };
    },
  };
}
