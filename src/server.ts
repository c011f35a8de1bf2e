import fs from 'node:fs';
import { redact } from './config/index.js';
import { AdminServer, type AdminHost } from './admin/admin_server.js';
import type { FieldError } from './errors.js';
import type { RuntimeContext } from './filters/network/types.js';
import { createEngine, type EngineName, type IoEngine, type PeerAddress } from './io/index.js';
import { ListenerManager } from './listener/listener_manager.js';
import { log } from './log.js';
import { StatsStore } from './observability/stats.js';
import type { StaticConfig } from './static_config.js';
import type { Resolver } from './upstream/cluster.js';
import { ClusterManager } from './upstream/cluster_manager.js';

export const VERSION = '0.1.0';

export interface ServerOptions {
  readonly engine: EngineName;
  readonly drainTimeMs: number;
  readonly adminAddressPath?: string;
  readonly commandLine: readonly string[];
  /** Replaces the system resolver for STRICT_DNS clusters (embedding Strait in another program). */
  readonly resolver?: Resolver;
  /** The bootstrap with secrets redacted, when the caller already has it (decoded off-thread). */
  readonly redactedBootstrap?: Record<string, unknown>;
}

type State = AdminHost['state'];
const STATE_CODE: Record<State, number> = { LIVE: 0, DRAINING: 1, PRE_INITIALIZING: 2, INITIALIZING: 3 };

function addressJson(a: PeerAddress | null): unknown {
  if (!a) return null;
  return a.family === 'unix' ? { pipe: { path: a.address } } : { socket_address: { address: a.address, port_value: a.port } };
}

/** Wires config, clusters, listeners and admin, and owns the process lifecycle. */
export class Server implements AdminHost {
  readonly stats = new StatsStore();
  readonly engine: IoEngine;
  readonly clusters: ClusterManager;
  readonly listeners: ListenerManager;
  private admin: AdminServer | null = null;
  private phase: 'PRE_INITIALIZING' | 'INITIALIZING' | 'LIVE' | 'DRAINING' = 'PRE_INITIALIZING';
  private healthCheckFailed = false;
  private readonly startedAt = Date.now();
  private readonly loadedAt = new Date().toISOString();
  private shuttingDown: Promise<void> | null = null;
  private readonly serverStats;
  private readonly dump: Array<Record<string, unknown>>;
  /** Called once the process may exit (quit, drain done). */
  onExit: (code: number) => void = (code) => process.exit(code);

  constructor(
    private readonly config: StaticConfig,
    private readonly bootstrap: Record<string, unknown>,
    private readonly options: ServerOptions,
  ) {
    this.engine = createEngine(options.engine);
    const root = this.stats.root;
    this.clusters = new ClusterManager(root, options.resolver);
    const rt: RuntimeContext = { engine: this.engine, clusters: this.clusters, stats: root };
    this.listeners = new ListenerManager(rt);
    const s = root.scope('server');
    this.serverStats = {
      live: s.gauge('live'),
      state: s.gauge('state'),
      uptime: s.gauge('uptime'),
      concurrency: s.gauge('concurrency'),
      total_connections: s.gauge('total_connections'),
      version: s.gauge('version'),
    };
    this.serverStats.concurrency.value = 1;
    this.dump = this.buildDump();
    this.serverStats.state.value = STATE_CODE.PRE_INITIALIZING;
  }

  get state(): State {
    if (this.phase === 'LIVE' && this.healthCheckFailed) return 'DRAINING';
    return this.phase;
  }

  /** Admin first (so /ready answers 503 while starting), then clusters, then listeners. */
  async start(): Promise<void> {
    for (const w of this.config.warnings) log.warn({ path: w.path }, w.message);
    if (this.config.admin) {
      this.admin = new AdminServer(this);
      const a = await this.admin.listen(this.config.admin.address);
      log.info({ address: a }, 'admin listening');
      if (this.options.adminAddressPath) {
        const text = a.family === 'unix' ? a.address : a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
        fs.writeFileSync(this.options.adminAddressPath, text);
      }
    }
    this.setPhase('INITIALIZING');
    await this.clusters.addAll(this.config.clusters);
    await this.listeners.startAll(this.config.listeners);
    for (const l of this.listeners.all()) log.info({ listener: l.spec.name, address: l.address, engine: this.engine.name }, 'listener up');
    this.setPhase('LIVE');
  }

  private setPhase(p: Server['phase']): void {
    this.phase = p;
    this.refreshServerStats();
  }

  private refreshServerStats(): void {
    const s = this.serverStats;
    s.state.value = STATE_CODE[this.state];
    s.live.value = this.state === 'LIVE' ? 1 : 0;
    s.uptime.value = Math.floor((Date.now() - this.startedAt) / 1000);
    s.total_connections.value = this.listeners.activeConnections;
  }

  /** Stop accepting, let connections finish for up to the drain time, then exit 0. */
  shutdown(drainMs = this.options.drainTimeMs): Promise<void> {
    this.shuttingDown ??= (async () => {
      this.setPhase('DRAINING');
      log.info({ drainMs, open: this.listeners.activeConnections }, 'shutting down: draining');
      await this.listeners.drain(drainMs);
      this.clusters.close();
      await this.admin?.close();
      log.info('shutdown complete');
    })();
    return this.shuttingDown;
  }

  // ---- AdminHost ----

  renderStats(format: 'text' | 'json', filter?: RegExp): string {
    this.refreshServerStats();
    return format === 'json' ? this.stats.renderJson(filter) : this.stats.renderText(filter);
  }

  renderPrometheus(): string {
    this.refreshServerStats();
    return this.stats.renderPrometheus();
  }

  /** The config_dump entries, built once when the config is loaded (not per request). */
  private buildDump(): Array<Record<string, unknown>> {
    const at = this.loadedAt;
    const bootstrap = (this.options.redactedBootstrap ?? redact('envoy.config.bootstrap.v3.Bootstrap', this.bootstrap)) as Record<string, any>;
    const sr = bootstrap.static_resources ?? {};
    return [
      { '@type': 'type.googleapis.com/envoy.admin.v3.BootstrapConfigDump', bootstrap, last_updated: at },
      {
        '@type': 'type.googleapis.com/envoy.admin.v3.ClustersConfigDump',
        static_clusters: (sr.clusters ?? []).map((c: object) => ({ cluster: { '@type': 'type.googleapis.com/envoy.config.cluster.v3.Cluster', ...c }, last_updated: at })),
      },
      {
        '@type': 'type.googleapis.com/envoy.admin.v3.ListenersConfigDump',
        static_listeners: (sr.listeners ?? []).map((l: object) => ({ listener: { '@type': 'type.googleapis.com/envoy.config.listener.v3.Listener', ...l }, last_updated: at })),
      },
    ];
  }

  configDump(resource?: string): unknown {
    const configs = this.dump;
    if (!resource) return { configs };
    // ?resource=static_clusters etc.: the matching entries, flattened as Envoy does.
    return { configs: configs.flatMap((c) => ((c as Record<string, unknown>)[resource] as unknown[] | undefined) ?? []) };
  }

  renderClusters(format: 'text' | 'json'): string {
    const all = [...this.clusters.all()];
    if (format === 'json') {
      return JSON.stringify(
        {
          cluster_statuses: all.map((c) => ({
            name: c.name,
            added_via_api: false,
            host_statuses: c.allHosts.map((h) => ({
              address: addressJson(h.address),
              stats: Object.entries(h.counters).map(([name, value]) => ({ name, value, type: name.endsWith('_active') ? 'GAUGE' : 'COUNTER' })),
              health_status: { eds_health_status: h.healthy ? 'HEALTHY' : 'UNHEALTHY' },
              weight: h.weight,
              hostname: h.hostname,
              priority: h.priority,
            })),
          })),
        },
        null,
        2,
      );
    }
    let out = '';
    for (const c of all) {
      out += `${c.name}::observability_name::${c.name}\n`;
      for (const h of c.allHosts) {
        const p = `${c.name}::${h.label}::`;
        for (const [k, v] of Object.entries(h.counters)) out += `${p}${k}::${v}\n`;
        out += `${p}hostname::${h.hostname}\n${p}health_flags::${h.healthy ? 'healthy' : '/failed_eds_health'}\n`;
        out += `${p}weight::${h.weight}\n${p}priority::${h.priority}\n`;
      }
    }
    return out;
  }

  renderListeners(format: 'text' | 'json'): string {
    const all = this.listeners.all();
    if (format === 'json') {
      return JSON.stringify({ listener_statuses: all.map((l) => ({ name: l.spec.name, local_address: addressJson(l.address) })) }, null, 2);
    }
    return all.map((l) => `${l.spec.name}::${l.address ? (l.address.family === 'unix' ? l.address.address : `${l.address.address}:${l.address.port}`) : 'draining'}\n`).join('');
  }

  serverInfo(): unknown {
    const up = Math.floor((Date.now() - this.startedAt) / 1000);
    return {
      version: `strait/${VERSION}`,
      state: this.state,
      command_line_options: { argv: this.options.commandLine, io_engine: this.engine.name, drain_time_ms: this.options.drainTimeMs },
      node: this.bootstrap.node ?? {},
      uptime_current_epoch: `${up}s`,
      uptime_all_epochs: `${up}s`,
    };
  }

  drainListeners(graceful: boolean): void {
    if (!graceful) {
      this.listeners.stopAccepting();
      return;
    }
    // Graceful: report DRAINING at once so load balancers move away, stop accepting after the drain time.
    this.setPhase('DRAINING');
    setTimeout(() => this.listeners.stopAccepting(), this.options.drainTimeMs).unref();
  }

  setHealthCheckFailed(failed: boolean): void {
    this.healthCheckFailed = failed;
    this.refreshServerStats();
  }

  quit(): void {
    void this.shutdown(0).then(() => this.onExit(0));
  }
}

export type { FieldError };
