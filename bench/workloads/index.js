// The workload registry. A workload is one file (or one factory call here) shaped like:
//   {
//     name, title, layer: 'l4' | 'http1' | 'h2c' | 'grpc' | 'bolt' | 'dubbo', layerLabel,
//     quick: bool (part of --quick),
//     upstream: { kind: key of UPSTREAMS, endpoint, proxyEndpoint? (proxies' side if it differs), ...its options },
//     requires() -> null | reason        missing tool => the workload is reported skipped
//     peerUnavailable?(peer) -> null | reason
//     freshPeerPerRun?, warmup?, rounds?(settings), runSeconds?(settings) (for the time estimate)
//     primary: { key, label, unit, better: 'higher' | 'lower' }, latency: [{ key, label }] | null,
//     cpu: { key, label, per(metrics) -> units } | null, columns: [{ key, label, digits }],
//     describe(settings) -> text for "How measured",
//     preflight(target, ctx), warm?(target, ctx), run(target, ctx) -> { metrics, errors, notes, command }
//   }
// Each peer is configured for the workload's `layer` by its own per-layer generator
// (bench/peers/*.js), so an L7 workload is a new entry here plus one generator per peer.
import { grpcWorkload } from './grpc.js';
import { http1Workload } from './http1.js';
import { http1RateWorkload } from './http1-rate.js';
import { h2cWorkload } from './h2c.js';
import idleConns from './idle-conns.js';
import { rpcWorkload } from './rpc.js';
import tcpBulk from './tcp-bulk.js';

// Memory first: it is short, and under the quick profile's time budget it must never be the
// workload that runs out of time.
export const WORKLOADS = [
  idleConns,
  tcpBulk,
  // HTTP at L7 (what users compare): every proxy parses and routes HTTP.
  http1Workload({ name: 'http1-keepalive-64', bodySize: 64, depth: 1, quick: true }),
  // 1 KiB keep-alive is left to the full profile so the quick one fits its 3 minutes.
  http1Workload({ name: 'http1-keepalive-1k', bodySize: 1024, depth: 1, quick: false }),
  // Pipelined is full-profile only: with it, quick took ~200 s on a busy 2-core machine.
  http1Workload({ name: 'http1-pipelined-64', bodySize: 64, depth: 16, quick: false }),
  // A new client connection per request (Connection: close): the cost of a connection, which
  // the keep-alive rows amortise away. Full profile only, 3 rounds.
  http1Workload({ name: 'http1-close-64', bodySize: 64, depth: 1, quick: false, close: true, rounds: 3 }),
  http1Workload({ name: 'http1-pipelined-1k', bodySize: 1024, depth: 16, quick: false }),
  // The same keep-alive shape at a fixed rate every peer can hold (about half of the slowest
  // proxy's saturation here): p99 at equal load, which the closed-loop rows cannot show.
  http1RateWorkload({ name: 'http1-rate-10k', bodySize: 64, rate: 10000, quick: false, rounds: 3 }),
  h2cWorkload({ name: 'h2c-64', bodySize: 64, quick: true }),
  h2cWorkload({ name: 'h2c-1k', bodySize: 1024, quick: false }),
  h2cWorkload({ name: 'h2c-rate-10k', bodySize: 64, quick: false, rounds: 3, rate: 10000 }),
  // HTTP/2 termination alone (no upstream): where the h2c row's CPU goes, proxy by proxy.
  h2cWorkload({ name: 'h2c-64-local', bodySize: 64, quick: false, layer: 'local', rounds: 3 }),
  // gRPC unary at L7, HTTP/2 on both sides of every proxy. Full profile only (quick is at ~130 s
  // of its 160 s budget; 5 more peers x 2 rounds would not fit), 3 rounds (~90 s).
  grpcWorkload({ name: 'grpc-unary-64', messageSize: 64, quick: false, rounds: 3 }),
  // The same shapes at L4 (byte forwarding), full profile only: 64 B bodies and 3 rounds, since
  // they change little between reports and the full run must stay under half an hour.
  http1Workload({ name: 'http1-keepalive-64-l4', bodySize: 64, depth: 1, quick: false, layer: 'l4', rounds: 3 }),
  http1Workload({ name: 'http1-pipelined-64-l4', bodySize: 64, depth: 16, quick: false, layer: 'l4', rounds: 3 }),
  h2cWorkload({ name: 'h2c-64-l4', bodySize: 64, quick: false, layer: 'l4', rounds: 3 }),
  // 8 connections x 8 calls: a few client processes multiplexing calls, 64 in flight.
  rpcWorkload({ name: 'bolt', protocol: 'bolt', payloadSize: 64, conns: 8, depth: 8, quick: true }),
  rpcWorkload({ name: 'dubbo', protocol: 'dubbo', payloadSize: 64, conns: 8, depth: 8, quick: true }),
  rpcWorkload({ name: 'bolt-1k', protocol: 'bolt', payloadSize: 1024, conns: 8, depth: 4, quick: false }),
  rpcWorkload({ name: 'dubbo-1k', protocol: 'dubbo', payloadSize: 1024, conns: 8, depth: 4, quick: false }),
];
