/**
 * Access logs for every protocol: Envoy's `access_log` config (file, stdout, stderr), its
 * format operators, text and JSON formats, written without blocking the event loop. Filters
 * (tcp_proxy, rpc_proxy, HCM) parse with parseAccessLogs, create an AccessLogger per filter
 * and call `log()` with an AccessLogEntry when a connection, request or call ends.
 */
export * from './config.js';
export * from './entry.js';
export * from './format.js';
export * from './sink.js';
