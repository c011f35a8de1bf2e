import type { PeerAddress } from '../../io/engine.js';
import type { ConnectionTlsInfo } from '../../io/stream_conn.js';
import type { MetadataValue } from '../../filters/http/types.js';

/** The RPC facts of one call, for `%RPC_*%` operators. */
export interface RpcLogInfo {
  readonly protocol: string;
  readonly iface: string;
  readonly method: string;
  readonly version: string;
  /** The caller's own request id (before the proxy renumbered it upstream), as decimal text. */
  readonly requestId: string;
}

/**
 * One access log record: a connection (tcp_proxy), a request (HTTP) or a call (RPC). Filters
 * fill only what they know; everything else stays null and prints as `-`. Built only when the
 * filter has an access log, so unused logging costs nothing.
 */
export interface AccessLogEntry {
  /** ms since the epoch. */
  startTime: number;
  durationMs: number;
  bytesReceived: number;
  bytesSent: number;
  downstreamRemote: PeerAddress | null;
  downstreamLocal: PeerAddress | null;
  /** `10.0.0.1:80` (Host.label). */
  upstreamHost: string | null;
  upstreamCluster: string | null;
  /** Envoy's short flags joined with ',' (`UF,URX`), '' for none. */
  responseFlags: string;
  /** HTTP status, or the RPC protocol's status; null for L4. */
  responseCode: number | null;
  responseCodeDetails: string | null;
  /** `HTTP/1.1`, `HTTP/2`, or the RPC codec name. */
  protocol: string | null;
  tls: ConnectionTlsInfo | null;
  /** Request header by lower-case name (HTTP pseudo-headers `:method`, `:path`, `:authority` too). */
  requestHeader: ((name: string) => string | undefined) | null;
  responseHeader: ((name: string) => string | undefined) | null;
  rpc: RpcLogInfo | null;
  /** The body of a reply the proxy made itself, for `%LOCAL_REPLY_BODY%` in local_reply_config formats. */
  localReplyBody: string | null;
  /** The HTTP filters' dynamic metadata (namespace → key → value), for `%DYNAMIC_METADATA%`. */
  dynamicMetadata: ReadonlyMap<string, ReadonlyMap<string, MetadataValue>> | null;
}

/** An entry with every field empty, for a filter to fill in. */
export function newEntry(startTime: number): AccessLogEntry {
  return {
    startTime,
    durationMs: 0,
    bytesReceived: 0,
    bytesSent: 0,
    downstreamRemote: null,
    downstreamLocal: null,
    upstreamHost: null,
    upstreamCluster: null,
    responseFlags: '',
    responseCode: null,
    responseCodeDetails: null,
    protocol: null,
    tls: null,
    requestHeader: null,
    responseHeader: null,
    rpc: null,
    localReplyBody: null,
    dynamicMetadata: null,
  };
}
