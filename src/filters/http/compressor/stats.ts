import { defineStats } from '../../../observability/stats.js';

/**
 * Envoy's compressor statistics, under
 * `http.<stat_prefix>.compressor.<compressor_library.name>.<library>.response.` (`<library>` is
 * `gzip` or `brotli`, the library's own stat prefix; without `.response` when the filter uses
 * the deprecated top-level fields instead of response_direction_config, Envoy's legacy tree).
 * - compressed / not_compressed: responses this filter compressed, or looked at and did not;
 * - no_accept_header, header_identity, header_compressor_used, header_compressor_overshadowed
 *   (another compressor filter in the chain won the negotiation), header_wildcard,
 *   header_not_valid (q=0 everywhere, or nothing this chain offers): the request's
 *   Accept-Encoding, counted for compressible responses only;
 * - content_length_too_small (under min_content_length), not_compressed_etag
 *   (disable_on_etag_header);
 * - total_uncompressed_bytes / total_compressed_bytes of the compressed responses.
 */
export const COMPRESSOR_STATS = defineStats({
  counters: [
    'compressed',
    'not_compressed',
    'no_accept_header',
    'header_identity',
    'header_compressor_used',
    'header_compressor_overshadowed',
    'header_wildcard',
    'header_not_valid',
    'total_uncompressed_bytes',
    'total_compressed_bytes',
    'content_length_too_small',
    'not_compressed_etag',
  ],
  gauges: [],
});
