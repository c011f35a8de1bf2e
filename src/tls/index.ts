/**
 * TLS for listeners and clusters: Envoy's DownstreamTlsContext / UpstreamTlsContext with
 * certificates from files, inline data, static secrets or SDS (over ADS or from a file), SAN
 * (SPIFFE) verification, rotation without restart, and the tls_inspector that feeds filter
 * chain match.
 */
export * from './context.js';
export * from './client_hello.js';
export * from './downstream.js';
export * from './provider.js';
export * from './san.js';
export * from './sds.js';
export * from './stats.js';
export * from './upstream.js';
export * from './verify.js';
