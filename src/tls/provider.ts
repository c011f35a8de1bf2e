import fs from 'node:fs';
import path from 'node:path';
import type tls from 'node:tls';
import { log } from '../log.js';
import type { StatsOf } from '../observability/stats.js';
import { buildSecureContext, filesOf, MaterialError, readMaterials, type Materials, type TlsContextSpec } from './context.js';
import { nodeCrypto } from './lazy_builtins.js';
import { sdsKey, secretStore } from './sds.js';
import type { SSL_STATS } from './stats.js';

/** Changes usually come in bursts (certificate, then key; or a Kubernetes symlink swap). */
const SETTLE_MS = 100;

function digest(m: Materials): string {
  const h = nodeCrypto().createHash('sha256');
  for (const c of m.certs) h.update(c.chain).update('\0').update(c.key).update('\0').update(c.password ?? '').update('\0');
  h.update(m.ca ?? '').update('\0').update(m.crl ?? '');
  return h.digest('hex');
}

/**
 * The live TLS context of one listener filter chain or cluster. New handshakes take
 * `secureContext`; when a certificate file changes, the context is rebuilt and swapped in —
 * connections already up keep theirs. A change that does not load (half-written file, key
 * that no longer matches) leaves the previous context serving and is logged and counted.
 */
export class TlsContextProvider {
  /** Null while an SDS secret from a control plane has not arrived (handshakes are refused). */
  private ctx: tls.SecureContext | null;
  private hash: string;
  private current: TlsContextSpec;
  private readonly watchers: fs.FSWatcher[] = [];
  private timer: NodeJS.Timeout | null = null;
  /** SDS: unsubscribe callbacks and the file sources held. */
  private readonly unsubscribe: Array<() => void> = [];
  private readonly files: string[] = [];
  private sdsPending = false;

  /** Throws MaterialError when the material cannot be loaded now (or an SDS secret is missing). */
  constructor(
    private readonly template: TlsContextSpec,
    private readonly stats: StatsOf<typeof SSL_STATS>,
  ) {
    try {
      if (template.sds) {
        for (const r of template.sds.refs) {
          if (r.source.kind !== 'file') continue;
          secretStore.acquireFile(r.source, r.field);
          this.files.push(r.source.path);
        }
      }
      // Only a subscribed secret can still come; anything else (static config naming an ADS
      // secret) fails here with the reference's path.
      if (template.sds && !secretStore.remoteReady(template.sds.refs) && secretStore.subscribed(template.sds.refs)) {
        // Envoy's rule once SDS's initial fetch timed out: the resource runs, and its TLS
        // connections fail until the secret comes (then the subscription below builds it).
        this.current = template;
        this.ctx = null;
        this.hash = '';
      } else {
        this.current = this.resolve();
        const m = readMaterials(this.current);
        this.ctx = buildSecureContext(this.current, m);
        this.hash = digest(m);
      }
    } catch (err) {
      this.close();
      throw err;
    }
    if (template.sds) {
      const keys = new Set(template.sds.refs.map((r) => sdsKey(r.name, r.source)));
      for (const k of keys) this.unsubscribe.push(secretStore.subscribe(k, () => this.onSecret()));
    }
  }

  /** The full spec in force: the template itself, or the template with its SDS secrets resolved. */
  get spec(): TlsContextSpec {
    return this.current;
  }

  /** Null while an SDS secret is missing: callers refuse the connection. */
  get secureContext(): tls.SecureContext | null {
    return this.ctx;
  }

  private resolve(): TlsContextSpec {
    const sds = this.template.sds;
    if (!sds) return this.template;
    const r = sds.resolve((ref) => secretStore.lookup(ref));
    if (!r.spec) {
      const e = r.errors[0];
      const why = r.errors.map((x) => `${x.path}: ${x.message}`).join('; ') || 'SDS secrets cannot be resolved';
      const hint = secretStore.subscribed(sds.refs) ? '' : ' (no SDS source follows this secret)';
      throw new MaterialError(e?.path ?? this.template.where, why + hint);
    }
    return r.spec;
  }

  /** A secret this context uses changed: rebuild once the burst (certificate, then CA) is over. */
  private onSecret(): void {
    if (this.sdsPending) return;
    this.sdsPending = true;
    setImmediate(() => {
      this.sdsPending = false;
      this.reload();
    });
  }

  /**
   * Watches the directories of the files (not the files: editors and Kubernetes replace files
   * by rename, which a watch on the old inode never sees).
   */
  watch(): void {
    const dirs = new Set(filesOf(this.current).map((f) => path.dirname(path.resolve(f))));
    for (const dir of dirs) {
      try {
        const w = fs.watch(dir, { persistent: false }, () => this.schedule());
        w.on('error', (err) => log.warn({ dir, err: err.message }, 'certificate directory watch failed'));
        this.watchers.push(w);
      } catch (err) {
        log.warn({ dir, err: (err as Error).message }, 'cannot watch certificate directory; rotation needs a restart');
      }
    }
  }

  private schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.reload();
    }, SETTLE_MS);
    this.timer.unref();
  }

  /** Re-reads the material (and SDS secrets); swaps the context in when it changed and loads. Returns whether it swapped. */
  reload(): boolean {
    // Some secrets in, others still to come (certificate before CA): wait for the rest.
    if (this.template.sds && !secretStore.remoteReady(this.template.sds.refs)) return false;
    let spec: TlsContextSpec;
    let m: Materials;
    let next: tls.SecureContext;
    try {
      spec = this.resolve();
      m = readMaterials(spec);
      const h = digest(m);
      if (h === this.hash) return false;
      next = buildSecureContext(spec, m);
      this.hash = h;
    } catch (err) {
      this.stats.context_reload_error.value++;
      const field = err instanceof MaterialError ? err.field : this.template.where;
      log.error({ field, err: (err as Error).message }, 'certificate update rejected; the previous certificate keeps serving');
      return false;
    }
    // Spec and context change together so a handshake verifies with the rules of its context.
    this.current = spec;
    this.ctx = next;
    this.stats.context_reload.value++;
    log.info({ context: this.template.where }, 'TLS certificates reloaded');
    return true;
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (const w of this.watchers) w.close();
    this.watchers.length = 0;
    for (const u of this.unsubscribe) u();
    this.unsubscribe.length = 0;
    for (const f of this.files) secretStore.releaseFile(f);
    this.files.length = 0;
  }
}
