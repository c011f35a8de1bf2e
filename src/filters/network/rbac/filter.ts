import { DenialLog, evaluate, type RbacStats } from '../../../rbac/engine.js';
import type { RbacFacts } from '../../../rbac/matchers.js';
import type { RpcRequestView } from '../../../router/rpc_route_table.js';
import type { ConnectionContext, NetworkFilter, RuntimeContext } from '../types.js';
import type { NetworkRbacConfig } from './config.js';
import { joinStatPrefix, networkRbacStats } from './stats.js';

/**
 * Envoy's network RBAC filter, in front of the rest of the chain: a refused connection is
 * closed before the next filter sees it. Rules reading RPC call metadata
 * are instead asked about every call (rpc_proxy consults `conn.authorizeRpc`).
 */
export class NetworkRbacFilter implements NetworkFilter {
  readonly stats: RbacStats;
  private readonly denials = new DenialLog('envoy.filters.network.rbac');

  constructor(
    private readonly config: NetworkRbacConfig,
    rt: RuntimeContext,
    private readonly next: NetworkFilter,
  ) {
    this.stats = networkRbacStats(rt.stats.scope(joinStatPrefix(config.statPrefix)), config);
  }

  onNewConnection(conn: ConnectionContext): void {
    if (this.config.usesRpc) {
      const facts: { downstream: ConnectionContext['downstream']; rpc: RpcRequestView | null; identity?: RbacFacts['identity'] } = { downstream: conn.downstream, rpc: null };
      conn.authorizeRpc = (call) => {
        facts.rpc = call;
        const ok = evaluate(this.config, this.stats, this.denials, facts).allowed;
        facts.rpc = null;
        return ok;
      };
      this.next.onNewConnection(conn);
      return;
    }
    // A connection handed over in a hot restart was judged by the process that accepted it.
    if (!conn.adopted && !evaluate(this.config, this.stats, this.denials, { downstream: conn.downstream }).allowed) {
      conn.downstream.close();
      conn.done();
      return;
    }
    this.next.onNewConnection(conn);
  }
}
