/**
 * HTTP/2 rapid reset (CVE-2023-44487): a client opens streams and resets them at once, so every
 * request costs the proxy its routing and upstream work and the client almost nothing, while the
 * concurrent-stream limit never binds. As Envoy's connection manager does
 * (overload.premature_reset_total_stream_count, default 500, and
 * overload.premature_reset_min_stream_lifetime_seconds, default 1): a stream reset before any
 * response head went out, while its age in whole seconds is at most 1 (Envoy truncates the same
 * way), is premature, and once premature resets are half of the connection's closed streams
 * (counting at least 500) the connection is closed. A client resetting more than 250 of its
 * first 500 streams thus loses the connection at its 250th; ordinary cancellations never come
 * near it.
 */

/** Envoy's defaults for the two runtime keys above. */
export const PREMATURE_RESET_TOTAL_STREAM_COUNT = 500;
export const PREMATURE_RESET_MIN_STREAM_LIFETIME_S = 1;

/** One downstream HTTP/2 connection's count; its exchanges report to it when they end. */
export class PrematureResets {
  /** Streams ended on this connection. */
  closed = 0;
  premature = 0;
  /** The connection has been closed for it: the streams that close with it count no more. */
  tripped = false;

  /** `close` ends the connection (abortively, as Envoy does); `onTrip` counts the event. */
  constructor(
    private readonly close: () => void,
    private readonly onTrip: () => void,
  ) {}

  /** A stream ended `lifetimeMs` after it started; `prematureReset`: reset before any response head went out. */
  streamClosed(prematureReset: boolean, lifetimeMs: number): void {
    this.closed++;
    if (!prematureReset || this.tripped || Math.floor(lifetimeMs / 1000) > PREMATURE_RESET_MIN_STREAM_LIFETIME_S) return;
    // Good streams only grow `closed`, so the ratio can only cross on a premature one: checked here alone.
    if (++this.premature * 2 < Math.max(this.closed, PREMATURE_RESET_TOTAL_STREAM_COUNT)) return;
    this.tripped = true;
    this.onTrip();
    this.close();
  }
}
