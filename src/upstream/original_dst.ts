import type { PeerAddress } from '../io/engine.js';
import { Host } from './host.js';

/**
 * Hosts of an ORIGINAL_DST cluster: one per destination that connections were originally
 * headed for (the downstream's local address once the listener restored it from
 * SO_ORIGINAL_DST). Reused per address so /clusters and per-host counters stay meaningful.
 * As with Envoy's `cleanup_interval`, a host not picked since the previous sweep is dropped
 * (`expire`), and the cluster drains its pooled connections; connections in use keep their
 * Host object and finish normally.
 */
export class OriginalDstHosts {
  private readonly hosts = new Map<string, Host>();
  /** Keys picked since the last `expire()`. */
  private readonly used = new Set<string>();

  constructor(
    /** `original_dst_lb_config.upstream_port_override`; 0 keeps the original port. */
    private readonly portOverride: number,
    private readonly maxIdle = 1024,
  ) {}

  get all(): readonly Host[] {
    return [...this.hosts.values()];
  }

  /** The host for `dst`; null for an address that cannot be a destination (unix, port 0). */
  pick(dst: PeerAddress | null | undefined): Host | null {
    if (!dst || dst.family === 'unix') return null;
    const port = this.portOverride || dst.port;
    if (!port) return null;
    const key = `${dst.address}/${port}`;
    let h = this.hosts.get(key);
    if (!h) {
      if (this.hosts.size >= this.maxIdle) this.sweep();
      h = new Host({ family: dst.family, address: dst.address, port }, 1, 0, '', null);
      this.hosts.set(key, h);
    }
    this.used.add(key);
    return h;
  }

  /** Drops the hosts not picked since the previous call and returns them. */
  expire(): Host[] {
    const gone: Host[] = [];
    for (const [k, h] of this.hosts) {
      if (this.used.has(k)) continue;
      this.hosts.delete(k);
      gone.push(h);
    }
    this.used.clear();
    return gone;
  }

  private sweep(): void {
    for (const [k, h] of this.hosts) if (h.load === 0 && h.counters.cx_active === 0) this.hosts.delete(k);
  }
}
