import fs from 'node:fs';
import path from 'node:path';
import type { FieldError } from '../../../errors.js';
import { log } from '../../../log.js';
import { resourceFiles, type ResourceFiles } from '../../../config/resource_files.js';
import type { Counter, Scope } from '../../../observability/stats.js';
import { HttpRouteTable } from '../../../router/http_route_table.js';
import { RdsRouteTable } from './rds_table.js';

export { RdsRouteTable, type RouteLookup } from './rds_table.js';

/** Writers replace a file in steps (truncate, write; or several renames): read once they settle. */
const SETTLE_MS = 50;

/**
 * `rds.config_source.path_config_source` (filesystem xDS): the RouteConfiguration named
 * `route_config_name` in a file of Envoy's `{version_info, resources: [...]}` form (or any form
 * the xDS server's directory reader takes). Read and validated when the config is, so a bad file
 * fails start-up with its field paths; then watched: an update swaps the table the same way RDS
 * does, and a bad one is logged with its field paths and refused while the old table serves on.
 */
export class FileRdsTable extends RdsRouteTable {
  private text = '';
  private watcher: fs.FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stats: { update_attempt: Counter; update_success: Counter; update_rejected: Counter; config_reload: Counter } | null = null;

  constructor(
    name: string,
    readonly file: string,
    private readonly clusterNames: ReadonlySet<string>,
    private readonly watchDir: string | null,
  ) {
    super(name);
  }

  /** Reads the file; null when the table was (re)built or the content did not change, else the problems. */
  load(): FieldError[] | null {
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (err) {
      return [{ path: '', message: `cannot read ${this.file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` }];
    }
    if (text === this.text && this.current) return null;
    let read: ReturnType<ResourceFiles['readResourceFile']>;
    let routeType: string;
    try {
      const rf = resourceFiles();
      routeType = rf.ROUTE_TYPE;
      read = rf.readResourceFile(this.file);
    } catch (err) {
      return [{ path: '', message: (err as Error).message }];
    }
    const errors: FieldError[] = [...read.problems];
    const found = read.resources.filter((r) => r.type === routeType && r.name === this.name);
    if (!found.length && !errors.length) {
      const names = read.resources.filter((r) => r.type === routeType).map((r) => `"${r.name}"`);
      errors.push({ path: 'resources', message: `holds no RouteConfiguration named "${this.name}"${names.length ? ` (found ${names.join(', ')})` : ''}` });
    }
    if (found.length > 1) errors.push({ path: found[1]!.where, message: `a second RouteConfiguration named "${this.name}"` });
    if (errors.length) return errors;
    const table = HttpRouteTable.compile(found[0]!.value, found[0]!.where, this.clusterNames, errors);
    if (errors.length) return errors;
    this.current = table;
    this.text = text;
    return null;
  }

  start(scope: Scope): void {
    if (this.watcher) return;
    const s = scope.scope('rds').scope(this.name, 'envoy_rds_route_config');
    this.stats = { update_attempt: s.counter('update_attempt'), update_success: s.counter('update_success'), update_rejected: s.counter('update_rejected'), config_reload: s.counter('config_reload') };
    // The load at config time counts as the first accepted update, as Envoy counts its first read.
    this.stats.update_attempt.value++;
    this.stats.update_success.value++;
    // The directory, not the file: files are replaced by rename (Envoy's documented way), and a
    // watch on the old inode would never see the new one.
    const dir = this.watchDir ?? path.dirname(path.resolve(this.file));
    const base = path.basename(this.file);
    try {
      this.watcher = fs.watch(dir, { persistent: false }, (ev, name) => {
        // Moves only, as Envoy's filesystem subscriptions (and LDS/CDS/EDS files here): an
        // in-place write could be read half-done. Only this file (or an unknown name: some
        // platforms omit it) — and once it settles.
        if (ev !== 'rename' || (name && name !== base && this.watchDir === null) || this.timer) return;
        this.timer = setTimeout(() => {
          this.timer = null;
          this.reload();
        }, SETTLE_MS);
        this.timer.unref();
      });
      this.watcher.on('error', (err) => log.warn({ file: this.file, err: err.message }, 'rds: file watch failed; route updates need a restart'));
    } catch (err) {
      log.warn({ file: this.file, err: (err as Error).message }, 'rds: cannot watch the route file; route updates need a restart');
    }
  }

  private reload(): void {
    const before = this.current;
    const st = this.stats!;
    const problems = this.load();
    if (problems) {
      st.update_attempt.value++;
      st.update_rejected.value++;
      for (const p of problems) log.error({ file: this.file, route_config: this.name, field: p.path }, `rds: route file update rejected; the previous routes keep serving: ${p.message}`);
      return;
    }
    if (this.current === before) return; // a touch, or a rename that left the content as it was
    st.update_attempt.value++;
    st.update_success.value++;
    st.config_reload.value++;
    log.info({ file: this.file, route_config: this.name }, 'rds: route configuration reloaded from file');
  }
}

/**
 * One table (and one watch) per file and route name for the life of the process, however many
 * listeners name it or how often LDS replaces them (nothing tells a filter its listener is gone).
 * Each caller's parse still reads and validates the file against its own cluster names.
 */
const FILE_TABLES = new Map<string, FileRdsTable>();

export function fileRdsTable(name: string, file: string, clusterNames: ReadonlySet<string>, watchDir: string | null): { table: FileRdsTable | null; problems: FieldError[] | null } {
  const probe = new FileRdsTable(name, file, clusterNames, watchDir);
  const problems = probe.load();
  if (problems) return { table: null, problems };
  const key = `${path.resolve(file)}\0${name}\0${watchDir ?? ''}`;
  const shared = FILE_TABLES.get(key);
  if (shared) return { table: shared, problems: null };
  FILE_TABLES.set(key, probe);
  return { table: probe, problems: null };
}
