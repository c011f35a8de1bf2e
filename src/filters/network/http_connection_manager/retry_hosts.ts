import type { PeerAddress } from '../../../io/engine.js';
import type { RetryHostPredicate } from '../../../router/http_route_table.js';
import type { Cluster } from '../../../upstream/cluster.js';
import type { Host } from '../../../upstream/host.js';
import type { LbContext } from '../../../upstream/lb/context.js';
import { lbMetadata } from '../../../upstream/subset/metadata_match.js';

/**
 * The hosts one request has tried, for previous_hosts, kept as two fields of the exchange itself:
 * the first host in a field, so a request that is never retried allocates nothing; later ones
 * (a retry, a hedge) in a small array made on the first retry.
 */
export interface TriedHosts {
  triedFirst: Host | null;
  triedMore: Host[] | null;
}

/** Records the host a try is starting on. */
export function noteTried(t: TriedHosts, h: Host): void {
  if (t.triedFirst === null) t.triedFirst = h;
  else if (h !== t.triedFirst && (t.triedMore === null || !t.triedMore.includes(h))) (t.triedMore ??= []).push(h);
}

function wasTried(t: TriedHosts, h: Host): boolean {
  return h === t.triedFirst || (t.triedMore !== null && t.triedMore.includes(h));
}

function rejects(p: RetryHostPredicate, host: Host, tried: TriedHosts): boolean {
  if (p.previousHosts && wasTried(tried, host)) return true;
  if (p.omitCanary && lbMetadata(host)?.canary === true) return true;
  return p.omitMetadata !== null && p.omitMetadata.matchesHost(host);
}

/**
 * Picks the host of one try (the first, a retry or a hedge). Without a host predicate every try
 * asks the balancer the same question, so a hashing balancer returns the key's host each time,
 * as Envoy's does. With one, a rejected pick is redone up to `maxReselects` times, telling a
 * hashing balancer which reselect this is (LbContext.attempt) so it steps off the key's host;
 * the last pick stands even if rejected, as in Envoy. `dst`: the connection's original
 * destination, the host of an ORIGINAL_DST cluster.
 */
export function pickTryHost(cluster: Cluster, lb: LbContext | null, p: RetryHostPredicate | null, tried: TriedHosts, dst: PeerAddress | null = null): Host | null {
  if (lb !== null) lb.attempt = 0;
  let host = cluster.pickHost(lb, dst);
  if (p === null) return host;
  for (let i = 1; host !== null && i <= p.maxReselects && rejects(p, host, tried); i++) {
    if (lb !== null) lb.attempt = i;
    host = cluster.pickHost(lb, dst);
  }
  return host;
}
