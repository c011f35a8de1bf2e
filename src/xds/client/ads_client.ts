import grpc from '@grpc/grpc-js';
import type { FieldError } from '../../errors.js';
import { log } from '../../log.js';
import {
  DELTA_METHOD,
  GRPC_INVALID_ARGUMENT,
  PUSH_ORDER,
  resourceName,
  shortType,
  SOTW_METHOD,
  type AnyMsg,
  type DeltaDiscoveryRequest,
  type DeltaDiscoveryResponse,
  type DiscoveryRequest,
  type DiscoveryResponse,
} from '../proto.js';
import { contentVersion, decodeAny } from '../resources.js';

type Obj = Record<string, unknown>;

/** One resource as the handler sees it: decoded, validated at the proto level, with its bytes. */
export interface ReceivedResource {
  readonly name: string;
  readonly version: string;
  readonly value: Obj;
  readonly any: AnyMsg;
  readonly warnings: readonly FieldError[];
}

export interface ResourceUpdate {
  readonly typeUrl: string;
  /** Added or changed resources (state of the world: every resource in the response). */
  readonly resources: readonly ReceivedResource[];
  /** Names the server said are gone (delta), or that a wildcard full set no longer has. */
  readonly removed: readonly string[];
  /** State of the world, wildcard type: `resources` is the whole set. */
  readonly full: boolean;
  /** The response's version_info / system_version_info. */
  readonly versionInfo: string;
  /** Resources that failed to decode; the handler keeps their previous version. */
  readonly rejected: readonly string[];
  /** Why they failed (NACK lines, already sent by the client itself). */
  readonly decodeProblems: readonly string[];
}

/** What the handler made of an update: problem lines (none = ACK) and the names it refused. */
export interface UpdateResult {
  readonly problems: readonly string[];
  readonly rejected: ReadonlySet<string>;
}

/** Applies updates; an update with problems is NACKed with those lines. */
export interface AdsHandler {
  onUpdate(u: ResourceUpdate): Promise<UpdateResult>;
  /** The stream came up (first response received) or went down. */
  onConnection?(up: boolean, detail: string): void;
}

export interface AdsClientOptions {
  readonly target: string;
  readonly delta: boolean;
  readonly node: Obj;
  readonly backoff: { readonly baseMs: number; readonly maxMs: number };
  /** Another xDS service on the same messages (stand-alone SDS); ADS when absent. */
  readonly methods?: { readonly sotw: typeof SOTW_METHOD; readonly delta: typeof DELTA_METHOD };
}

interface TypeState {
  wildcard: boolean;
  names: Set<string>;
  /** SotW: the last accepted version_info; delta: unused. */
  versionInfo: string;
  /** The nonce of the last response seen on this stream. */
  nonce: string;
  /** Delta: name → version of every resource held. */
  versions: Map<string, string>;
  /** Whether this stream has asked for the type yet. */
  requested: boolean;
  /** Delta: the names the server was told about, to send subscribe/unsubscribe differences. */
  sentNames: Set<string>;
  sentWildcard: boolean;
}

/** Formats decode problems of one resource as NACK lines: `Cluster "a": connect_timeout: …`. */
function lines(typeUrl: string, name: string, errors: readonly FieldError[]): string[] {
  return errors.map((e) => `${shortType(typeUrl)} "${name}": ${e.path ? `${e.path}: ` : ''}${e.message}`);
}

/**
 * An ADS client over one gRPC channel: state of the world (StreamAggregatedResources) or delta
 * (DeltaAggregatedResources). Tracks subscriptions, versions and nonces per type, ACKs what the
 * handler accepts and NACKs with its messages, and reconnects with jittered exponential backoff,
 * re-subscribing with the versions it holds.
 */
export class AdsClient {
  private readonly client: grpc.Client;
  private call: grpc.ClientDuplexStream<any, any> | null = null;
  private readonly types = new Map<string, TypeState>();
  private queue: Promise<void> = Promise.resolve();
  private attempt = 0;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private nodeSent = false;
  private everConnected = false;
  /** Counters for /stats-like reporting and tests. */
  readonly counts = { update_attempt: 0, update_success: 0, update_rejected: 0, connects: 0 };

  constructor(
    private readonly o: AdsClientOptions,
    private readonly handler: AdsHandler,
  ) {
    // ADS streams live for hours: keepalive finds a dead control plane that never sent a FIN.
    this.client = new grpc.Client(o.target, grpc.credentials.createInsecure(), {
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
      'grpc.max_receive_message_length': -1,
    });
  }

  private state(type: string): TypeState {
    let st = this.types.get(type);
    if (!st) {
      st = { wildcard: false, names: new Set(), versionInfo: '', nonce: '', versions: new Map(), requested: false, sentNames: new Set(), sentWildcard: false };
      this.types.set(type, st);
    }
    return st;
  }

  /** Sets interest in a type: every resource ('*', for LDS/CDS) or these names (EDS). */
  watch(typeUrl: string, names: '*' | ReadonlySet<string>): void {
    const st = this.state(typeUrl);
    const wildcard = names === '*';
    const set = wildcard ? new Set<string>() : new Set(names);
    const same = st.wildcard === wildcard && st.names.size === set.size && [...set].every((n) => st.names.has(n));
    st.wildcard = wildcard;
    st.names = set;
    if (!wildcard) for (const n of st.versions.keys()) if (!set.has(n)) st.versions.delete(n);
    if (this.call && (!same || !st.requested)) this.request(typeUrl);
  }

  start(): void {
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.call?.cancel();
    this.call = null;
    this.client.close();
  }

  private connect(): void {
    if (this.stopped) return;
    const m = this.o.delta ? (this.o.methods?.delta ?? DELTA_METHOD) : (this.o.methods?.sotw ?? SOTW_METHOD);
    const call = this.client.makeBidiStreamRequest(m.path, m.requestSerialize as (v: any) => Buffer, m.responseDeserialize as (b: Buffer) => any);
    this.call = call;
    this.nodeSent = false;
    this.counts.connects++;
    for (const st of this.types.values()) {
      st.requested = false;
      st.nonce = '';
      st.sentNames = new Set();
      st.sentWildcard = false;
    }
    call.on('data', (res: DiscoveryResponse | DeltaDiscoveryResponse) => {
      // Responses are applied one at a time, in order; each ACK/NACK goes out after its apply.
      this.queue = this.queue.then(() => this.onResponse(call, res)).catch((err) => log.error({ err: (err as Error).stack }, 'xds: applying an update failed'));
    });
    let closed = false;
    const down = (why: string) => {
      if (closed) return;
      closed = true;
      if (this.call === call) this.call = null;
      if (this.stopped) return;
      this.handler.onConnection?.(false, why);
      this.scheduleReconnect(why);
    };
    call.on('error', (err: grpc.ServiceError) => down((err.details || err.message).replace(/\s*Resolution note:\s*$/, '')));
    call.on('end', () => down('stream ended by the server'));
    call.on('status', (s: grpc.StatusObject) => {
      if (s.code !== grpc.status.OK) down(s.details);
    });
    // Clusters first so the endpoints and listeners that follow find them (the ADS order).
    for (const type of [...PUSH_ORDER.filter((t) => this.types.has(t)), ...[...this.types.keys()].filter((t) => !PUSH_ORDER.includes(t))]) {
      this.request(type);
    }
  }

  private scheduleReconnect(why: string): void {
    // Jittered exponential backoff: base·2^n capped at max, then a uniform pick below it.
    const ceiling = Math.min(this.o.backoff.maxMs, this.o.backoff.baseMs * 2 ** Math.min(this.attempt, 20));
    const delay = Math.max(1, Math.floor(Math.random() * ceiling));
    this.attempt++;
    log.warn({ target: this.o.target, reason: why, retryInMs: delay }, 'xds: stream down; reconnecting');
    this.timer = setTimeout(() => {
      this.timer = null;
      this.connect();
    }, delay);
    this.timer.unref();
  }

  private write(msg: DiscoveryRequest | DeltaDiscoveryRequest): void {
    if (!this.call) return;
    if (!this.nodeSent) {
      // Node once per stream, as set_node_on_first_message_only asks (Istio sets it).
      msg.node = this.o.node;
      this.nodeSent = true;
    }
    this.call.write(msg);
  }

  /** A subscription request for `type`: the first of the stream, or after the names changed. */
  private request(type: string): void {
    const st = this.state(type);
    if (!st.wildcard && st.names.size === 0 && !st.requested) return; // nothing to ask for yet
    if (this.o.delta) {
      const req: DeltaDiscoveryRequest = { type_url: type };
      if (!st.requested) {
        req.resource_names_subscribe = st.wildcard ? [] : [...st.names];
        if (st.versions.size) req.initial_resource_versions = Object.fromEntries(st.versions);
      } else {
        const sub = [...st.names].filter((n) => !st.sentNames.has(n));
        const unsub = [...st.sentNames].filter((n) => !st.names.has(n));
        if (st.wildcard && !st.sentWildcard) sub.push('*');
        if (!st.wildcard && st.sentWildcard) unsub.push('*');
        if (!sub.length && !unsub.length) return;
        req.resource_names_subscribe = sub;
        req.resource_names_unsubscribe = unsub;
      }
      st.sentNames = new Set(st.names);
      st.sentWildcard = st.wildcard;
      st.requested = true;
      this.write(req);
      return;
    }
    st.requested = true;
    this.write({ type_url: type, version_info: st.versionInfo, response_nonce: st.nonce, resource_names: st.wildcard ? [] : [...st.names] });
  }

  private async onResponse(call: grpc.ClientDuplexStream<any, any>, res: DiscoveryResponse | DeltaDiscoveryResponse): Promise<void> {
    if (call !== this.call) return; // from a stream that has since gone away
    if (!this.everConnected || this.attempt > 0) {
      this.handler.onConnection?.(true, this.o.target);
      this.everConnected = true;
    }
    this.attempt = 0; // the stream works: the next failure starts the backoff from the base
    const type = res.type_url ?? '';
    const st = this.state(type);
    st.nonce = res.nonce ?? '';
    this.counts.update_attempt++;
    const received: ReceivedResource[] = [];
    const rejected: string[] = [];
    const problems: string[] = [];
    const take = (any: AnyMsg | null | undefined, deltaName: string | undefined, version: string | undefined) => {
      if (!any) return;
      const d = decodeAny(any, type);
      const name = d.value ? resourceName(type, d.value) || deltaName || '' : deltaName ?? '';
      if (d.errors.length || !d.value) {
        problems.push(...lines(type, name, d.errors));
        if (name) rejected.push(name);
        return;
      }
      received.push({ name, version: version || contentVersion(any), value: d.value, any, warnings: d.warnings });
    };
    let removed: string[] = [];
    let versionInfo: string;
    if (this.o.delta) {
      const r = res as DeltaDiscoveryResponse;
      for (const x of r.resources ?? []) take(x.resource, x.name, x.version);
      removed = [...(r.removed_resources ?? [])];
      versionInfo = r.system_version_info ?? '';
    } else {
      const r = res as DiscoveryResponse;
      for (const a of r.resources ?? []) take(a, undefined, undefined);
      versionInfo = r.version_info ?? '';
      if (st.wildcard) {
        const names = new Set([...received.map((x) => x.name), ...rejected]);
        removed = [...st.versions.keys()].filter((n) => !names.has(n));
      }
    }
    let applied: UpdateResult;
    try {
      applied = await this.handler.onUpdate({ typeUrl: type, resources: received, removed, full: !this.o.delta && st.wildcard, versionInfo, rejected, decodeProblems: [...problems] });
    } catch (err) {
      applied = { problems: [`${shortType(type)}: ${(err as Error).message}`], rejected: new Set(received.map((x) => x.name)) };
    }
    problems.push(...applied.problems);
    // What we hold now: accepted resources take their new version, refused ones keep the old
    // (so a reconnect does not claim a version this client never applied).
    for (const x of received) if (!applied.rejected.has(x.name)) st.versions.set(x.name, x.version);
    for (const n of removed) st.versions.delete(n);
    if (call !== this.call) return;
    if (problems.length) {
      this.counts.update_rejected++;
      const message = problems.join('\n');
      log.warn({ type: shortType(type), version: versionInfo, errors: problems }, 'xds: update rejected (NACK)');
      const error_detail = { code: GRPC_INVALID_ARGUMENT, message };
      if (this.o.delta) this.write({ type_url: type, response_nonce: st.nonce, error_detail });
      else this.write({ type_url: type, version_info: st.versionInfo, response_nonce: st.nonce, resource_names: st.wildcard ? [] : [...st.names], error_detail });
      return;
    }
    this.counts.update_success++;
    st.versionInfo = versionInfo;
    if (this.o.delta) this.write({ type_url: type, response_nonce: st.nonce });
    else this.write({ type_url: type, version_info: versionInfo, response_nonce: st.nonce, resource_names: st.wildcard ? [] : [...st.names] });
  }

  /**
   * Versions held from elsewhere (a restored snapshot): the next stream tells the server, as
   * SotW version_info and delta initial_resource_versions, so it sends only what differs.
   */
  seed(type: string, versionInfo: string, versions: ReadonlyMap<string, string>): void {
    const st = this.state(type);
    st.versionInfo = versionInfo;
    st.versions = new Map(versions);
  }

  /** What this client holds, per type, for persistence: version_info and each resource's version. */
  held(type: string): { versionInfo: string; versions: ReadonlyMap<string, string> } {
    const st = this.state(type);
    return { versionInfo: st.versionInfo, versions: st.versions };
  }
}
