/**
 * TLS for listeners and clusters: Envoy's DownstreamTlsContext / UpstreamTlsContext with
 * certificates from files, inline data or static SDS secrets, SAN (SPIFFE) verification,
 * rotation on file change, and the tls_inspector that feeds filter chain match.
 */
export * from './context.js';
export * from './client_hello.js';
export * from './downstream.js';
export * from './provider.js';
export * from './san.js';
export * from './stats.js';
export * from './upstream.js';
export * from './verify.js';
