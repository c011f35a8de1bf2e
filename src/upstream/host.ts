import type { PeerAddress } from '../io/engine.js';

/** Per-host figures, shown by /clusters the way Envoy prints them (not in /stats). */
export interface HostCounters {
  cx_total: number;
  cx_active: number;
  cx_connect_fail: number;
  rq_total: number;
  rq_active: number;
}

/** One upstream endpoint. Immutable identity; counters and health are mutable state. */
export class Host {
  readonly counters: HostCounters = { cx_total: 0, cx_active: 0, cx_connect_fail: 0, rq_total: 0, rq_active: 0 };
  healthy = true;

  constructor(
    readonly address: PeerAddress,
    readonly weight: number,
    readonly priority: number,
    /** The DNS name the address came from (STRICT_DNS), or ''. */
    readonly hostname: string,
    readonly metadata: unknown,
  ) {}

  /** `10.0.0.1:80`, `[::1]:80` or the unix path, as /clusters prints it. */
  get label(): string {
    const a = this.address;
    if (a.family === 'unix') return a.address;
    return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
  }

  /** Load the balancers compare: in-flight requests, or open connections for L4 traffic. */
  get load(): number {
    return this.counters.rq_active + this.counters.cx_active;
  }
}
