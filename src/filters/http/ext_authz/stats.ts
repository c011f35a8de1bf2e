import { defineStats } from '../../../observability/stats.js';

/**
 * `http.<stat_prefix>.ext_authz.[<filter stat_prefix>.]*`, Envoy's names: `ok` (allowed by the
 * service), `denied` (refused by it), `error` (unreachable, timed out, 5xx or unreadable),
 * `failure_mode_allowed` (errors let through by failure_mode_allow), `disabled` (not checked:
 * filter_enabled or filter_enabled_metadata said no), `ignored_dynamic_metadata` (dynamic metadata
 * the service sent while enable_dynamic_metadata_ingestion is false).
 */
export const EXT_AUTHZ_STATS = defineStats({
  counters: ['ok', 'denied', 'error', 'failure_mode_allowed', 'disabled', 'ignored_dynamic_metadata'],
  gauges: [],
});
