import { log } from '../../log.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE, PUSH_ORDER } from '../proto.js';
import { decodeAny } from '../resources.js';
import type { ResourceSet, ServedResource } from './resource_dir.js';

const EMPTY: ReadonlyMap<string, ServedResource> = new Map();
/** Clusters and their endpoints: what must be in a client before anything that names them. */
const UPSTREAM = new Set([CLUSTER_TYPE, ENDPOINT_TYPE]);

/** The EDS service name of an EDS cluster (null for other cluster types); decoded once per version. */
const serviceNames = new WeakMap<ServedResource, string | null>();
function edsServiceName(r: ServedResource): string | null {
  let n = serviceNames.get(r);
  if (n === undefined) {
    const c = decodeAny(r.any, CLUSTER_TYPE).value as Record<string, any> | null;
    n = c?.type === 'EDS' || c?.eds_cluster_config ? String(c?.eds_cluster_config?.service_name || r.name) : null;
    serviceNames.set(r, n);
  }
  return n;
}

/** The stream a PushOrder drives. */
export interface OrderedStream {
  readonly id: number;
  /** Types the client subscribed to, in any order. */
  types(): Iterable<string>;
  /** Whether the client asked for `name` of `type` (by name or wildcard). */
  wants(type: string, name: string): boolean;
  /** Sends `type` when what the view holds differs from what the client last got. */
  send(type: string): void;
}

function byPushOrder(types: Iterable<string>): string[] {
  const rank = (t: string) => {
    const i = PUSH_ORDER.indexOf(t);
    return i < 0 ? PUSH_ORDER.length : i;
  };
  return [...types].sort((a, b) => rank(a) - rank(b));
}

/** `next` with what only `prev` has kept: additions and changes now, removals later. */
function keepRemoved(prev: ReadonlyMap<string, ServedResource> | undefined, next: ReadonlyMap<string, ServedResource> | undefined): ReadonlyMap<string, ServedResource> {
  if (!prev?.size) return next ?? EMPTY;
  const out = new Map(next ?? EMPTY);
  for (const [k, v] of prev) if (!out.has(k)) out.set(k, v);
  return out;
}

/**
 * Make-before-break pushes for one ADS stream (SotW or delta). A new snapshot goes out in three
 * steps: (1) clusters and endpoints, additions and changes only; (2) once the client answered
 * those (and asked for, and answered, the endpoints of every new EDS cluster it took), listeners
 * and routes; (3) once those are answered, the removal of clusters and endpoints nothing routes
 * to any more. A route therefore never names a cluster the client does not have yet, and a
 * cluster never goes while a route still names it. A client that does not answer within
 * `confirmMs` is pushed the next step anyway, so one stuck client never freezes the others.
 */
export class PushOrder {
  /** What this stream is currently served, per type. */
  private view: Map<string, ReadonlyMap<string, ServedResource>>;
  private target: ResourceSet | null = null;
  private stage: 0 | 1 | 2 = 0;
  /** Responses sent and not yet ACKed or NACKed, by type. */
  private readonly unanswered = new Map<string, string>();
  private timer: NodeJS.Timeout | null = null;
  /** Clusters added or changed by the push under way whose endpoints the client must ask for first: [cluster, EDS service]. */
  private fresh: Array<[string, string]> = [];

  constructor(
    initial: ResourceSet,
    private readonly stream: OrderedStream,
    private readonly confirmMs: number,
  ) {
    this.view = new Map(initial);
  }

  resources(type: string): ReadonlyMap<string, ServedResource> {
    return this.view.get(type) ?? EMPTY;
  }

  /** Records a response; the step waits for its answer. */
  sent(type: string, nonce: string): void {
    this.unanswered.set(type, nonce);
  }

  /** An ACK or NACK of `nonce`: either way the client has taken a position on it. */
  answered(type: string, nonce: string): void {
    if (this.unanswered.get(type) !== nonce) return;
    this.unanswered.delete(type);
    this.check();
  }

  /** A new subscription may be what step 1 waits for (the endpoints of a new cluster). */
  subscribed(): void {
    this.check();
  }

  onSnapshot(target: ResourceSet): void {
    this.target = target;
    this.stage = 1;
    const had = this.view.get(CLUSTER_TYPE);
    const eds = target.get(ENDPOINT_TYPE);
    this.fresh = [];
    for (const c of target.get(CLUSTER_TYPE)?.values() ?? []) {
      if (had?.get(c.name)?.version === c.version) continue;
      const svc = edsServiceName(c);
      if (svc !== null && eds?.has(svc)) this.fresh.push([c.name, svc]);
    }
    for (const t of UPSTREAM) this.view.set(t, keepRemoved(this.view.get(t), target.get(t)));
    this.arm();
    for (const t of byPushOrder(this.stream.types())) if (UPSTREAM.has(t)) this.stream.send(t);
    this.check();
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private arm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      log.warn({ stream: this.stream.id, step: this.stage === 1 ? 'clusters' : 'routes' }, 'xds-server: client did not answer in time; pushing the next step anyway');
      this.advance();
    }, this.confirmMs);
    this.timer.unref();
  }

  private check(): void {
    if (this.stage === 0 || !this.target) return;
    if (this.stage === 1) {
      for (const t of UPSTREAM) if (this.unanswered.has(t)) return;
      // Every new EDS cluster the client took needs its endpoints in (and answered) first:
      // the client keeps a cluster warming until they arrive, and a route to it would fail.
      for (const [cluster, svc] of this.fresh) if (this.stream.wants(CLUSTER_TYPE, cluster) && !this.stream.wants(ENDPOINT_TYPE, svc)) return;
    } else {
      for (const t of this.unanswered.keys()) if (!UPSTREAM.has(t)) return;
    }
    this.advance();
  }

  private advance(): void {
    const target = this.target;
    if (!target) return;
    if (this.stage === 1) {
      this.stage = 2;
      for (const [t, m] of target) if (!UPSTREAM.has(t)) this.view.set(t, m);
      for (const t of [...this.view.keys()]) if (!UPSTREAM.has(t) && !target.has(t)) this.view.delete(t);
      this.arm();
      for (const t of byPushOrder(this.stream.types())) if (!UPSTREAM.has(t)) this.stream.send(t);
      this.check();
      return;
    }
    // Step 3: what nothing routes to any more goes.
    this.stage = 0;
    this.target = null;
    this.close();
    for (const t of UPSTREAM) {
      const m = target.get(t);
      if (m) this.view.set(t, m);
      else this.view.delete(t);
    }
    for (const t of byPushOrder(this.stream.types())) if (UPSTREAM.has(t)) this.stream.send(t);
  }
}
