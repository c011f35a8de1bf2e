import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type tls from 'node:tls';
import { log } from '../log.js';
import type { StatsOf } from '../observability/stats.js';
import { buildSecureContext, filesOf, MaterialError, readMaterials, type Materials, type TlsContextSpec } from './context.js';
import type { SSL_STATS } from './stats.js';

/** Changes usually come in bursts (certificate, then key; or a Kubernetes symlink swap). */
const SETTLE_MS = 100;

function digest(m: Materials): string {
  const h = crypto.createHash('sha256');
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
  private ctx: tls.SecureContext;
  private hash: string;
  private readonly watchers: fs.FSWatcher[] = [];
  private timer: NodeJS.Timeout | null = null;

  /** Throws MaterialError when the material cannot be loaded now. */
  constructor(
    readonly spec: TlsContextSpec,
    private readonly stats: StatsOf<typeof SSL_STATS>,
  ) {
    const m = readMaterials(spec);
    this.ctx = buildSecureContext(spec, m);
    this.hash = digest(m);
  }

  get secureContext(): tls.SecureContext {
    return this.ctx;
  }

  /**
   * Watches the directories of the files (not the files: editors and Kubernetes replace files
   * by rename, which a watch on the old inode never sees).
   */
  watch(): void {
    const dirs = new Set(filesOf(this.spec).map((f) => path.dirname(path.resolve(f))));
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

  /** Re-reads the material; swaps the context in when it changed and loads. Returns whether it swapped. */
  reload(): boolean {
    let m: Materials;
    let next: tls.SecureContext;
    try {
      m = readMaterials(this.spec);
      const h = digest(m);
      if (h === this.hash) return false;
      next = buildSecureContext(this.spec, m);
      this.hash = h;
    } catch (err) {
      this.stats.context_reload_error.value++;
      const field = err instanceof MaterialError ? err.field : this.spec.where;
      log.error({ field, err: (err as Error).message }, 'certificate update rejected; the previous certificate keeps serving');
      return false;
    }
    this.ctx = next;
    this.stats.context_reload.value++;
    log.info({ context: this.spec.where }, 'TLS certificates reloaded');
    return true;
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (const w of this.watchers) w.close();
    this.watchers.length = 0;
  }
}
