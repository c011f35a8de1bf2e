import grpc from '@grpc/grpc-js';
import { log } from '../../log.js';
import {
  ADS_SERVICE,
  CLUSTER_TYPE,
  shortType,
  WILDCARD_TYPES,
  type DeltaDiscoveryRequest,
  type DeltaDiscoveryResponse,
  type DiscoveryRequest,
  type DiscoveryResponse,
} from '../proto.js';
import { PushOrder, type OrderedStream } from './push_order.js';
import type { ResourceSet } from './resource_dir.js';

const NONE: readonly string[] = [];

/** A versioned view of everything served; replaced whole on every change. */
export interface Snapshot {
  readonly version: string;
  readonly resources: ResourceSet;
}

/** What the server saw of its clients, for tests and logs. */
export interface ServerEvents {
  onAck?(info: { stream: number; typeUrl: string; version: string; nodeId: string }): void;
  onNack?(info: { stream: number; typeUrl: string; version: string; nodeId: string; message: string }): void;
}

function nodeId(node: Record<string, unknown> | null | undefined): string {
  return typeof node?.id === 'string' ? node.id : '';
}

/**
 * What both protocols' streams share: the client's node, the nonce counter, per-type
 * subscriptions (wildcard or names) and the push order that sequences updates to the client.
 */
abstract class OrderedStreamBase<Sub extends { wildcard: boolean; names: Set<string> }> implements OrderedStream {
  protected node: Record<string, unknown> | null = null;
  protected nonce = 0;
  protected readonly subs = new Map<string, Sub>();
  protected readonly order: PushOrder;

  constructor(
    readonly id: number,
    protected readonly server: AdsServer,
  ) {
    this.order = new PushOrder(server.snapshot.resources, this, server.confirmMs);
  }

  types(): Iterable<string> {
    return this.subs.keys();
  }

  wants(type: string, name: string): boolean {
    const st = this.subs.get(type);
    return !!st && (st.wildcard || st.names.has(name));
  }

  close(): void {
    this.order.close();
  }

  abstract send(type: string): void;
}

/**
 * State-of-the-world ADS on one stream. Per type: the names asked for (or wildcard), the nonce
 * of the last response (requests carrying an older nonce are stale and ignored, as the protocol
 * says), and what was sent, so a snapshot change is pushed only to streams it affects.
 */
class SotwStream extends OrderedStreamBase<{ wildcard: boolean; names: Set<string>; nonce: string; sent: string }> {
  constructor(
    id: number,
    private readonly call: grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>,
    server: AdsServer,
  ) {
    super(id, server);
  }

  onRequest(req: DiscoveryRequest): void {
    if (req.node && !this.node) {
      this.node = req.node;
      log.info({ stream: this.id, node: nodeId(req.node), cluster: req.node.cluster }, 'xds client connected (state of the world)');
    }
    const type = req.type_url ?? '';
    if (!type) return;
    const names = req.resource_names ?? [];
    const wildcard = (names.length === 0 && WILDCARD_TYPES.has(type)) || names.includes('*');
    let st = this.subs.get(type);
    if (st && req.response_nonce && req.response_nonce !== st.nonce) return; // stale: a newer response is in flight
    if (st && req.response_nonce) {
      const info = { stream: this.id, typeUrl: type, version: req.version_info ?? '', nodeId: nodeId(this.node) };
      if (req.error_detail) {
        log.warn({ ...info, type: shortType(type), error: req.error_detail.message }, 'xds NACK');
        this.server.events.onNack?.({ ...info, message: req.error_detail.message });
      } else {
        log.debug({ ...info, type: shortType(type) }, 'xds ACK');
        this.server.events.onAck?.(info);
      }
      this.order.answered(type, req.response_nonce);
    }
    const nameSet = new Set(names.filter((n) => n !== '*'));
    const changed = !st || st.wildcard !== wildcard || st.names.size !== nameSet.size || [...nameSet].some((n) => !st!.names.has(n));
    if (!st) this.subs.set(type, (st = { wildcard, names: nameSet, nonce: '', sent: '' }));
    else {
      st.wildcard = wildcard;
      st.names = nameSet;
    }
    // The first request of a type, or a change of names, gets an answer; ACKs and NACKs do not.
    if (changed) {
      this.send(type, true);
      this.order.subscribed();
    }
  }

  /** Sends the type's current state when it differs from what this stream last got (or `force`). */
  send(type: string, force = false): void {
    const st = this.subs.get(type);
    if (!st) return;
    const all = this.order.resources(type);
    const picked = st.wildcard ? [...all.values()] : [...st.names].flatMap((n) => (all.has(n) ? [all.get(n)!] : []));
    const fingerprint = picked.map((r) => `${r.name}@${r.version}`).join(',');
    if (!force && fingerprint === st.sent) return;
    st.sent = fingerprint;
    st.nonce = String(++this.nonce);
    this.order.sent(type, st.nonce);
    this.call.write({ version_info: this.server.snapshot.version, type_url: type, nonce: st.nonce, resources: picked.map((r) => r.any) });
  }

  onSnapshot(): void {
    this.order.onSnapshot(this.server.snapshot.resources);
  }

  /** What this stream asked for of `type` (null: never asked). */
  subscription(type: string): { wildcard: boolean; names: string[] } | null {
    const st = this.subs.get(type);
    return st ? { wildcard: st.wildcard, names: [...st.names].sort() } : null;
  }
}

/**
 * Delta (incremental) ADS on one stream. Per type: wildcard or not, the names subscribed, and
 * the version of every resource this client holds (seeded from initial_resource_versions on a
 * reconnect), so each response carries only what changed and the names that went away.
 */
class DeltaStream extends OrderedStreamBase<{ wildcard: boolean; names: Set<string>; has: Map<string, string>; nonce: string }> {
  constructor(
    id: number,
    private readonly call: grpc.ServerDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>,
    server: AdsServer,
  ) {
    super(id, server);
  }

  onRequest(req: DeltaDiscoveryRequest): void {
    if (req.node && !this.node) {
      this.node = req.node;
      log.info({ stream: this.id, node: nodeId(req.node), cluster: req.node.cluster }, 'xds client connected (delta)');
    }
    const type = req.type_url ?? '';
    if (!type) return;
    const sub = req.resource_names_subscribe ?? [];
    const unsub = req.resource_names_unsubscribe ?? [];
    let st = this.subs.get(type);
    const first = !st;
    if (!st) {
      // An empty first subscription of LDS/CDS is the legacy wildcard; "*" is the explicit one.
      const wildcard = (sub.length === 0 && WILDCARD_TYPES.has(type)) || sub.includes('*');
      st = { wildcard, names: new Set(), has: new Map(Object.entries(req.initial_resource_versions ?? {})), nonce: '' };
      this.subs.set(type, st);
    }
    if (req.response_nonce) {
      const info = { stream: this.id, typeUrl: type, version: this.server.snapshot.version, nodeId: nodeId(this.node) };
      if (req.response_nonce === st.nonce) {
        if (req.error_detail) {
          log.warn({ ...info, type: shortType(type), error: req.error_detail.message }, 'xds NACK');
          this.server.events.onNack?.({ ...info, message: req.error_detail.message });
        } else {
          log.debug({ ...info, type: shortType(type) }, 'xds ACK');
          this.server.events.onAck?.(info);
        }
        this.order.answered(type, req.response_nonce);
      }
    }
    for (const n of sub) {
      if (n === '*') st.wildcard = true;
      else st.names.add(n);
      // A fresh subscribe to a name the client holds asks for it again.
      if (!first && n !== '*') st.has.delete(n);
    }
    for (const n of unsub) {
      if (n === '*') st.wildcard = false;
      else {
        st.names.delete(n);
        if (!st.wildcard) st.has.delete(n);
      }
    }
    // A cluster asked for by name that the server does not have is answered as removed, as the
    // delta protocol asks: an on-demand client then knows not to wait for it.
    const absent = type === CLUSTER_TYPE && sub.length ? sub.filter((n) => n !== '*' && !this.order.resources(type).has(n)) : NONE;
    this.send(type, first, absent);
    if (sub.length || unsub.length) this.order.subscribed();
  }

  send(type: string, force = false, absent: readonly string[] = NONE): void {
    const st = this.subs.get(type);
    if (!st) return;
    const all = this.order.resources(type);
    const wanted = (name: string) => st.wildcard || st.names.has(name);
    const resources = [...all.values()].filter((r) => wanted(r.name) && st.has.get(r.name) !== r.version);
    const removed = [...st.has.keys()].filter((n) => !all.has(n) || !wanted(n));
    for (const n of absent) if (!st.has.has(n)) removed.push(n);
    if (!resources.length && !removed.length && !force) return;
    for (const r of resources) st.has.set(r.name, r.version);
    for (const n of removed) st.has.delete(n);
    st.nonce = String(++this.nonce);
    this.order.sent(type, st.nonce);
    this.call.write({
      system_version_info: this.server.snapshot.version,
      type_url: type,
      nonce: st.nonce,
      resources: resources.map((r) => ({ name: r.name, version: r.version, resource: r.any })),
      removed_resources: removed,
    });
  }

  onSnapshot(): void {
    this.order.onSnapshot(this.server.snapshot.resources);
  }

  /** What this stream asked for of `type` (null: never asked). */
  subscription(type: string): { wildcard: boolean; names: string[] } | null {
    const st = this.subs.get(type);
    return st ? { wildcard: st.wildcard, names: [...st.names].sort() } : null;
  }
}

/** The embedded control plane: ADS (state of the world and delta) over one snapshot. */
export class AdsServer {
  snapshot: Snapshot = { version: '0', resources: new Map() };
  readonly events: ServerEvents = {};
  /** How long a push step waits for the client's ACK before the next step goes anyway. */
  confirmMs = 5000;
  private readonly grpcServer = new grpc.Server();
  private readonly streams = new Set<SotwStream | DeltaStream>();
  private nextStream = 0;

  constructor() {
    this.grpcServer.addService(ADS_SERVICE, {
      StreamAggregatedResources: (call: grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>) => {
        this.serve(call, new SotwStream(++this.nextStream, call, this));
      },
      DeltaAggregatedResources: (call: grpc.ServerDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>) => {
        this.serve(call, new DeltaStream(++this.nextStream, call, this));
      },
    });
  }

  private serve(call: grpc.ServerDuplexStream<any, any>, s: SotwStream | DeltaStream): void {
    this.streams.add(s);
    call.on('data', (req) => {
      try {
        s.onRequest(req);
      } catch (err) {
        log.error({ stream: s.id, err: (err as Error).stack }, 'xds request failed');
        call.destroy(err as Error);
      }
    });
    const gone = () => {
      if (this.streams.delete(s)) {
        s.close();
        log.debug({ stream: s.id }, 'xds stream closed');
      }
    };
    call.on('end', () => {
      gone();
      call.end();
    });
    call.on('error', gone);
    call.on('close', gone);
  }

  /** Installs a new snapshot and pushes what changed to every stream. */
  update(snapshot: Snapshot): void {
    this.snapshot = snapshot;
    for (const s of this.streams) s.onSnapshot();
  }

  /** Binds `host:port` (port 0: any free port) and resolves to the bound port. */
  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const where = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
      this.grpcServer.bindAsync(where, grpc.ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound)));
    });
  }

  /** Per connected stream, what it subscribed to of `type`: on-demand clients name resources, others use the wildcard. */
  subscriptions(type: string): Array<{ stream: number; wildcard: boolean; names: string[] }> {
    return [...this.streams].flatMap((s) => {
      const sub = s.subscription(type);
      return sub ? [{ stream: s.id, ...sub }] : [];
    });
  }

  get streamCount(): number {
    return this.streams.size;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.grpcServer.tryShutdown(() => resolve());
      // Open streams would hold tryShutdown forever: ADS streams never end on their own.
      setTimeout(() => this.grpcServer.forceShutdown(), 1000).unref();
    });
  }
}
