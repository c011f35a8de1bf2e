import type { FieldError } from '../../../errors.js';
import { compileClusterSpecifier } from '../../../router/cluster_specifier.js';
import { compileHeaderMatcher, type HeaderMatch } from '../../../router/header_matcher.js';
import type { RpcRequestView, RpcRoute, RpcRouter } from '../../../router/rpc_route_table.js';
import { RoutingPriority } from '../../../upstream/circuit_breakers.js';
import { MetadataMatch } from '../../../upstream/subset/metadata_match.js';

type Obj = Record<string, any>;

/** A thrift_proxy route action on the RPC engine: Envoy's has no timeout, retry or hedge. */
export interface ThriftRoute extends RpcRoute {
  /** `strip_service_name`: `Service:method` goes upstream as `method`. */
  readonly stripServiceName: boolean;
}

interface Entry {
  /** `method_name` (whole message name), or `service_name` with its `:` (a prefix); '' = any. */
  readonly name: string;
  readonly byService: boolean;
  readonly invert: boolean;
  readonly headers: readonly HeaderMatch[] | null;
  readonly action: ThriftRoute;
  /** `cluster_header` (lowercased): the action's cluster is this request header's value. */
  readonly clusterHeader: string | null;
  /** Actions per cluster named by `clusterHeader`, built on first use (bounded). */
  readonly byCluster: Map<string, ThriftRoute> | null;
  /** weighted_clusters whose entries carry their own metadata_match: one action per entry. */
  readonly weighted: Weighted | null;
}

interface Weighted {
  readonly total: number;
  /** Cumulative weights, one per action. */
  readonly upTo: readonly number[];
  readonly actions: readonly ThriftRoute[];
}

/**
 * Per-entry actions for weighted clusters with `metadata_match` of their own (merged over the
 * route's, the entry's values winning), picked once per request as Envoy's Thrift router does;
 * null when no entry has one (the shared weighted picker then serves).
 */
function compileWeighted(wc: Obj | undefined, base: ThriftRoute): Weighted | null {
  const list = (wc?.clusters ?? []) as Obj[];
  if (!list.some((c) => c.metadata_match)) return null;
  const upTo: number[] = [];
  const actions: ThriftRoute[] = [];
  let total = 0;
  for (const c of list) {
    const w = Number(c.weight ?? 0);
    if (w <= 0) continue;
    total += w;
    upTo.push(total);
    const name = String(c.name);
    const own = MetadataMatch.fromMetadata(c.metadata_match as Obj | undefined);
    actions.push(Object.freeze({ ...base, clusters: { names: [name], pick: () => name }, metadataMatch: base.metadataMatch ? base.metadataMatch.mergedWith(own) : own }));
  }
  return { total, upTo, actions };
}

function pickWeighted(w: Weighted): ThriftRoute {
  const r = Math.random() * w.total;
  for (let i = 0; i < w.upTo.length - 1; i++) if (r < w.upTo[i]!) return w.actions[i]!;
  return w.actions[w.actions.length - 1]!;
}

/** Clusters named through cluster_header whose actions are kept; past it they are built per call. */
const MAX_DYNAMIC = 256;

/** The action of `e` for a request whose cluster_header names `cluster`. */
function dynamicAction(e: Entry, cluster: string): ThriftRoute {
  let a = e.byCluster!.get(cluster);
  if (a) return a;
  a = Object.freeze({ ...e.action, clusters: { names: [cluster], pick: () => cluster } });
  if (e.byCluster!.size < MAX_DYNAMIC) e.byCluster!.set(cluster, a);
  return a;
}

/** The message name as the client sent it: `Service:method` through TMultiplexedProtocol. */
function messageName(req: RpcRequestView): string {
  const s = req.iface();
  return s ? `${s}:${req.method()}` : req.method();
}

function compileAction(a: Obj, path: string, known: ReadonlySet<string>, errors: FieldError[]): ThriftRoute | null {
  const start = errors.length;
  if (Array.isArray(a.rate_limits) && a.rate_limits.length) errors.push({ path: `${path}.rate_limits`, message: 'is not supported yet' });
  if (Array.isArray(a.request_mirror_policies) && a.request_mirror_policies.length) errors.push({ path: `${path}.request_mirror_policies`, message: 'is not supported yet' });
  // cluster_header: the cluster is known per request; the action is a template for it.
  // An entry's own metadata_match is handled here (compileWeighted), not by the shared picker.
  const wc = a.weighted_clusters ? { ...a.weighted_clusters, clusters: ((a.weighted_clusters.clusters ?? []) as Obj[]).map(({ metadata_match: _, ...c }) => c) } : undefined;
  const clusters = a.cluster_header === undefined ? compileClusterSpecifier({ cluster: a.cluster, weighted_clusters: wc }, path, known, errors) : { names: [], pick: () => '' };
  if (!clusters || errors.length > start) return null;
  return Object.freeze({
    clusters,
    timeoutMs: 0,
    retry: null,
    hedge: null,
    metadataMatch: MetadataMatch.fromMetadata(a.metadata_match as Obj | undefined),
    priority: RoutingPriority.DEFAULT,
    hash: null,
    hostReselects: 0,
    stripServiceName: a.strip_service_name === true,
  });
}

/**
 * thrift_proxy's `route_config`: routes in order, each by the message name (`method_name`
 * exact, `service_name` as a `Service:` prefix, '' for any), `invert`, and `headers`; the first
 * match wins. Header matchers read THeader key/value headers; a plain framed request carries
 * none, so they see every header absent (as Envoy's do for such a request).
 */
export class ThriftRouteTable implements RpcRouter {
  private constructor(private readonly entries: readonly Entry[]) {}

  static compile(rc: Obj | undefined, path: string, known: ReadonlySet<string>, errors: FieldError[]): ThriftRouteTable {
    const entries = ((rc?.routes ?? []) as Obj[]).flatMap((r, i): Entry[] => {
      const p = `${path}.routes[${i}]`;
      const m = (r.match ?? {}) as Obj;
      const start = errors.length;
      const byService = m.service_name !== undefined;
      if (m.method_name === undefined && !byService) errors.push({ path: `${p}.match`, message: 'needs method_name or service_name' });
      let name = String((byService ? m.service_name : m.method_name) ?? '');
      if (byService && name && !name.endsWith(':')) name += ':';
      const invert = m.invert === true;
      if (invert && !name) errors.push({ path: `${p}.match.invert`, message: `cannot invert an empty ${byService ? 'service_name' : 'method_name'} (it matches every call)` });
      const hs = ((m.headers ?? []) as Obj[]).map((h, k) => compileHeaderMatcher(h, `${p}.match.headers[${k}]`, errors));
      const action = compileAction((r.route ?? {}) as Obj, `${p}.route`, known, errors);
      if (!action || errors.length > start) return [];
      const ch = typeof r.route?.cluster_header === 'string' && r.route.cluster_header ? String(r.route.cluster_header).toLowerCase() : null;
      const weighted = compileWeighted(r.route?.weighted_clusters as Obj | undefined, action);
      return [{ name, byService, invert, headers: hs.length ? (hs as HeaderMatch[]) : null, action, clusterHeader: ch, byCluster: ch ? new Map() : null, weighted }];
    });
    return new ThriftRouteTable(entries);
  }

  clusterNames(): Set<string> {
    return new Set(this.entries.flatMap((e) => e.action.clusters.names));
  }

  route(req: RpcRequestView): ThriftRoute | null {
    for (const e of this.entries) {
      if (e.headers && !e.headers.every((h) => h(req.header))) continue;
      let hit = e.name === '';
      if (!hit) hit = e.byService ? messageName(req).startsWith(e.name) : messageName(req) === e.name;
      if (hit === e.invert) continue;
      if (e.weighted) return pickWeighted(e.weighted);
      if (!e.clusterHeader) return e.action;
      // As Envoy: a request without the header is not matched by this route; the next may be.
      const cluster = req.header(e.clusterHeader);
      if (cluster !== undefined) return dynamicAction(e, cluster);
    }
    return null;
  }
}
