// gRPC unary calls through the peer at L7 over HTTP/2 on both sides. Upstream: a @grpc/grpc-js
// server in its own process (bench/tools/grpc-server.js) answering /bench.Echo/Unary with a
// fixed message. Load: h2load POSTing one length-prefixed gRPC message (-d FILE) with
// `content-type: application/grpc` and `te: trailers`. h2load cannot read grpc-status (it is in
// the trailers), so a call counts when h2load saw a 2xx, every peer first carries one real
// @grpc/grpc-js call (reply bytes and grpc-status 0 checked), and after each run the upstream's
// count of calls it answered OK must cover every 2xx h2load saw (a proxy answering calls itself,
// e.g. a trailers-only grpc-status 14 with :status 200, would fall short) with no rejected call.
import fs from 'node:fs';
import path from 'node:path';
import { GRPC_PATH, grpcFrame, grpcMessages, grpcUnaryCall, grpcUnavailable } from '../lib/grpc.js';
import { findTool } from '../lib/tools.js';
import { h2load, pct, warmH2load, H2LOAD_REPORTING } from './h2c.js';

export const GRPC_LAYER = { layer: 'grpc', label: 'L7 HTTP/2 (http_connection_manager, h2 upstream)' };

/** `rounds` caps the profile's rounds (the full profile runs this row 3 times, like the L4 rows). */
export function grpcWorkload({ name, messageSize, quick, rounds = null }) {
  const { request, reply } = grpcMessages(messageSize);
  const headers = ['-H', 'content-type: application/grpc', '-H', 'te: trailers'];
  /** The request body file (5-byte prefix + message), written once per run directory. */
  let bodyFile = null;
  const extra = (ctx) => {
    if (!bodyFile || !fs.existsSync(bodyFile)) {
      bodyFile = path.join(ctx.mkdir('grpc-body'), 'request.bin');
      fs.writeFileSync(bodyFile, grpcFrame(request));
    }
    return ['-d', bodyFile, ...headers];
  };
  return {
    name,
    title: `gRPC unary, ${messageSize} B messages`,
    layer: GRPC_LAYER.layer,
    layerLabel: GRPC_LAYER.label,
    quick,
    ...(rounds ? { rounds: (s) => Math.min(s.rounds, rounds) } : {}),
    upstream: { kind: 'grpc-js', endpoint: 'grpc', messageSize },
    requires() {
      const t = findTool('h2load');
      return t.ok ? grpcUnavailable() : t.reason;
    },
    warmup: true,
    ...H2LOAD_REPORTING,
    describe: (s) =>
      `h2load -t1 -c${s.connections} -m${s.h2Streams} -D <duration> -d <${messageSize + 5}-byte gRPC frame> -H 'content-type: application/grpc' -H 'te: trailers', POST ${GRPC_PATH} over h2c ` +
      `(proxies: HTTP/2 downstream and upstream; direct: h2c to the @grpc/grpc-js server), ${messageSize} B request and reply messages. ` +
      'h2load cannot see grpc-status (a trailer), so: every peer first carries one @grpc/grpc-js call whose reply bytes and grpc-status 0 are checked; ' +
      'counted are responses h2load reports as succeeded; failed/errored/timed-out requests, any non-2xx status (summary and every line of the per-request log), ' +
      'calls the upstream rejected, and 2xx responses the upstream did not answer OK (its call counter, read before and after each run) are errors; p50/p99 come from the per-request log.',
    async preflight(target) {
      const r = await grpcUnaryCall(target.port, request).catch((err) => {
        throw new Error(`preflight gRPC call ${GRPC_PATH}: ${err.message}`);
      });
      if (!reply.equals(r)) throw new Error(`preflight gRPC call ${GRPC_PATH}: reply differs from the upstream's (${r.length} bytes)`);
      return {};
    },
    async warm(target, ctx) {
      await warmH2load(target, ctx, { urlPath: GRPC_PATH, extra: extra(ctx) });
    },
    async run(target, ctx) {
      const logFile = path.join(ctx.mkdir('h2load'), `${target.peer}-${Date.now()}.log`);
      const c0 = await target.upstream.calls();
      const { args, fin, req, st } = await h2load(target, ctx, { urlPath: GRPC_PATH, seconds: ctx.settings.durationS, logFile, extra: extra(ctx) });
      // In-flight calls the upstream may still be answering when h2load stops.
      await new Promise((r) => setTimeout(r, 100));
      const c1 = await target.upstream.calls();
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
      const notes = [];
      if (!c0 || !c1) {
        errors.upstream_counter = 1;
        notes.push('the upstream did not report its call counter');
      } else {
        const okCalls = c1.ok - c0.ok;
        errors.upstream_rejected = c1.bad - c0.bad;
        errors.not_answered_by_upstream = Math.max(0, st[0] - okCalls);
        if (errors.not_answered_by_upstream) notes.push(`h2load saw ${st[0]} 2xx responses, the upstream answered ${okCalls} calls OK`);
      }
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
        notes,
        command: `h2load ${args.join(' ')}`,
      };
    },
  };
}
