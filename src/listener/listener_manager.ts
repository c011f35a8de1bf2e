import type { RuntimeContext } from '../filters/network/types.js';
import { BindError } from '../errors.js';
import type { StatsOf } from '../observability/stats.js';
import { ActiveListener } from './listener.js';
import type { ListenerSpec } from './listener_config.js';
import { LISTENER_MANAGER_STATS } from './stats.js';
import type { ListenAddress, PeerAddress } from '../io/engine.js';

function sameAddress(a: ListenAddress, b: ListenAddress): boolean {
  if (a.kind === 'unix' || b.kind === 'unix') return a.kind === 'unix' && b.kind === 'unix' && a.path === b.path;
  // Port 0 means "any port": a new port-0 listener may keep the one already bound.
  return a.host === b.host && a.port === b.port;
}

export class ListenerManager {
  private readonly listeners: ActiveListener[] = [];
  readonly stats: StatsOf<typeof LISTENER_MANAGER_STATS>;

  /** Listening sockets handed over by the previous process, by listener name (hot restart). */
  inherited: ReadonlyMap<string, number> | null = null;

  /** Serving TCP listeners by `address:port`, for original-destination hand-off; rebuilt after changes. */
  private byAddress: Map<string, ActiveListener> | null = null;
  private readonly lookup = (local: PeerAddress): ActiveListener | null => this.forOriginalDst(local);

  constructor(private readonly rt: RuntimeContext) {
    this.stats = rt.stats.scope('listener_manager').table(LISTENER_MANAGER_STATS);
  }

  /**
   * The listener for a connection's original destination, as Envoy picks it: the one on exactly
   * that address, else the one on the wildcard address (0.0.0.0 or ::) with that port; bound or
   * not (`bind_to_port: false`), never one that is draining.
   */
  forOriginalDst(local: PeerAddress): ActiveListener | null {
    if (local.family === 'unix') return null;
    let m = this.byAddress;
    if (m === null) {
      m = this.byAddress = new Map();
      for (const l of this.listeners) {
        const a = l.draining ? null : l.address;
        if (a && a.family !== 'unix' && !m.has(`${a.address}:${a.port}`)) m.set(`${a.address}:${a.port}`, l);
      }
    }
    return m.get(`${local.address}:${local.port}`) ?? m.get(`${local.family === 'IPv6' ? '::' : '0.0.0.0'}:${local.port}`) ?? null;
  }

  private changed(): void {
    this.byAddress = null;
  }

  /** Binds every listener; if one fails, the ones already bound are closed and the error names it. */
  async startAll(specs: readonly ListenerSpec[]): Promise<void> {
    for (const spec of specs) {
      const l = new ActiveListener(spec, this.rt, this.lookup);
      this.stats.listener_added.value++;
      try {
        await l.start(this.inherited?.get(spec.name));
      } catch (err) {
        this.stats.listener_create_failure.value++;
        for (const done of this.listeners) done.stopAccepting();
        const a = spec.address;
        const where = a.kind === 'tcp' ? `${a.host}:${a.port}` : a.path;
        throw new BindError(`listener "${spec.name}": cannot listen on ${where}: ${(err as Error).message}`, { cause: err });
      }
      this.stats.listener_create_success.value++;
      this.listeners.push(l);
      this.changed();
    }
    this.stats.total_listeners_active.value = this.listeners.length;
  }

  get(name: string): ActiveListener | undefined {
    return this.listeners.find((l) => l.spec.name === name && !l.draining);
  }

  /**
   * Adds or replaces one listener (LDS). Same address: the new chains are swapped in on the bound
   * socket. New address: the new listener binds first, then the old one drains. Either way open
   * connections finish on the config they started with. Throws BindError if the bind fails.
   */
  async addOrUpdate(spec: ListenerSpec, drainMs: number): Promise<void> {
    const old = this.get(spec.name);
    if (old && sameAddress(old.spec.address, spec.address) && old.spec.bindToPort === spec.bindToPort) {
      old.update(spec);
      return;
    }
    const l = new ActiveListener(spec, this.rt, this.lookup);
    this.stats.listener_added.value++;
    try {
      await l.start();
    } catch (err) {
      this.stats.listener_create_failure.value++;
      const a = spec.address;
      throw new BindError(`listener "${spec.name}": cannot listen on ${a.kind === 'tcp' ? `${a.host}:${a.port}` : a.path}: ${(err as Error).message}`, { cause: err });
    }
    this.stats.listener_create_success.value++;
    this.listeners.push(l);
    this.changed();
    this.stats.total_listeners_active.value++;
    if (old) this.drainOne(old, drainMs);
  }

  /** Removes a listener (LDS): it stops accepting at once and its connections get `drainMs` to finish. */
  remove(name: string, drainMs: number): boolean {
    const l = this.get(name);
    if (!l) return false;
    this.stats.listener_removed.value++;
    this.drainOne(l, drainMs);
    return true;
  }

  private drainOne(l: ActiveListener, drainMs: number): void {
    this.changed();
    l.stopAccepting();
    l.announceDrain();
    this.stats.listener_stopped.value++;
    this.stats.total_listeners_active.value--;
    this.stats.total_listeners_draining.value++;
    let timer: NodeJS.Timeout | undefined;
    const finish = () => {
      clearTimeout(timer);
      l.abortAll();
      l.retireFilters();
      const i = this.listeners.indexOf(l);
      if (i >= 0) {
        this.listeners.splice(i, 1);
        this.changed();
        this.stats.total_listeners_draining.value--;
      }
    };
    timer = setTimeout(finish, drainMs);
    timer.unref();
    void l.whenIdle().then(finish);
  }

  all(): readonly ActiveListener[] {
    return this.listeners;
  }

  /**
   * Stop accepting everywhere (drain starts). `keepPath`: a hot restart, whose connections move
   * to the new process, so their peers are not told to go away; only the connections that cannot
   * move (HTTP/2) are asked to reconnect, which brings them to the new process.
   */
  stopAccepting(keepPath = false): void {
    this.changed();
    for (const l of this.listeners) {
      if (l.draining) continue;
      l.stopAccepting(keepPath);
      if (!keepPath) l.announceDrain();
      else l.drainConnections(true);
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
    for (const l of this.listeners) {
      l.abortAll();
      l.retireFilters();
    }
  }

  get activeConnections(): number {
    return this.listeners.reduce((s, l) => s + l.activeConnections, 0);
  }
}
