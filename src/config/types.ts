/**
 * The normalized form of Envoy v3 messages (see proto-json.ts): plain JSON with the proto's
 * snake_case field names. Only the parts the server reads are spelled out; everything else
 * stays reachable through the index signature.
 */

export type Duration = string; // canonical proto3 JSON, e.g. "1.500s"; read with durationMs()

export interface Any {
  '@type': string;
  [field: string]: unknown;
}

export interface SocketAddress {
  address?: string;
  port_value?: number;
  protocol?: 'TCP' | 'UDP';
  named_port?: string;
  ipv4_compat?: boolean;
}

export interface Address {
  socket_address?: SocketAddress;
  pipe?: { path?: string; mode?: number };
  envoy_internal_address?: unknown;
}

export interface Bootstrap {
  node?: { id?: string; cluster?: string; metadata?: Record<string, unknown> };
  static_resources?: { listeners?: Listener[]; clusters?: Cluster[]; secrets?: unknown[] };
  dynamic_resources?: unknown;
  admin?: { address?: Address; access_log_path?: string };
  [field: string]: unknown;
}

export interface Listener {
  name?: string;
  address?: Address;
  stat_prefix?: string;
  filter_chains?: FilterChain[];
  default_filter_chain?: FilterChain;
  per_connection_buffer_limit_bytes?: number;
  [field: string]: unknown;
}

export interface FilterChain {
  name?: string;
  filter_chain_match?: Record<string, unknown>;
  filters?: Array<{ name?: string; typed_config?: Any }>;
  transport_socket?: unknown;
}

export interface Cluster {
  name?: string;
  type?: string;
  connect_timeout?: Duration;
  lb_policy?: string;
  load_assignment?: {
    cluster_name?: string;
    endpoints?: Array<{
      priority?: number;
      load_balancing_weight?: number;
      lb_endpoints?: Array<{ endpoint?: { address?: Address; hostname?: string }; load_balancing_weight?: number; health_status?: string }>;
    }>;
  };
  [field: string]: unknown;
}
