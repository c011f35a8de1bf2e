import type { Scope } from '../../../observability/stats.js';
import type { FrameKind, LocalReplyKind } from '../../../protocols/types.js';
import type { RpcRoute } from '../../../router/rpc_route_table.js';
import type { MetadataMatch } from '../../../upstream/subset/metadata_match.js';

/**
 * What a protocol's own filter config adds to the RPC engine (thrift_proxy: Envoy's Thrift
 * stats, payload_to_metadata, strip_service_name). rpc_proxy and dubbo_proxy have none, and
 * their calls pay one null check per hook site for it.
 */
export interface RpcExtension {
  /** A request frame (call or one-way) arrived, before routing. */
  onRequest(kind: FrameKind): void;
  /** No route matched the request just counted. */
  onNoRoute(): void;
  /** A connection made its last call allowed by max_requests_per_connection. */
  onMaxRequests(): void;
  /**
   * The subset criteria of one call: the route's `metadata_match`, merged with what the request
   * itself says (e.g. read from its payload); null = any endpoint.
   */
  callMetadata(route: RpcRoute, buf: Buffer, off: number, hdr: Int32Array): MetadataMatch | null;
  /** The frame to send upstream instead of the client's (a rewritten copy), or null to send it as is. */
  rewrite(route: RpcRoute, buf: Buffer, off: number, hdr: Int32Array): Buffer | null;
  /** An upstream response is being relayed to the client. */
  onResponse(buf: Buffer, off: number, hdr: Int32Array): void;
  /**
   * The proxy answered a call itself; `cause`: `no_host` when the balancer had no host to give,
   * `no_cluster` when the route's cluster does not exist (a cluster named by the request).
   */
  onLocalReply(kind: LocalReplyKind, cause: 'no_host' | 'no_cluster' | null): void;
}

/** Built once per configured filter, with the filter's own stats scope. */
export type RpcExtensionFactory = (scope: Scope) => RpcExtension;
