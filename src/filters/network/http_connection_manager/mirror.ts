/**
 * Request mirroring (`request_mirror_policies`): once a request is complete, a copy goes to each
 * sampled shadow cluster and whatever comes back is dropped. The client only ever sees the
 * primary's response; a shadow that fails or is slow costs it nothing.
 */
import { shadowHost, type MirrorPolicy } from '../../../router/http_route_table.js';
import { upstreamProtocolOf } from '../../../upstream/http2_pool.js';
import type { HttpConnectionManagerFilter } from './filter.js';
import { H1Try, H2Try, type HeaderObject, type TryEvents, type UpstreamTry } from './upstream_try.js';

/** Shadow responses are read to the end (so the connection can be reused) and thrown away. */
class Discard implements TryEvents {
  constructor(private readonly done: (ok: boolean) => void) {}
  onResponse(_status: number, _headers: HeaderObject, endStream: boolean): void {
    if (endStream) this.done(true);
  }
  onData(): void {}
  onEnd(): void {
    this.done(true);
  }
  onFailure(): void {
    this.done(false);
  }
  onAbort(): void {
    this.done(false);
  }
}

/**
 * Sends the shadow copies of one request. `headers` are the request's upstream headers (pseudo
 * headers included) and `body` its complete payload (no chunk framing).
 */
export function sendMirrors(filter: HttpConnectionManagerFilter, policies: readonly MirrorPolicy[], headers: HeaderObject, body: readonly Buffer[]): void {
  let total = 0;
  for (const b of body) total += b.length;
  for (const m of policies) {
    if (m.numerator < m.denominator && Math.random() * m.denominator >= m.numerator) continue;
    // cluster_header: the cluster the request names; none, or one that does not exist, is not shadowed (as in Envoy).
    const named = m.clusterHeader === null ? m.cluster : headers[m.clusterHeader];
    const name = typeof named === 'string' ? named : Array.isArray(named) ? named[0] : undefined;
    if (!name) continue;
    const cluster = filter.rt.clusters.get(name);
    const host = cluster?.pickHost();
    if (!cluster || !host) continue; // a shadow never produces a reply of its own
    const h: HeaderObject = { ...headers };
    const authority = String(h[':authority'] ?? '');
    if (m.hostSuffix && authority) h[':authority'] = shadowHost(authority);
    // The whole body is at hand: shadows get a length rather than chunks.
    if (body.length && h['content-length'] === undefined) h['content-length'] = String(total);
    const cs = filter.statsFor(cluster);
    cs.upstream_rq_total.value++;
    const endNow = body.length === 0;
    const ev = new Discard((ok) => {
      if (ok) cs.upstream_rq_completed.value++;
    });
    const t: UpstreamTry =
      upstreamProtocolOf(cluster) === 'http1'
        ? new H1Try(filter.poolsFor(cluster), host, h, endNow, String(h[':method'] ?? 'GET'), ev)
        : new H2Try(filter.h2PoolsFor(cluster), host, h, endNow, ev);
    if (endNow) continue;
    for (const b of body) t.write(b);
    t.end();
  }
}
