import { parseDuration } from './wkt.js';

/**
 * A normalized Duration ("1.500s", see proto-json.ts) in milliseconds, fractions kept
 * ("0.000500s" → 0.0005); undefined when unset. Also reads the {seconds, nanos} form.
 * Throws on anything else: the decoder has already validated every Duration it outputs.
 */
export function durationMs(v: unknown): number | undefined {
  if (v === undefined || v === null) return undefined;
  const d = parseDuration(v);
  if (!d) throw new Error(`not a duration: ${JSON.stringify(v)}`);
  return Number(d.seconds) * 1000 + d.nanos / 1e6;
}
