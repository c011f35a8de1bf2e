import type { FieldError } from '../../errors.js';
import type { Downstream, IoEngine } from '../../io/engine.js';
import type { Scope } from '../../observability/stats.js';
import type { ClusterManager } from '../../upstream/cluster_manager.js';

/** What a factory may use when it turns config into a filter. */
export interface FactoryContext {
  /** Validation only: the names of every configured cluster. */
  readonly clusterNames: ReadonlySet<string>;
  readonly errors: FieldError[];
  readonly warnings: FieldError[];
  /** `static_resources.secrets` by name, for transport sockets that reference them (SDS). */
  readonly secrets?: import('../../tls/context.js').SecretTable;
  /** Set by the xDS side: the shared route table an HCM's `rds.route_config_name` subscribes to. */
  readonly rds?: (routeConfigName: string) => import('./http_connection_manager/rds.js').RouteLookup;
}

/** What a filter may use at run time. */
export interface RuntimeContext {
  readonly engine: IoEngine;
  readonly clusters: ClusterManager;
  readonly stats: Scope;
}

/**
 * One accepted connection as a filter chain sees it. The terminal filter owns it: it must call
 * `done()` exactly once when the connection is over, and sets `abort` so the listener can cut
 * the connection short (drain timeout, shutdown).
 */
export interface ConnectionContext {
  readonly downstream: Downstream;
  /** The listener's per_connection_buffer_limit_bytes: the most a filter buffers per direction. */
  readonly bufferLimit: number;
  abort: (() => void) | null;
  done(): void;
  /** Bytes a previous process read from this connection but did not use (hot restart). */
  readonly initialData?: Buffer;
  /** Handed over by a previous process (hot restart): it already counted the connection. */
  readonly adopted?: boolean;
  /**
   * Set by filters whose connections can move to a new process (hot restart) at a request
   * boundary: detaches the connection and returns its socket and unread bytes, or null while
   * it is mid-request. The filter no longer owns the connection after a non-null return.
   */
  handover?: (() => Handover | null) | null;
  /**
   * Set by filters whose protocol can tell the peer to take new requests elsewhere (HTTP/2
   * GOAWAY): called when the process drains or hands over to a new one (an HTTP/2 connection's
   * stream and HPACK state cannot move). The connection then ends once its open streams are done.
   */
  drain?: (() => void) | null;
  /**
   * Set by a network RBAC filter whose rules read RPC call metadata: rpc_proxy asks it about
   * every call and closes the connection on false (Envoy's continuous enforcement).
   */
  authorizeRpc?: ((call: import('../../router/rpc_route_table.js').RpcRequestView) => boolean) | null;
}

/** A connection leaving this process: a duplicate of its socket fd and what was read but unused. */
export interface Handover {
  readonly fd: number;
  readonly unread: Buffer;
}

/** A configured filter: immutable, shared by every connection of its chain. */
export interface NetworkFilter {
  /** Takes the connection. Terminal filters (tcp_proxy) own it from here on. */
  onNewConnection(conn: ConnectionContext): void;
  /**
   * Optional: the listener started draining (LDS removal or shutdown, not hot restart): tell
   * open connections' peers to go elsewhere where the protocol can say so (Dubbo READONLY).
   */
  announceDrain?(): void;
  /**
   * Optional: the listener no longer hands this filter connections (removed, drained, or its
   * chains replaced): release shared resources once the connections it has are gone.
   */
  retire?(): void;
}

/**
 * A network filter factory, registered by its Envoy name and the type URLs it accepts.
 * `parse` validates typed_config into a frozen config (pushing FieldErrors with paths);
 * `create` binds that config to run-time services. Nothing on the data path re-reads config.
 */
export interface NetworkFilterFactory<Config = unknown> {
  readonly name: string;
  readonly typeUrls: readonly string[];
  readonly terminal: boolean;
  parse(typedConfig: Record<string, unknown>, path: string, ctx: FactoryContext): Config | null;
  /** `next`: for non-terminal filters, the rest of the chain, to hand the connection on to. */
  create(config: Config, rt: RuntimeContext, next?: NetworkFilter): NetworkFilter;
  /**
   * Optional: checks that need the whole chain (what follows this filter). Called once per
   * chain that holds the filter, after every filter parsed; `path` is the chain's `filters`.
   */
  checkChain?(filters: readonly import('../../listener/listener_config.js').FilterSpec[], path: string): FieldError[];
}
