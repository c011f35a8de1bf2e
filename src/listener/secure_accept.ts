import type net from 'node:net';
import type { NetworkFilter } from '../filters/network/types.js';
import type { Downstream, IoEngine } from '../io/engine.js';
import { StreamDownstream } from '../io/stream_conn.js';
import type { Scope, StatsOf } from '../observability/stats.js';
import { inspectTls, RAW_BUFFER, terminateTls, type InspectResult } from '../tls/downstream.js';
import { TlsContextProvider } from '../tls/provider.js';
import { SSL_STATS } from '../tls/stats.js';
import type { FilterChainSpec, ListenerSpec } from './listener_config.js';

/** A chain as a connection is dispatched to it: its terminal filter and, for TLS, its live context. */
interface Chain {
  readonly spec: FilterChainSpec;
  readonly filter: NetworkFilter;
  readonly provider: TlsContextProvider | null;
}

/**
 * The accept path of a listener that reads the ClientHello before choosing a filter chain
 * (tls_inspector) or terminates TLS on some chain. Connections go through Node streams from
 * here on: TLS lives in Node's stack, and a peeked-at connection has its first bytes in JS.
 * Plaintext listeners never come here and keep the engine's native data path.
 *
 * One instance per listener configuration: an LDS update builds a new one, and connections
 * still handshaking finish against the configuration they started with.
 */
export class SecureAcceptor {
  private readonly chains: Chain[];
  private readonly defaultChain: Chain | null;
  private readonly pending = new Set<net.Socket>();
  readonly stats: StatsOf<typeof SSL_STATS>;

  /** Loads every chain's certificates now (throws MaterialError when one cannot be used). */
  constructor(
    private readonly spec: ListenerSpec,
    terminals: readonly NetworkFilter[],
    defaultTerminal: NetworkFilter | null,
    private readonly engine: IoEngine,
    sslScope: Scope,
  ) {
    this.stats = sslScope.table(SSL_STATS);
    const providers: TlsContextProvider[] = [];
    const chain = (c: FilterChainSpec, filter: NetworkFilter): Chain => {
      const provider = c.tls ? new TlsContextProvider(c.tls, this.stats) : null;
      if (provider) providers.push(provider);
      return { spec: c, filter, provider };
    };
    try {
      this.chains = spec.chains.map((c, i) => chain(c, terminals[i]!));
      this.defaultChain = spec.defaultChain && defaultTerminal ? chain(spec.defaultChain, defaultTerminal) : null;
    } catch (err) {
      for (const p of providers) p.close();
      throw err;
    }
    for (const p of providers) p.watch();
  }

  /** Whether a listener configuration needs this path at all. */
  static needed(spec: ListenerSpec): boolean {
    return spec.inspectTls || spec.chains.some((c) => c.tls) || spec.defaultChain?.tls != null;
  }

  /**
   * Inspects (when configured), selects the chain, terminates TLS when the chain says so, and
   * hands the connection over as a StreamDownstream. `dispatch(d, null)` means no chain
   * matched; a connection that fails inspection or its handshake is closed here and
   * reported with `dispatch` never called but `dropped` called once.
   */
  accept(d: Downstream, dispatch: (d: Downstream, filter: NetworkFilter | null) => void, dropped: () => void): void {
    const sock = this.engine.stream(d);
    sock.pause();
    // Half-close travels end to end (tcp_proxy), as on the node engine's accepted sockets.
    sock.allowHalfOpen = true;
    this.pending.add(sock);
    const settle = () => this.pending.delete(sock);
    const select = (facts: InspectResult) => {
      const i = this.spec.chooseChain(d.local, d.remote, facts);
      const chain = i >= 0 ? this.chains[i]! : this.defaultChain;
      if (!chain) {
        settle();
        dispatch(new StreamDownstream(sock, d.remote, d.local, null), null);
        return;
      }
      if (!chain.provider) {
        settle();
        dispatch(new StreamDownstream(sock, d.remote, d.local, null), chain.filter);
        return;
      }
      terminateTls(sock, chain.provider, this.stats, facts.sni, chain.spec.handshakeTimeoutMs, (secure, info) => {
        settle();
        if (!secure) {
          dropped();
          return;
        }
        dispatch(new StreamDownstream(secure, d.remote, d.local, info), chain.filter);
      });
    };
    if (!this.spec.inspectTls) {
      select(RAW_BUFFER);
      return;
    }
    inspectTls(sock, this.spec.listenerFiltersTimeoutMs, this.spec.inspectHttp, (facts, timedOut) => {
      if (facts) select(facts);
      else if (timedOut && this.spec.continueOnListenerFiltersTimeout) select(RAW_BUFFER);
      else {
        settle();
        sock.destroy();
        dropped();
      }
    });
  }

  /**
   * Stops watching certificate files. `abortPending` also cuts connections still in inspection
   * or handshake (shutdown); without it (a configuration update) they finish on this one.
   */
  close(abortPending: boolean): void {
    for (const c of [...this.chains, ...(this.defaultChain ? [this.defaultChain] : [])]) c.provider?.close();
    if (!abortPending) return;
    for (const s of [...this.pending]) s.destroy();
    this.pending.clear();
  }
}
