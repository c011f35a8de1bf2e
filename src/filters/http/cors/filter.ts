import type { Scope, StatsOf } from '../../../observability/stats.js';
import { addResponseHeaders, type FilterVerdict, type HttpFilter, type HttpFilterRequest } from '../types.js';
import { CorsPolicy, LEGACY_CORS_KEY } from './policy.js';
import { CORS_STATS } from './stats.js';

/**
 * Envoy's `envoy.filters.http.cors`. It acts only on routes with a CORS policy (CorsPolicy in
 * typed_per_filter_config at any level, else the older `cors` fields), merged per route by the
 * route table (policy.ts), and only on requests with a non-empty Origin:
 * - a preflight (OPTIONS with Origin and Access-Control-Request-Method) from an allowed origin is
 *   answered here with 200 and the policy's access-control-* headers; the upstream never sees it.
 *   One from an origin that is not allowed goes on to the upstream, unless
 *   forward_not_matching_preflights is false: then it too is answered 200, without
 *   access-control-allow-origin (Envoy's behaviour);
 * - any other request from an allowed origin goes on, and the response it gets (the upstream's or
 *   a local reply) carries access-control-allow-origin (the origin echoed), -allow-credentials
 *   and -expose-headers, through the request's response header edits.
 */
export class CorsFilter implements HttpFilter {
  private readonly stats: StatsOf<typeof CORS_STATS>;

  constructor(
    scope: Scope,
    /** The filter's name in the chain: the key its typed_per_filter_config policies are under. */
    private readonly name: string,
    private readonly random: () => number = Math.random,
  ) {
    this.stats = scope.scope('cors').table(CORS_STATS);
  }

  onRequest(req: HttpFilterRequest): FilterVerdict | null {
    const pr = req.perRoute;
    if (!pr) return null;
    let p = pr.get(this.name);
    if (!(p instanceof CorsPolicy)) {
      p = pr.get(LEGACY_CORS_KEY);
      if (!(p instanceof CorsPolicy)) return null;
    }
    // Sampled once per request (Envoy samples at each look, which only matters below 100%).
    const enabled = p.enabled >= 1 || (p.enabled > 0 && this.random() < p.enabled);
    if (!enabled && !(p.shadow > 0 && (p.shadow >= 1 || this.random() < p.shadow))) return null;
    const origin = req.header('origin');
    if (!origin) return null;
    const allowed = p.allows(origin);
    if (allowed) this.stats.origin_valid.value++;
    else this.stats.origin_invalid.value++;
    // shadow_enabled alone: counted, never enforced (filter_enabled wins when both are on).
    if (!enabled) return null;
    if (allowed) addResponseHeaders(req, p.responseEdits(origin));
    if (req.method !== 'OPTIONS' || !req.header('access-control-request-method')) return null;
    if (!allowed && p.forwardsNotMatching) return null;
    return { delayMs: 0, reply: { status: 200, body: '', headers: p.preflightHeaders(allowed ? origin : null, req.header) } };
  }
}
