import { log } from '../../log.js';
import { checkSecret, secretSpecOf, type SdsSource } from '../../tls/context.js';
import { sdsKey, secretStore } from '../../tls/sds.js';
import type { ClusterManager } from '../../upstream/cluster_manager.js';
import { SDS_DELTA_METHOD, SDS_SOTW_METHOD, SECRET_TYPE, shortType } from '../proto.js';
import { AdsClient, type ResourceUpdate, type UpdateResult } from './ads_client.js';

type Obj = Record<string, any>;
type GrpcSource = Extract<SdsSource, { kind: 'grpc' }>;

/** The line format of every NACK: `Secret "name": field: message`. */
function line(name: string, path: string, message: string): string {
  return `${shortType(SECRET_TYPE)} "${name}": ${path ? `${path}: ` : ''}${message}`;
}

/**
 * Accepts a Secret update for `source` (ADS or a stand-alone SDS stream): a secret replaces the
 * previous one only when usable; the contexts using it rebuild on their own.
 */
export function applySecrets(u: ResourceUpdate, source: Exclude<SdsSource, { kind: 'file' }>): UpdateResult {
  const problems: string[] = [];
  const rejected = new Set<string>(u.rejected);
  const now = new Date().toISOString();
  for (const r of u.resources) {
    const key = sdsKey(r.name, source);
    secretStore.count(r.name, 'update_attempt');
    const cur = secretStore.get(key);
    // Envoy counts an unchanged resource as a successful update too.
    if (cur && JSON.stringify(cur.value) === JSON.stringify(r.value)) {
      secretStore.count(r.name, 'update_success');
      continue;
    }
    const errors = checkSecret(r.value);
    if (errors.length) {
      problems.push(...errors.map((e) => line(r.name, e.path, e.message)));
      rejected.add(r.name);
      secretStore.count(r.name, 'update_rejected');
      continue;
    }
    secretStore.count(r.name, 'update_success');
    const where = source.kind === 'grpc' ? `Secret "${r.name}" (from ${source.cluster})` : `Secret "${r.name}"`;
    secretStore.set(key, { name: r.name, version: r.version, value: r.value, any: r.any, spec: secretSpecOf(r.name, r.value, where), lastUpdated: now });
    log.info({ secret: r.name, version: r.version, ...(source.kind === 'grpc' ? { source: source.cluster } : {}) }, 'xds: secret applied');
  }
  for (const n of u.removed) secretStore.delete(sdsKey(n, source));
  return { problems, rejected };
}

/** A static cluster's first endpoint as a gRPC target (Istio's sds-grpc is a unix socket). */
function targetOf(clusters: ClusterManager, name: string): string | null {
  const c = clusters.get(name);
  const a = c?.spec.endpoints[0]?.address;
  if (!a) return null;
  if (a.family === 'unix') return `unix:${a.address}`;
  if (a.family === 'dns') return `dns:${a.address}:${a.port}`;
  return a.family === 'IPv6' ? `ipv6:[${a.address}]:${a.port}` : `ipv4:${a.address}:${a.port}`;
}

interface Stream {
  readonly client: AdsClient;
  readonly source: GrpcSource;
}

/**
 * The stand-alone SDS streams (`sds_config.api_config_source`), one per cluster and protocol,
 * opened when a listener or cluster first names a secret there and closed when none does.
 */
export class GrpcSdsSources {
  private readonly streams = new Map<string, Stream>();
  /** SDS clusters already reported as unusable (each sync retries them; say so once). */
  private readonly unresolved = new Set<string>();

  constructor(
    private readonly clusters: ClusterManager,
    private readonly node: Obj,
    private readonly backoff: { readonly baseMs: number; readonly maxMs: number },
    /** Called after secrets were stored, so waiting resources can start. */
    private readonly arrived: () => Promise<void>,
  ) {}

  /** Subscribes each source to exactly `names`; sources no longer named are closed. */
  sync(wanted: ReadonlyMap<string, { source: GrpcSource; names: Set<string> }>): void {
    for (const [id, s] of [...this.streams]) {
      if (wanted.has(id)) continue;
      s.client.stop();
      this.streams.delete(id);
    }
    for (const [id, w] of wanted) {
      let s = this.streams.get(id);
      if (!s) {
        const target = targetOf(this.clusters, w.source.cluster);
        if (!target) {
          // Retried on the next configuration change (the cluster may come by CDS).
          if (!this.unresolved.has(w.source.cluster)) log.error({ cluster: w.source.cluster }, 'sds: the SDS cluster is not a known cluster with an endpoint (yet); its secrets cannot arrive');
          this.unresolved.add(w.source.cluster);
          continue;
        }
        this.unresolved.delete(w.source.cluster);
        const source = w.source;
        const client = new AdsClient(
          { target, delta: source.delta, node: this.node, backoff: this.backoff, methods: { sotw: SDS_SOTW_METHOD, delta: SDS_DELTA_METHOD } },
          {
            onUpdate: async (u) => {
              if (u.typeUrl !== SECRET_TYPE) return { problems: [], rejected: new Set() };
              const r = applySecrets(u, source);
              await this.arrived();
              return r;
            },
            onConnection: (up, detail) => {
              if (!up) log.warn({ cluster: source.cluster, reason: detail }, 'sds: stream down');
            },
          },
        );
        s = { client, source };
        this.streams.set(id, s);
        log.info({ cluster: source.cluster, target, delta: source.delta }, 'sds: connecting');
        client.watch(SECRET_TYPE, w.names);
        client.start();
        continue;
      }
      s.client.watch(SECRET_TYPE, w.names);
    }
  }

  stop(): void {
    for (const s of this.streams.values()) s.client.stop();
    this.streams.clear();
  }
}
