import type { Scope, StatsOf } from '../../../observability/stats.js';
import { PER_ROUTE_DISABLED, perRouteConfig, type FilterVerdict, type HttpFilter, type HttpFilterRequest } from '../types.js';
import type { FaultConfig } from './config.js';
import { FAULT_STATS } from './stats.js';

/** Header-controlled faults (Envoy's names); honoured only when the config has header_delay / header_abort. */
const H_DELAY = 'x-envoy-fault-delay-request';
const H_DELAY_PCT = 'x-envoy-fault-delay-request-percentage';
const H_ABORT = 'x-envoy-fault-abort-request';
const H_ABORT_GRPC = 'x-envoy-fault-abort-grpc-request';
const H_ABORT_PCT = 'x-envoy-fault-abort-request-percentage';

/** A header percentage can only lower the configured one, never raise it. */
function pct(configured: number, header: string | undefined): number {
  if (header === undefined) return configured;
  const n = Number(header);
  return Number.isFinite(n) && n >= 0 ? Math.min(configured, n / 100) : configured;
}

/** Envoy's HTTP fault filter: delay and/or abort a fraction of the requests that match its headers. */
export class FaultFilter implements HttpFilter {
  private readonly stats: StatsOf<typeof FAULT_STATS>;

  constructor(
    private readonly config: FaultConfig,
    scope: Scope,
    private readonly random: () => number = Math.random,
    /** Its name in the chain: where its routes' HTTPFault overrides are. */
    private readonly name = 'envoy.filters.http.fault',
  ) {
    this.stats = scope.scope('fault').table(FAULT_STATS);
  }

  onRequest(req: HttpFilterRequest): FilterVerdict | null {
    // The most specific HTTPFault (route, virtual host, route configuration) replaces the filter's.
    const o = perRouteConfig<FaultConfig>(req, this.name);
    const c = o === undefined || o === PER_ROUTE_DISABLED ? this.config : o;
    if (!c.delay && !c.abort) return null;
    for (const h of c.headers) if (!h(req.header)) return null;
    let delayMs = 0;
    if (c.delay) {
      let ms = c.delay.fixedMs;
      if (ms === null) {
        const v = req.header(H_DELAY);
        ms = v !== undefined && /^\d+$/.test(v) ? Number(v) : null;
      }
      if (ms !== null && ms > 0 && this.random() < pct(c.delay.fraction, req.header(H_DELAY_PCT))) delayMs = ms;
    }
    let reply: FilterVerdict['reply'] = null;
    if (c.abort) {
      let status = c.abort.status;
      let grpcStatus = c.abort.grpcStatus;
      if (status === null && grpcStatus === null) {
        const hs = req.header(H_ABORT);
        const hg = req.header(H_ABORT_GRPC);
        if (hs !== undefined && /^\d+$/.test(hs) && Number(hs) >= 200 && Number(hs) < 600) status = Number(hs);
        else if (hg !== undefined && /^\d+$/.test(hg)) grpcStatus = Number(hg);
      }
      if ((status !== null || grpcStatus !== null) && this.random() < pct(c.abort.fraction, req.header(H_ABORT_PCT))) {
        reply = { status: status ?? 200, body: 'fault filter abort', ...(grpcStatus !== null ? { grpcStatus } : {}) };
      }
    }
    if (delayMs === 0 && !reply) return null;
    if (this.stats.active_faults.value >= c.maxActiveFaults) {
      this.stats.faults_overflow.value++;
      return null;
    }
    this.stats.active_faults.value++;
    if (delayMs) this.stats.delays_injected.value++;
    if (reply) this.stats.aborts_injected.value++;
    return { delayMs, reply };
  }

  onDone(): void {
    this.stats.active_faults.value--;
  }
}
