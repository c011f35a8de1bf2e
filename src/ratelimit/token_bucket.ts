/**
 * Envoy's token bucket: starts full with `maxTokens`, gains `tokensPerFill` every
 * `fillIntervalMs`, never above `maxTokens`. Refills are computed from the clock when tokens
 * are asked for, so an idle bucket costs no timer.
 */
export class TokenBucket {
  private tokens: number;
  private lastFill: number;

  constructor(
    readonly maxTokens: number,
    readonly tokensPerFill: number,
    readonly fillIntervalMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = maxTokens;
    this.lastFill = now();
  }

  private refill(): void {
    if (this.fillIntervalMs <= 0) return;
    const t = this.now();
    const n = Math.floor((t - this.lastFill) / this.fillIntervalMs);
    if (n <= 0) return;
    this.lastFill += n * this.fillIntervalMs;
    this.tokens = Math.min(this.maxTokens, this.tokens + n * this.tokensPerFill);
  }

  /** Takes one token if there is one. */
  tryTake(): boolean {
    this.refill();
    if (this.tokens >= 1) {
      this.tokens--;
      return true;
    }
    return false;
  }

  available(): number {
    this.refill();
    return this.tokens;
  }

  /** Milliseconds until the next fill (0 when tokens are available now). */
  msUntilToken(): number {
    this.refill();
    if (this.tokens >= 1) return 0;
    return Math.max(1, this.lastFill + this.fillIntervalMs - this.now());
  }
}
