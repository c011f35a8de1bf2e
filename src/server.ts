import { breakersJson, breakersText } from './upstream/circuit_breakers.js';
import fs from 'node:fs';
import { AdminServer, type AdminHost } from './admin/admin_server.js';
import type { FieldError } from './errors.js';
import type { RuntimeContext } from './filters/network/types.js';
import { createEngine, type EngineName, type IoEngine, type PeerAddress } from './io/index.js';
import { InterceptStatusReporter } from './intercept/state.js';
import { ListenerManager } from './listener/listener_manager.js';
import { log } from './log.js';
import { loadAllExtensions } from './config/preload.js';
import { drainSinks } from './observability/access_log/sink.js';
import { StatsStore } from './observability/stats.js';
import { StatsFlusher } from './observability/stats_sinks.js';
import type { StaticConfig } from './static_config.js';
import type { Resolver } from './upstream/cluster.js';
import { ClusterManager } from './upstream/cluster_manager.js';
import { HealthFlag } from './upstream/host.js';
// Loaded only with dynamic_resources: it brings gRPC and the resource registry, ~30 MB a static-only
// sidecar does not need.
import type { DynamicConfig } from './xds/client/dynamic_config.js';
import { HotRestartChild, HotRestartParent, type UpgradeHost } from './upgrade/hot_restart.js';
import { sdsKey, secretStore } from './tls/sds.js';

export const VERSION = '0.1.0';

export interface ServerOptions {
  readonly engine: EngineName;
  readonly drainTimeMs: number;
  readonly adminAddressPath?: string;
  readonly commandLine: readonly string[];
  /** Replaces the system resolver for STRICT_DNS clusters (embedding Strait in another program). */
  readonly resolver?: Resolver;
  /**
   * The bootstrap with secrets redacted, for /config_dump (the CLI gets it from the decoding
   * worker, so the main thread never loads the protobuf registry for a static config).
   */
  readonly redactedBootstrap: Record<string, unknown>;
  /** Hot restart: this process's epoch (> 0 takes over from epoch - 1), base id and parent timeout. */
  readonly restartEpoch?: number;
  readonly baseId?: number;
  readonly parentShutdownMs?: number;
  /** Where the last accepted xDS configuration is kept (default: under os.tmpdir(), by node id). */
  readonly xdsSnapshotPath?: string;
}

const ADMIN_SOCKET = '__admin__';

type State = AdminHost['state'];
const STATE_CODE: Record<State, number> = { LIVE: 0, DRAINING: 1, PRE_INITIALIZING: 2, INITIALIZING: 3 };

function addressJson(a: PeerAddress | null): unknown {
  if (!a) return null;
  return a.family === 'unix' ? { pipe: { path: a.address } } : { socket_address: { address: a.address, port_value: a.port } };
}

/** Wires config, clusters, listeners and admin, and owns the process lifecycle. */
export class Server implements AdminHost {
  readonly stats: StatsStore;
  /** `stats_sinks` (statsd, DogStatsD) on `stats_flush_interval`; null without sinks. */
  private readonly statsFlusher: StatsFlusher | null;
  readonly engine: IoEngine;
  readonly clusters: ClusterManager;
  readonly listeners: ListenerManager;
  private admin: AdminServer | null = null;
  private phase: 'PRE_INITIALIZING' | 'INITIALIZING' | 'LIVE' | 'DRAINING' = 'PRE_INITIALIZING';
  private healthCheckFailed = false;
  private readonly startedAt = Date.now();
  private shuttingDown: Promise<void> | null = null;
  private readonly serverStats;
  /** Built by the first /config_dump (see buildDump). */
  private dump: Array<Record<string, unknown>> | null = null;
  /** How app traffic reaches this process (`strait intercept`): intercept.* stats, config_dump. */
  private readonly intercept: InterceptStatusReporter;
  /** The xDS client and what it applied; null without dynamic_resources. */
  xds: DynamicConfig | null = null;
  /** Called once the process may exit (quit, drain done). */
  onExit: (code: number) => void = (code) => process.exit(code);

  constructor(
    private readonly config: StaticConfig,
    private readonly bootstrap: Record<string, unknown>,
    private readonly options: ServerOptions,
  ) {
    // Before anything creates a stat: the matcher and tag extraction apply at creation.
    const sinks = config.statsSinks ?? null;
    this.stats = new StatsStore(config.stats ?? null, !!sinks?.sinks.some((s) => s.kind === 'dog_statsd'));
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
    this.intercept = new InterceptStatusReporter(root);
    secretStore.useStats(root);
    this.serverStats.state.value = STATE_CODE.PRE_INITIALIZING;
    this.statsFlusher = sinks ? new StatsFlusher(this.stats, sinks, () => this.refreshServerStats()) : null;
  }

  get state(): State {
    if (this.phase === 'LIVE' && this.healthCheckFailed) return 'DRAINING';
    return this.phase;
  }

  /** Admin first (so /ready answers 503 while starting), then clusters, then listeners. */
  async start(): Promise<void> {
    for (const w of this.config.warnings) log.warn({ path: w.path }, w.message);
    this.statsFlusher?.start();
    const epoch = this.options.restartEpoch ?? 0;
    const baseId = this.options.baseId ?? 0;
    // Hot restart: take the previous epoch's sockets before binding anything ourselves.
    const child = epoch > 0 ? HotRestartChild.connect(baseId, epoch) : null;
    if (epoch > 0 && !child) log.warn({ epoch }, 'hot restart: no process at the previous epoch; starting fresh');
    this.listeners.inherited = child?.inherited ?? null;
    if (this.config.admin) {
      this.admin = new AdminServer(this);
      const a = await this.admin.listen(this.config.admin.address, child?.inherited.get(ADMIN_SOCKET));
      log.info({ address: a }, 'admin listening');
      if (this.options.adminAddressPath) {
        const text = a.family === 'unix' ? a.address : a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
        fs.writeFileSync(this.options.adminAddressPath, text);
      }
    }
    this.setPhase('INITIALIZING');
    // Static TLS contexts whose secrets come from a control plane start subscribed: they run
    // without a certificate (handshakes refused) until the xDS side, started below, brings it.
    const staticSds = this.config.dynamic?.staticSds ?? [];
    if (staticSds.length) secretStore.setWanted(new Map(staticSds.map((r) => [sdsKey(r.name, r.source), r.name])));
    // EDS clusters wait for their endpoints (xDS), as Envoy's cluster warming does.
    await this.clusters.addAll(this.config.clusters.filter((c) => c.type !== 'EDS'));
    await this.listeners.startAll(this.config.listeners);
    for (const l of this.listeners.all()) log.info({ listener: l.spec.name, address: l.address, engine: this.engine.name }, 'listener up');
    if (this.config.dynamic) await this.startXds(this.config.dynamic);
    this.setPhase('LIVE');
    this.startHotRestart(child, baseId, epoch);
  }

  /** Serves the next epoch's channel; as a child, first takes over the previous epoch's connections. */
  private startHotRestart(child: HotRestartChild | null, baseId: number, epoch: number): void {
    const host: UpgradeHost = {
      stats: this.stats,
      listeningSockets: () => {
        const out = this.listeners
          .all()
          .filter((l) => !l.draining && l.listenFd >= 0)
          .map((l) => ({ name: l.spec.name, fd: l.listenFd }));
        if (this.admin && this.admin.fd >= 0) out.push({ name: ADMIN_SOCKET, fd: this.admin.fd });
        return out;
      },
      listeners: () => this.listeners.all(),
      listener: (name) => this.listeners.get(name),
      adopt: (fd, remote, local) => this.engine.adopt(fd, remote, local),
      stopAccepting: () => {
        this.setPhase('DRAINING');
        this.listeners.stopAccepting(true);
        void this.admin?.close();
        this.admin = null;
      },
      openConnections: () => this.listeners.activeConnections,
      exit: () => {
        this.clusters.close();
        void Promise.all([drainSinks(this.stats.root), this.statsFlusher?.stop()]).then(() => this.onExit(0));
      },
    };
    if (child) child.closeUnused(new Set([...this.listeners.all().map((l) => l.spec.name), ADMIN_SOCKET]));
    this.hotRestart = new HotRestartParent(host, baseId, epoch, this.options.parentShutdownMs ?? 60_000);
    this.hotRestart.busyReason = child ? `epoch ${epoch} is still taking over from epoch ${epoch - 1}` : null;
    try {
      this.hotRestart.start();
    } catch (err) {
      // Serving matters more than being upgradable: say so and carry on.
      log.warn({ err: (err as Error).message }, 'hot restart: cannot open the restart channel; this process cannot hand over');
      this.hotRestart = null;
    }
    child?.ready(host, () => {
      if (this.hotRestart) this.hotRestart.busyReason = null;
    });
  }

  private hotRestart: HotRestartParent | null = null;

  /** Connects to the control plane and waits for the first configuration (or initial_fetch_timeout). */
  private async startXds(dyn: NonNullable<StaticConfig['dynamic']>): Promise<void> {
    // A control plane may name any filter in any update, parsed synchronously on arrival.
    const [{ DynamicConfig }] = await Promise.all([import('./xds/client/dynamic_config.js'), loadAllExtensions()]);
    this.xds = new DynamicConfig(
      {
        clusters: this.clusters,
        listeners: this.listeners,
        drainTimeMs: this.options.drainTimeMs,
        staticClusterNames: new Set(this.config.clusters.map((c) => c.name)),
        staticListenerNames: new Set(this.config.listeners.map((l) => l.name)),
        staticRoutes: this.config.staticRoutes,
        stats: this.stats.root,
      },
      dyn,
      DynamicConfig.snapshotPathFor(dyn, this.options.xdsSnapshotPath),
    );
    if (dyn.ads) log.info({ controlPlane: dyn.ads.via, target: dyn.ads.target, delta: dyn.ads.delta, snapshot: this.xds.snapshotFile }, 'xds: connecting');
    this.xds.start(this.config.clusters.filter((c) => c.type === 'EDS'));
    await this.xds.whenInitialized();
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
    this.intercept.refresh();
  }

  /** Stop accepting, let connections finish for up to the drain time, then exit 0. */
  shutdown(drainMs = this.options.drainTimeMs): Promise<void> {
    this.shuttingDown ??= (async () => {
      this.hotRestart?.close();
      this.setPhase('DRAINING');
      this.xds?.stop();
      log.info({ drainMs, open: this.listeners.activeConnections }, 'shutting down: draining');
      await this.listeners.drain(drainMs);
      this.clusters.close();
      await this.admin?.close();
      await drainSinks(this.stats.root);
      // Last: the final flush carries what the drain counted.
      await this.statsFlusher?.stop();
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

  /**
   * The static config_dump entries, built once, by the first dump asked for: the config they show
   * never changes, and formatting the load time (an ISO date) at start-up brought V8's time zone
   * support (ICU's zone data and code, ~0.7 MB) into every idle proxy.
   */
  private buildDump(): Array<Record<string, unknown>> {
    const at = new Date(this.startedAt).toISOString();
    const bootstrap = this.options.redactedBootstrap as Record<string, any>;
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
    const dump = (this.dump ??= this.buildDump());
    const base = this.intercept.withDump(this.xds ? this.withDynamic(dump, this.xds) : dump);
    // SDS secrets (ADS or files), private keys redacted; a new array, the static dump is cached.
    const secrets = secretStore.dump();
    const configs = secrets ? [...base, { '@type': 'type.googleapis.com/envoy.admin.v3.SecretsConfigDump', ...secrets }] : base;
    if (!resource) return { configs };
    // ?resource=static_clusters etc.: the matching entries, flattened as Envoy does.
    return { configs: configs.flatMap((c) => ((c as Record<string, unknown>)[resource] as unknown[] | undefined) ?? []) };
  }

  /** The static dump with xDS resources added to the Clusters and Listeners entries, plus an Endpoints entry. */
  private withDynamic(dump: Array<Record<string, unknown>>, xds: DynamicConfig): Array<Record<string, unknown>> {
    const d = xds.dump();
    const out = dump.map((c) => {
      const t = String(c['@type']);
      if (t.endsWith('.ClustersConfigDump')) return { ...c, ...d.clusters };
      if (t.endsWith('.ListenersConfigDump')) return { ...c, ...d.listeners };
      return c;
    });
    out.push({ '@type': 'type.googleapis.com/envoy.admin.v3.EndpointsConfigDump', ...d.endpoints });
    if (d.routes.dynamic_route_configs.length) out.push({ '@type': 'type.googleapis.com/envoy.admin.v3.RoutesConfigDump', ...d.routes });
    return out;
  }

  readyDetail(): string | null {
    return this.xds?.readyDetail() ?? null;
  }

  onDemandClusters(): unknown {
    if (!this.xds) throw new Error('xDS is not configured (dynamic_resources)');
    return this.xds.onDemandStatus();
  }

  declareOnDemandClusters(names: readonly string[], remove: boolean): void {
    if (!this.xds) throw new Error('xDS is not configured (dynamic_resources)');
    this.xds.declareClusters(names, remove);
  }

  renderClusters(format: 'text' | 'json'): string {
    const all = [...this.clusters.all()];
    if (format === 'json') {
      return JSON.stringify(
        {
          cluster_statuses: all.map((c) => ({
            name: c.name,
            added_via_api: this.xds?.isDynamicCluster(c.name) ?? false,
            circuit_breakers: breakersJson(c.breakers),
            host_statuses: c.allHosts.map((h) => ({
              address: addressJson(h.address),
              stats: Object.entries(h.counters).map(([name, value]) => ({ name, value, type: name.endsWith('_active') ? 'GAUGE' : 'COUNTER' })),
              health_status: { eds_health_status: h.hasFlag(HealthFlag.FAILED_EDS_HEALTH) ? 'UNHEALTHY' : 'HEALTHY', failed_active_health_check: h.hasFlag(HealthFlag.FAILED_ACTIVE_HC), failed_outlier_check: h.hasFlag(HealthFlag.FAILED_OUTLIER_CHECK), failed_active_degraded_check: h.hasFlag(HealthFlag.DEGRADED_ACTIVE_HC), pending_active_hc: h.hasFlag(HealthFlag.PENDING_ACTIVE_HC) },
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
      out += breakersText(c.name, c.breakers);
      for (const h of c.allHosts) {
        const p = `${c.name}::${h.label}::`;
        for (const [k, v] of Object.entries(h.counters)) out += `${p}${k}::${v}\n`;
        out += `${p}hostname::${h.hostname}\n${p}health_flags::${h.healthFlagsText}\n`;
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
