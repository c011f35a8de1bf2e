import type { RuntimeContext } from '../filters/network/types.js';
import { BindError } from '../errors.js';
import type { StatsOf } from '../observability/stats.js';
import { ActiveListener } from './listener.js';
import type { ListenerSpec } from './listener_config.js';
import { LISTENER_MANAGER_STATS } from './stats.js';

export class ListenerManager {
  private readonly listeners: ActiveListener[] = [];
  readonly stats: StatsOf<typeof LISTENER_MANAGER_STATS>;

  constructor(private readonly rt: RuntimeContext) {
    this.stats = rt.stats.scope('listener_manager').table(LISTENER_MANAGER_STATS);
  }

  /** Binds every listener; if one fails, the ones already bound are closed and the error names it. */
  async startAll(specs: readonly ListenerSpec[]): Promise<void> {
    for (const spec of specs) {
      const l = new ActiveListener(spec, this.rt);
      this.stats.listener_added.value++;
      try {
        await l.start();
      } catch (err) {
        this.stats.listener_create_failure.value++;
        for (const done of this.listeners) done.stopAccepting();
        const a = spec.address;
        const where = a.kind === 'tcp' ? `${a.host}:${a.port}` : a.path;
        throw new BindError(`listener "${spec.name}": cannot listen on ${where}: ${(err as Error).message}`, { cause: err });
      }
      this.stats.listener_create_success.value++;
      this.listeners.push(l);
    }
    this.stats.total_listeners_active.value = this.listeners.length;
  }

  all(): readonly ActiveListener[] {
    return this.listeners;
  }

  /** Stop accepting everywhere (drain starts). */
  stopAccepting(): void {
    for (const l of this.listeners) {
      if (l.draining) continue;
      l.stopAccepting();
      this.stats.listener_stopped.value++;
      this.stats.total_listeners_active.value--;
      this.stats.total_listeners_draining.value++;
    }
  }

  /** Waits for open connections to end, up to `ms`, then aborts what is left. */
  async drain(ms: number): Promise<void> {
    this.stopAccepting();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((r) => (timer = setTimeout(r, ms)));
    await Promise.race([Promise.all(this.listeners.map((l) => l.whenIdle())), timeout]);
    clearTimeout(timer);
    for (const l of this.listeners) l.abortAll();
  }

  get activeConnections(): number {
    return this.listeners.reduce((s, l) => s + l.activeConnections, 0);
  }
}
