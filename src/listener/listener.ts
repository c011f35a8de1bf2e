import type net from 'node:net';
import type { ConnectionContext, Handover, NetworkFilter, RuntimeContext } from '../filters/network/types.js';
import type { BoundListener, Downstream, PeerAddress } from '../io/engine.js';
import { restoreOriginalDst } from '../intercept/original_dst.js';
import { StreamDownstream } from '../io/stream_conn.js';
import { log } from '../log.js';
import type { Scope, StatsOf } from '../observability/stats.js';
import type { ListenerSpec } from './listener_config.js';
import { readProxyHeader } from './proxy_protocol.js';
import { SecureAcceptor } from './secure_accept.js';
import { LISTENER_STATS } from './stats.js';

/** Envoy's stat name for an address: `127.0.0.1_10000`, `[__1]_80` (colons become `_`), or the pipe path. */
export function addressStatName(a: PeerAddress): string {
  if (a.family === 'unix') return a.address;
  return `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`.replaceAll(':', '_');
}

/**
 * Where a connection accepted by a `use_original_dst` listener goes: the listener serving its
 * original destination, or null to keep it (ListenerManager.forOriginalDst).
 */
export type OriginalDstLookup = (local: PeerAddress) => ActiveListener | null;

/** A PeerAddress for a configured TCP address (an unbound listener's, which getsockname never gives). */
function configuredAddress(a: ListenerSpec['address']): PeerAddress | null {
  if (a.kind !== 'tcp') return null;
  return { family: a.host.includes(':') ? 'IPv6' : 'IPv4', address: a.host, port: a.port };
}

/**
 * A connection handed to a filter chain. A class rather than a literal with a `done` closure:
 * its fields are set from the start (one shape), and the listener is a field, not a context.
 */
export class ListenerConnection implements ConnectionContext {
  /** Links in the listener's list of open connections (ConnectionList). */
  prev: ListenerConnection | null = null;
  next: ListenerConnection | null = null;
  /** In the list: done() not yet called. */
  listed = false;
  abort: (() => void) | null = null;
  handover: (() => Handover | null) | null = null;
  drain: (() => void) | null = null;
  authorizeRpc: ConnectionContext['authorizeRpc'] = null;

  constructor(
    private readonly listener: ActiveListener,
    readonly downstream: Downstream,
    readonly bufferLimit: number,
    readonly initialData: Buffer | undefined,
    readonly adopted: boolean,
  ) {}

  done(): void {
    this.listener.connectionDone(this);
  }
}

/**
 * A listener's open connections, linked through the connections themselves. A Set churned by a
 * connection per request reallocated its table every few dozen connections, and the tables
 * ended up in the old generation; a dead table's stale entries are roots for the young
 * collector until the next full GC, so every connection it named, with all it referenced, was
 * copied and promoted (most of what a connection allocated), and the old generation filled in
 * about a second. Links allocate nothing and leave nothing behind. Exported for its unit test.
 */
export class ConnectionList {
  private head: ListenerConnection | null = null;
  size = 0;

  add(c: ListenerConnection): void {
    c.listed = true;
    c.prev = null;
    c.next = this.head;
    if (this.head !== null) this.head.prev = c;
    this.head = c;
    this.size++;
  }

  /** False when `c` was not in the list (a second done()). */
  delete(c: ListenerConnection): boolean {
    if (!c.listed) return false;
    c.listed = false;
    const p = c.prev;
    const n = c.next;
    if (p !== null) p.next = n;
    else this.head = n;
    if (n !== null) n.prev = p;
    c.prev = c.next = null;
    this.size--;
    return true;
  }

  /** A copy: callers close connections while they go through it. */
  toArray(): ListenerConnection[] {
    const out: ListenerConnection[] = [];
    for (let c = this.head; c !== null; c = c.next) out.push(c);
    return out;
  }
}

/** A listener: accepts, selects a filter chain, hands the connection to its terminal filter. */
export class ActiveListener {
  private bound: BoundListener | null = null;
  /** A `bind_to_port: false` listener that is serving (it has no socket to close). */
  private unboundOpen = false;
  private stats: StatsOf<typeof LISTENER_STATS> | null = null;
  private terminals: NetworkFilter[] = [];
  private defaultTerminal: NetworkFilter | null = null;
  /** Every filter object of the installed chains (non-terminal ones included), for drain and retire. */
  private filters: NetworkFilter[] = [];
  private drainAnnounced = false;
  /** TLS termination and ClientHello inspection; null for plaintext listeners (the fast path). */
  private secure: SecureAcceptor | null = null;
  /** `listener.<address>.ssl`, known once bound. */
  private sslScope: Scope | null = null;
  private readonly active = new ConnectionList();
  /** Connections whose PROXY header is still being read. */
  private readonly proxyPending = new Set<net.Socket>();
  private idleWaiters: Array<() => void> = [];
  draining = false;

  constructor(
    public spec: ListenerSpec,
    private readonly rt: RuntimeContext,
    private readonly originalDst: OriginalDstLookup | null = null,
  ) {}

  /** The bound address (an unbound listener's configured one); null once it stops accepting. */
  get address(): PeerAddress | null {
    if (this.bound) return this.bound.address;
    return this.unboundOpen ? configuredAddress(this.spec.address) : null;
  }

  get activeConnections(): number {
    return this.active.size;
  }

  /** Builds the filters of `spec`'s chains and installs them in one step (no await in between). */
  private install(spec: ListenerSpec): void {
    // Built from the terminal filter backwards: each non-terminal filter (local_ratelimit) gets
    // the rest of the chain to hand connections on to.
    const created: NetworkFilter[] = [];
    const terminalOf = (filters: ListenerSpec['chains'][number]['filters']): NetworkFilter =>
      filters.reduceRight<NetworkFilter | undefined>((next, f) => {
        const made = f.factory.create(f.config, this.rt, next);
        created.push(made);
        return made;
      }, undefined)!;
    const terminals = spec.chains.map((c) => terminalOf(c.filters));
    const defaultTerminal = spec.defaultChain ? terminalOf(spec.defaultChain.filters) : null;
    // Certificates load before anything is swapped, so a bad one leaves the old config serving.
    const secure = this.sslScope && SecureAcceptor.needed(spec) ? new SecureAcceptor(spec, terminals, defaultTerminal, this.rt.engine, this.sslScope) : null;
    this.secure?.close(false);
    this.secure = secure;
    // The replaced chains get no new connections: their filters let go of shared resources
    // (rpc_proxy upstream pools) once the connections they already have end.
    for (const f of this.filters) f.retire?.();
    this.filters = created;
    this.spec = spec;
    this.terminals = terminals;
    this.defaultTerminal = defaultTerminal;
  }

  /**
   * A new definition for the same address (LDS update): new connections use it from now on;
   * open ones keep the filter objects they were handed, so they finish on their old config.
   */
  update(spec: ListenerSpec): void {
    this.install(spec);
  }

  /** `inheritFd`: a listening socket handed over by the previous process (hot restart). */
  async start(inheritFd?: number): Promise<void> {
    this.install(this.spec);
    if (this.spec.bindToPort) this.bound = await this.rt.engine.listen(this.spec.address, this.spec.backlog, (d) => this.onConnection(d), inheritFd);
    else this.unboundOpen = true;
    const statName = this.spec.statPrefix || addressStatName(this.address!);
    this.stats = this.rt.stats.scope('listener').scope(statName, 'envoy_listener_address').table(LISTENER_STATS);
    this.sslScope = this.rt.stats.scope('listener').scope(statName, 'envoy_listener_address').scope('ssl');
    if (SecureAcceptor.needed(this.spec)) {
      try {
        this.secure = new SecureAcceptor(this.spec, this.terminals, this.defaultTerminal, this.rt.engine, this.sslScope);
      } catch (err) {
        this.stopAccepting();
        throw err;
      }
    }
  }

  /** The listening socket (hot restart hands it over), or -1 once stopped. */
  get listenFd(): number {
    return this.bound?.fd ?? -1;
  }

  /** A connection handed over by the previous process: runs the filter chain as if accepted here. */
  adopt(d: Downstream, unread: Buffer): void {
    this.onConnection(d, unread.length ? unread : undefined, true);
  }

  /**
   * Detaches every connection that can move now (its filter supports handover and it is between
   * requests) and returns them with their addresses; the rest stay here.
   */
  detachIdle(): Array<{ handover: Handover; remote: PeerAddress; local: PeerAddress }> {
    const out: Array<{ handover: Handover; remote: PeerAddress; local: PeerAddress }> = [];
    for (const ctx of this.active.toArray()) {
      const h = ctx.handover?.();
      if (h) out.push({ handover: h, remote: ctx.downstream.remote, local: ctx.downstream.local });
    }
    return out;
  }

  /**
   * A connection another listener accepted, whose original destination is this listener's
   * address: served as if accepted here (listener filters, chain selection, stats), never
   * handed on again.
   */
  handOff(d: Downstream): void {
    this.onConnection(d, undefined, false, true);
  }

  private onConnection(d: Downstream, initialData?: Buffer, adopted = false, handedOff = false): void {
    // An adopted connection arrives with the address its first process already restored.
    if (this.spec.useOriginalDst && !adopted && !handedOff) {
      restoreOriginalDst(d);
      // As Envoy's hand_off_restored_destination_connections: the listener for the original
      // destination takes it, counted there; none (or this one) means it stays here.
      const to = this.originalDst?.(d.local);
      if (to && to !== this) {
        to.handOff(d);
        return;
      }
    }
    const stats = this.stats!;
    // A handed-over connection was counted by the process that accepted it (counters carry over).
    if (!adopted) stats.downstream_cx_total.value++;
    if (this.spec.proxyProtocol && !adopted) {
      this.acceptProxied(d);
      return;
    }
    // Handed-over connections never carry TLS (its state cannot move between processes).
    if (this.secure && !adopted) {
      this.secure.accept(
        d,
        (sd, filter) => this.dispatch(sd, filter),
        () => stats.downstream_cx_destroy.value++,
      );
      return;
    }
    const i = this.spec.chooseChain(d.local, d.remote);
    this.dispatch(d, i >= 0 ? this.terminals[i]! : this.defaultTerminal, initialData, adopted);
  }

  /**
   * The proxy_protocol listener filter: the header's addresses become the connection's, then
   * the chain is chosen as usual. The connection goes through a Node stream from here on (its
   * first bytes were read in JS), as TLS-inspected ones do.
   */
  private acceptProxied(d: Downstream): void {
    const spec = this.spec;
    const stats = this.stats!;
    const sock = this.rt.engine.stream(d);
    sock.pause();
    // Half-close travels end to end (tcp_proxy), as on the node engine's accepted sockets.
    sock.allowHalfOpen = true;
    this.proxyPending.add(sock);
    readProxyHeader(sock, spec.proxyProtocol!, spec.listenerFiltersTimeoutMs, (r) => {
      this.proxyPending.delete(sock);
      if (!r.ok) {
        stats.downstream_cx_proxy_proto_error.value++;
        stats.downstream_cx_destroy.value++;
        log.debug({ listener: spec.name, reason: r.message }, 'proxy_protocol: connection closed');
        sock.destroy();
        return;
      }
      const sd = new StreamDownstream(sock, r.addresses?.remote ?? d.remote, r.addresses?.local ?? d.local, null);
      const i = this.spec.chooseChain(sd.local, sd.remote, undefined, d.remote);
      this.dispatch(sd, i >= 0 ? this.terminals[i]! : this.defaultTerminal);
    });
  }

  private dispatch(d: Downstream, filter: NetworkFilter | null, initialData?: Buffer, adopted = false): void {
    const stats = this.stats!;
    if (!filter) {
      stats.no_filter_chain_match.value++;
      stats.downstream_cx_destroy.value++;
      d.close();
      return;
    }
    stats.downstream_cx_active.value++;
    const ctx = new ListenerConnection(this, d, this.spec.bufferLimit, initialData, adopted);
    this.active.add(ctx);
    filter.onNewConnection(ctx);
  }

  /** @internal `ctx` ended (ListenerConnection.done); a second call does nothing. */
  connectionDone(ctx: ListenerConnection): void {
    if (!this.active.delete(ctx)) return;
    const stats = this.stats!;
    stats.downstream_cx_active.value--;
    stats.downstream_cx_destroy.value++;
    if (this.active.size === 0) this.notifyIdle();
  }

  /** Stop accepting; open connections carry on until they end or are aborted. */
  stopAccepting(keepPath = false): void {
    if (!this.bound && !this.unboundOpen) return;
    this.unboundOpen = false;
    this.secure?.close(true);
    for (const s of this.proxyPending) s.destroy();
    this.proxyPending.clear();
    this.bound?.close(keepPath);
    this.bound = null;
    this.draining = true;
  }

  /**
   * Drain started (LDS removal, shutdown): filters tell their peers to go elsewhere where the
   * protocol has a way to (Dubbo READONLY, HTTP/2 GOAWAY). Not called for hot restart, where
   * connections move (see drainConnections for those that cannot).
   */
  announceDrain(): void {
    if (this.drainAnnounced) return;
    this.drainAnnounced = true;
    for (const f of this.filters) f.announceDrain?.();
    this.drainConnections();
  }

  /**
   * Asks every connection whose protocol has a way to (HTTP/2 GOAWAY) to send new requests
   * elsewhere; each ends once its open streams are done. `unmovableOnly`: a hot restart, where
   * connections that can move (those with a handover) move instead, and only the others are
   * asked, so their clients reconnect to the new process.
   */
  drainConnections(unmovableOnly = false): void {
    for (const ctx of this.active.toArray()) if (!(unmovableOnly && ctx.handover)) ctx.drain?.();
  }

  /** The listener is gone for good: its filters release what they share (upstream pools). */
  retireFilters(): void {
    const fs = this.filters;
    this.filters = [];
    for (const f of fs) f.retire?.();
  }

  /** Resolves once no connection is open. */
  whenIdle(): Promise<void> {
    if (this.active.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private notifyIdle(): void {
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const f of w) f();
  }

  /** Cut every open connection short (drain time ran out, or shutdown). */
  abortAll(): void {
    const n = this.active.size;
    for (const c of this.active.toArray()) {
      if (c.abort) c.abort();
      else c.done();
    }
    if (n) log.info({ listener: this.spec.name, connections: n }, 'closed connections still open after drain');
  }
}
