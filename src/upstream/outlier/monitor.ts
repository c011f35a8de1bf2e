/**
 * What a data path tells outlier detection about one attempt on a host. Values follow Envoy's
 * result kinds: "local origin" results happen at the proxy (connect, timeout), "external
 * origin" ones come from the host's own answer.
 */
export const OutlierResult = {
  /** The host answered and the answer is not a server error (HTTP < 500, RPC OK or business error). */
  REQUEST_SUCCESS: 0,
  /** The host answered with a server error (HTTP 500/501/505…, RPC server error). */
  REQUEST_FAILED: 1,
  /** The host is overloaded or unreachable behind it (HTTP 502/503/504, Dubbo threadpool exhausted, reset mid-request). */
  GATEWAY_FAILURE: 2,
  /** Connecting failed (refused, reset, connect timeout). */
  CONNECT_FAILED: 3,
  /** The host took longer than the request's (per-try) timeout. */
  TIMEOUT: 4,
  /** A connection is up; the request's own result follows (HTTP, RPC). */
  CONNECT_SUCCESS: 5,
  /** A connection is up and that is the whole story (tcp_proxy). */
  CONNECT_SUCCESS_FINAL: 6,
} as const;
export type OutlierResult = (typeof OutlierResult)[keyof typeof OutlierResult];

/** The per-host side of outlier detection: what data paths call. Calls never allocate. */
export interface OutlierMonitor {
  /** Reports one result of the kinds above. */
  putResult(result: OutlierResult): void;
  /** Reports an HTTP status (or an RPC status mapped onto one): ≥ 500 fails, the rest succeed. */
  putHttpStatus(status: number): void;
  /** How many times the host has been ejected in a row (the ejection time multiplier). */
  readonly ejections: number;
  /** Success rate of the last interval, as /clusters shows it; -1 when not computed. */
  readonly successRate: number;
}

/** The monitor of hosts in clusters without outlier detection: reports go nowhere. */
export const NO_OUTLIER: OutlierMonitor = Object.freeze({
  putResult(): void {},
  putHttpStatus(): void {},
  ejections: 0,
  successRate: -1,
});
