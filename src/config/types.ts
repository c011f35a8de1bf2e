/**
 * The normalized form of the Envoy v3 messages the server reads (see proto-json.ts for the
 * rules): plain JSON with the proto's snake_case field names, every field optional as in proto3
 * (unset, null and empty lists/maps are absent). Only the parts the server consumes are spelled
 * out; each interface names its proto message with `@proto` (test/unit/config/types.test.ts
 * checks every property against it) and keeps the rest reachable through an index signature.
 *
 * Value forms:
 * - Duration: the canonical proto3 JSON string ("5s", "0.250s", "-1.500s"); read it with
 *   `durationMs()` from values.ts.
 * - 64-bit integers: numbers, or decimal strings beyond 2^53 (`Int64`).
 * - Enums: the declared names (upper case), whatever case the file used. An undeclared number
 *   of an open enum without `defined_only` would stay a number (decoding warns about it).
 * - Wrappers (UInt32Value, BoolValue, …): the plain value.
 * - Any: `{'@type': url, ...fields of that type}`, or `{}` for an empty Any.
 */

export type Duration = string;
export type Int64 = number | string;
export type Struct = Record<string, unknown>;

/** google.protobuf.Any: the type URL and that message's fields. */
export interface Any {
  '@type': string;
  [field: string]: unknown;
}

/** @proto envoy.config.core.v3.Metadata */
export interface Metadata {
  filter_metadata?: Record<string, Struct>;
  typed_filter_metadata?: Record<string, Any>;
}

/** @proto envoy.config.core.v3.Node */
export interface Node {
  id?: string;
  cluster?: string;
  metadata?: Struct;
  locality?: Locality;
  user_agent_name?: string;
  [field: string]: unknown;
}

/** @proto envoy.config.core.v3.Locality */
export interface Locality {
  region?: string;
  zone?: string;
  sub_zone?: string;
}

// ---------------------------------------------------------------- addresses

/** @proto envoy.config.core.v3.SocketAddress */
export interface SocketAddress {
  protocol?: 'TCP' | 'UDP';
  address?: string;
  port_value?: number;
  named_port?: string;
  resolver_name?: string;
  ipv4_compat?: boolean;
}

/** @proto envoy.config.core.v3.Pipe */
export interface Pipe {
  path?: string;
  /** File mode bits of the socket, e.g. 0o644 given as 420. */
  mode?: number;
}

/** @proto envoy.config.core.v3.EnvoyInternalAddress */
export interface EnvoyInternalAddress {
  server_listener_name?: string;
  endpoint_id?: string;
}

/** @proto envoy.config.core.v3.Address — exactly one member is set (oneof `address`). */
export interface Address {
  socket_address?: SocketAddress;
  pipe?: Pipe;
  envoy_internal_address?: EnvoyInternalAddress;
}

/** @proto envoy.config.core.v3.TypedExtensionConfig */
export interface TypedExtensionConfig {
  name?: string;
  typed_config?: Any;
}

// ---------------------------------------------------------------- bootstrap

/** @proto envoy.config.bootstrap.v3.Bootstrap */
export interface Bootstrap {
  node?: Node;
  static_resources?: StaticResources;
  dynamic_resources?: DynamicResources;
  cluster_manager?: Record<string, unknown>;
  admin?: Admin;
  layered_runtime?: unknown;
  overload_manager?: unknown;
  stats_sinks?: unknown[];
  stats_config?: unknown;
  bootstrap_extensions?: TypedExtensionConfig[];
  [field: string]: unknown;
}

/** @proto envoy.config.bootstrap.v3.Bootstrap.StaticResources */
export interface StaticResources {
  listeners?: Listener[];
  clusters?: Cluster[];
  secrets?: unknown[];
}

/** @proto envoy.config.bootstrap.v3.Bootstrap.DynamicResources */
export interface DynamicResources {
  lds_config?: ConfigSource;
  lds_resources_locator?: string;
  cds_config?: ConfigSource;
  cds_resources_locator?: string;
  ads_config?: ApiConfigSource;
}

/** @proto envoy.config.core.v3.ConfigSource */
export interface ConfigSource {
  authorities?: unknown[];
  /** Deprecated filesystem path (envoy-dynamic-filesystem-demo.yaml uses it). */
  path?: string;
  path_config_source?: { path?: string; watched_directory?: { path?: string } };
  api_config_source?: ApiConfigSource;
  ads?: Record<string, never>;
  self?: unknown;
  initial_fetch_timeout?: Duration;
  resource_api_version?: 'AUTO' | 'V2' | 'V3';
}

/** @proto envoy.config.core.v3.ApiConfigSource */
export interface ApiConfigSource {
  api_type?: 'DEPRECATED_AND_UNAVAILABLE_DO_NOT_USE' | 'REST' | 'GRPC' | 'DELTA_GRPC' | 'AGGREGATED_GRPC' | 'AGGREGATED_DELTA_GRPC';
  transport_api_version?: 'AUTO' | 'V2' | 'V3';
  cluster_names?: string[];
  grpc_services?: GrpcService[];
  refresh_delay?: Duration;
  request_timeout?: Duration;
  set_node_on_first_message_only?: boolean;
  [field: string]: unknown;
}

/** @proto envoy.config.core.v3.GrpcService */
export interface GrpcService {
  envoy_grpc?: { cluster_name?: string; authority?: string };
  google_grpc?: Record<string, unknown>;
  timeout?: Duration;
  initial_metadata?: Array<{ key?: string; value?: string; raw_value?: string }>;
  [field: string]: unknown;
}

/** @proto envoy.config.bootstrap.v3.Admin */
export interface Admin {
  access_log?: AccessLog[];
  /** Deprecated; use access_log. */
  access_log_path?: string;
  profile_path?: string;
  address?: Address;
  socket_options?: unknown[];
  ignore_global_conn_limit?: boolean;
}

/** @proto envoy.config.accesslog.v3.AccessLog */
export interface AccessLog {
  name?: string;
  filter?: unknown;
  typed_config?: Any;
}

// ---------------------------------------------------------------- listeners

/** @proto envoy.config.listener.v3.Listener */
export interface Listener {
  name?: string;
  address?: Address;
  additional_addresses?: Array<{ address?: Address }>;
  stat_prefix?: string;
  filter_chains?: FilterChain[];
  default_filter_chain?: FilterChain;
  use_original_dst?: boolean;
  per_connection_buffer_limit_bytes?: number;
  metadata?: Metadata;
  drain_type?: 'DEFAULT' | 'MODIFY_ONLY';
  listener_filters?: ListenerFilter[];
  listener_filters_timeout?: Duration;
  continue_on_listener_filters_timeout?: boolean;
  transparent?: boolean;
  freebind?: boolean;
  socket_options?: unknown[];
  tcp_fast_open_queue_length?: number;
  traffic_direction?: 'UNSPECIFIED' | 'INBOUND' | 'OUTBOUND';
  enable_reuse_port?: boolean;
  access_log?: AccessLog[];
  bind_to_port?: boolean;
  internal_listener?: Record<string, unknown>;
  connection_balance_config?: unknown;
  ignore_global_conn_limit?: boolean;
  [field: string]: unknown;
}

/** @proto envoy.config.listener.v3.ListenerFilter */
export interface ListenerFilter {
  name?: string;
  typed_config?: Any;
  config_discovery?: unknown;
  filter_disabled?: unknown;
}

/** @proto envoy.config.listener.v3.FilterChain */
export interface FilterChain {
  filter_chain_match?: FilterChainMatch;
  filters?: Filter[];
  metadata?: Metadata;
  transport_socket?: TransportSocket;
  transport_socket_connect_timeout?: Duration;
  name?: string;
}

/** @proto envoy.config.listener.v3.FilterChainMatch */
export interface FilterChainMatch {
  destination_port?: number;
  prefix_ranges?: CidrRange[];
  address_suffix?: string;
  suffix_len?: number;
  direct_source_prefix_ranges?: CidrRange[];
  source_type?: 'ANY' | 'SAME_IP_OR_LOOPBACK' | 'EXTERNAL';
  source_prefix_ranges?: CidrRange[];
  source_ports?: number[];
  server_names?: string[];
  transport_protocol?: string;
  application_protocols?: string[];
}

/** @proto envoy.config.core.v3.CidrRange */
export interface CidrRange {
  address_prefix?: string;
  prefix_len?: number;
}

/** @proto envoy.config.listener.v3.Filter */
export interface Filter {
  name?: string;
  typed_config?: Any;
  config_discovery?: unknown;
}

/** @proto envoy.config.core.v3.TransportSocket */
export interface TransportSocket {
  name?: string;
  typed_config?: Any;
}

// ---------------------------------------------------------------- clusters

export type DiscoveryType = 'STATIC' | 'STRICT_DNS' | 'LOGICAL_DNS' | 'EDS' | 'ORIGINAL_DST';
export type LbPolicy = 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RING_HASH' | 'RANDOM' | 'MAGLEV' | 'CLUSTER_PROVIDED' | 'LOAD_BALANCING_POLICY_CONFIG';
export type HealthStatus = 'UNKNOWN' | 'HEALTHY' | 'UNHEALTHY' | 'DRAINING' | 'TIMEOUT' | 'DEGRADED';
export type RoutingPriority = 'DEFAULT' | 'HIGH';

/** @proto envoy.config.cluster.v3.Cluster */
export interface Cluster {
  name?: string;
  alt_stat_name?: string;
  type?: DiscoveryType;
  cluster_type?: { name?: string; typed_config?: Any };
  eds_cluster_config?: { eds_config?: ConfigSource; service_name?: string };
  connect_timeout?: Duration;
  per_connection_buffer_limit_bytes?: number;
  lb_policy?: LbPolicy;
  load_assignment?: ClusterLoadAssignment;
  health_checks?: HealthCheck[];
  max_requests_per_connection?: number;
  circuit_breakers?: CircuitBreakers;
  upstream_http_protocol_options?: unknown;
  common_http_protocol_options?: unknown;
  http_protocol_options?: unknown;
  /** Deprecated in favour of typed_extension_protocol_options; still read (front-envoy.yaml uses it). */
  http2_protocol_options?: Record<string, unknown>;
  /** Keyed by extension name, e.g. `envoy.extensions.upstreams.http.v3.HttpProtocolOptions`. */
  typed_extension_protocol_options?: Record<string, Any>;
  dns_refresh_rate?: Duration;
  dns_failure_refresh_rate?: { base_interval?: Duration; max_interval?: Duration };
  respect_dns_ttl?: boolean;
  dns_lookup_family?: 'AUTO' | 'V4_ONLY' | 'V6_ONLY' | 'V4_PREFERRED' | 'ALL';
  dns_resolvers?: Address[];
  outlier_detection?: OutlierDetection;
  cleanup_interval?: Duration;
  upstream_bind_config?: unknown;
  lb_subset_config?: unknown;
  ring_hash_lb_config?: { minimum_ring_size?: Int64; hash_function?: 'XX_HASH' | 'MURMUR_HASH_2'; maximum_ring_size?: Int64 };
  maglev_lb_config?: { table_size?: Int64 };
  original_dst_lb_config?: { use_http_header?: boolean; http_header_name?: string; upstream_port_override?: number };
  least_request_lb_config?: { choice_count?: number; active_request_bias?: unknown; slow_start_config?: unknown };
  common_lb_config?: Record<string, unknown>;
  transport_socket?: TransportSocket;
  metadata?: Metadata;
  protocol_selection?: 'USE_CONFIGURED_PROTOCOL' | 'USE_DOWNSTREAM_PROTOCOL';
  upstream_connection_options?: unknown;
  close_connections_on_host_health_failure?: boolean;
  ignore_health_on_host_removal?: boolean;
  load_balancing_policy?: unknown;
  track_cluster_stats?: unknown;
  [field: string]: unknown;
}

/** @proto envoy.config.endpoint.v3.ClusterLoadAssignment */
export interface ClusterLoadAssignment {
  cluster_name?: string;
  endpoints?: LocalityLbEndpoints[];
  named_endpoints?: Record<string, Endpoint>;
  policy?: { drop_overloads?: unknown[]; overprovisioning_factor?: number; endpoint_stale_after?: Duration; weighted_priority_health?: boolean };
}

/** @proto envoy.config.endpoint.v3.LocalityLbEndpoints */
export interface LocalityLbEndpoints {
  locality?: Locality;
  metadata?: Metadata;
  lb_endpoints?: LbEndpoint[];
  load_balancing_weight?: number;
  priority?: number;
  proximity?: number;
}

/** @proto envoy.config.endpoint.v3.LbEndpoint */
export interface LbEndpoint {
  endpoint?: Endpoint;
  endpoint_name?: string;
  health_status?: HealthStatus;
  metadata?: Metadata;
  load_balancing_weight?: number;
}

/** @proto envoy.config.endpoint.v3.Endpoint */
export interface Endpoint {
  address?: Address;
  health_check_config?: { port_value?: number; hostname?: string; address?: Address; disable_active_health_check?: boolean };
  hostname?: string;
  additional_addresses?: Array<{ address?: Address }>;
}

/** @proto envoy.config.cluster.v3.CircuitBreakers */
export interface CircuitBreakers {
  thresholds?: CircuitBreakerThresholds[];
  per_host_thresholds?: CircuitBreakerThresholds[];
}

/** @proto envoy.config.cluster.v3.CircuitBreakers.Thresholds */
export interface CircuitBreakerThresholds {
  priority?: RoutingPriority;
  max_connections?: number;
  max_pending_requests?: number;
  max_requests?: number;
  max_retries?: number;
  retry_budget?: { budget_percent?: { value?: number }; min_retry_concurrency?: number };
  track_remaining?: boolean;
  max_connection_pools?: number;
}

/** @proto envoy.config.cluster.v3.OutlierDetection */
export interface OutlierDetection {
  consecutive_5xx?: number;
  interval?: Duration;
  base_ejection_time?: Duration;
  max_ejection_percent?: number;
  enforcing_consecutive_5xx?: number;
  enforcing_success_rate?: number;
  success_rate_minimum_hosts?: number;
  success_rate_request_volume?: number;
  success_rate_stdev_factor?: number;
  consecutive_gateway_failure?: number;
  enforcing_consecutive_gateway_failure?: number;
  split_external_local_origin_errors?: boolean;
  consecutive_local_origin_failure?: number;
  enforcing_consecutive_local_origin_failure?: number;
  max_ejection_time?: Duration;
  [field: string]: unknown;
}

/** @proto envoy.config.core.v3.HealthCheck */
export interface HealthCheck {
  timeout?: Duration;
  interval?: Duration;
  initial_jitter?: Duration;
  interval_jitter?: Duration;
  interval_jitter_percent?: number;
  unhealthy_threshold?: number;
  healthy_threshold?: number;
  reuse_connection?: boolean;
  http_health_check?: {
    host?: string;
    path?: string;
    request_headers_to_add?: unknown[];
    request_headers_to_remove?: string[];
    expected_statuses?: Array<{ start?: Int64; end?: Int64 }>;
    codec_client_type?: 'HTTP1' | 'HTTP2' | 'HTTP3';
    method?: string;
    [field: string]: unknown;
  };
  tcp_health_check?: { send?: unknown; receive?: unknown[] };
  grpc_health_check?: { service_name?: string; authority?: string };
  custom_health_check?: TypedExtensionConfig;
  no_traffic_interval?: Duration;
  unhealthy_interval?: Duration;
  unhealthy_edge_interval?: Duration;
  healthy_edge_interval?: Duration;
  always_log_health_check_failures?: boolean;
  [field: string]: unknown;
}

// ---------------------------------------------------------------- tcp_proxy

/** @proto envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy */
export interface TcpProxy {
  stat_prefix?: string;
  cluster?: string;
  weighted_clusters?: { clusters?: Array<{ name?: string; weight?: number; metadata_match?: unknown }>; };
  metadata_match?: unknown;
  idle_timeout?: Duration;
  downstream_idle_timeout?: Duration;
  upstream_idle_timeout?: Duration;
  access_log?: AccessLog[];
  max_connect_attempts?: number;
  hash_policy?: unknown[];
  tunneling_config?: unknown;
  max_downstream_connection_duration?: Duration;
  [field: string]: unknown;
}
