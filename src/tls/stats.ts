import { defineStats } from '../observability/stats.js';

/**
 * `listener.<address>.ssl.*` and `cluster.<name>.ssl.*`: Envoy's names for handshakes and
 * verification failures. `context_reload` / `context_reload_error` are Strait's own: certificate
 * files that changed on disk and were (or could not be) loaded.
 */
export const SSL_STATS = defineStats({
  counters: [
    'handshake',
    'connection_error',
    'no_certificate',
    'fail_verify_no_cert',
    'fail_verify_error',
    'fail_verify_san',
    'context_reload',
    'context_reload_error',
  ],
  gauges: [],
});
