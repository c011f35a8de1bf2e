import { parseDuration } from './proto-json.js';

/** A normalized Duration ("1.500s") in milliseconds; undefined when unset. */
export function durationMs(v: unknown): number | undefined {
  if (v === undefined || v === null) return undefined;
  const d = parseDuration(v);
  if (!d) throw new Error(`not a duration: ${String(v)}`);
  return Number(d.seconds) * 1000 + d.nanos / 1e6;
}
