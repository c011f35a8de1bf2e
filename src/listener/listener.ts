import type { ConnectionContext, NetworkFilter, RuntimeContext } from '../filters/network/types.js';
import type { BoundListener, Downstream, PeerAddress } from '../io/engine.js';
import { log } from '../log.js';
import type { StatsOf } from '../observability/stats.js';
import { selectChain, type ChainMatcher } from './filter_chain_match.js';
import type { ListenerSpec } from './listener_config.js';
import { LISTENER_STATS } from './stats.js';

/** Envoy's stat name for an address: `127.0.0.1_10000`, `[__1]_80` (colons become `_`), or the pipe path. */
export function addressStatName(a: PeerAddress): string {
  if (a.family === 'unix') return a.address;
  return `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`.replaceAll(':', '_');
}

/** A bound listener: accepts, selects a filter chain, hands the connection to its terminal filter. */
export class ActiveListener {
  private bound: BoundListener | null = null;
  private stats: StatsOf<typeof LISTENER_STATS> | null = null;
  private terminals: NetworkFilter[] = [];
  private matchers: ChainMatcher[] = [];
  private defaultTerminal: NetworkFilter | null = null;
  private readonly active = new Set<ConnectionContext>();
  private idleWaiters: Array<() => void> = [];
  draining = false;

  constructor(
    readonly spec: ListenerSpec,
    private readonly rt: RuntimeContext,
  ) {}

  get address(): PeerAddress | null {
    return this.bound?.address ?? null;
  }

  get activeConnections(): number {
    return this.active.size;
  }

  async start(): Promise<void> {
    const terminalOf = (filters: ListenerSpec['chains'][number]['filters']): NetworkFilter => {
      const f = filters[filters.length - 1]!;
      return f.factory.create(f.config, this.rt);
    };
    this.terminals = this.spec.chains.map((c) => terminalOf(c.filters));
    this.matchers = this.spec.chains.map((c) => c.matcher);
    this.defaultTerminal = this.spec.defaultChain ? terminalOf(this.spec.defaultChain.filters) : null;
    this.bound = await this.rt.engine.listen(this.spec.address, this.spec.backlog, (d) => this.onConnection(d));
    const statName = this.spec.statPrefix || addressStatName(this.bound.address);
    this.stats = this.rt.stats.scope('listener').scope(statName, 'envoy_listener_address').table(LISTENER_STATS);
  }

  private onConnection(d: Downstream): void {
    const stats = this.stats!;
    stats.downstream_cx_total.value++;
    const i = selectChain(this.matchers, d.local, d.remote);
    const filter = i >= 0 ? this.terminals[i]! : this.defaultTerminal;
    if (!filter) {
      stats.no_filter_chain_match.value++;
      stats.downstream_cx_destroy.value++;
      d.close();
      return;
    }
    stats.downstream_cx_active.value++;
    const ctx: ConnectionContext = {
      downstream: d,
      bufferLimit: this.spec.bufferLimit,
      abort: null,
      done: () => {
        if (!this.active.delete(ctx)) return;
        stats.downstream_cx_active.value--;
        stats.downstream_cx_destroy.value++;
        if (this.active.size === 0) this.notifyIdle();
      },
    };
    this.active.add(ctx);
    filter.onNewConnection(ctx);
  }

  /** Stop accepting; open connections carry on until they end or are aborted. */
  stopAccepting(): void {
    if (!this.bound) return;
    this.bound.close();
    this.bound = null;
    this.draining = true;
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
    for (const c of [...this.active]) {
      if (c.abort) c.abort();
      else c.done();
    }
    if (n) log.info({ listener: this.spec.name, connections: n }, 'closed connections still open after drain');
  }
}
