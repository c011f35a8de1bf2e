import fs from 'node:fs';
import path from 'node:path';
import { decodeResource, newContext, parseConfigText } from '../../config/index.js';
import { ConfigError, type FieldError } from '../../errors.js';
import { log } from '../../log.js';
import type { FileSourceSpec } from '../bootstrap.js';
import { resourceName, shortType } from '../proto.js';
import { contentVersion, decodeAny, encodeAny } from '../resources.js';
import type { ReceivedResource, ResourceUpdate, UpdateResult } from './ads_client.js';

type Obj = Record<string, any>;

const DISCOVERY_RESPONSE = 'type.googleapis.com/envoy.service.discovery.v3.DiscoveryResponse';

/**
 * Renames come in bursts (a ConfigMap swap is several renames in the watched directory; `mv`
 * may be followed by a second event on some file systems): read once they settle.
 */
const SETTLE_MS = 50;

/** What a file subscription feeds: the same apply path as ADS responses. */
export interface FileUpdateSink {
  /** Applies the file's resources as one state-of-the-world update; problems = rejected. */
  applyFileUpdate(u: ResourceUpdate, file: string): Promise<UpdateResult>;
  /** The file could not be read as a DiscoveryResponse at all (Envoy's update_failure). */
  fileUpdateFailed(typeUrl: string, file: string, problems: readonly FieldError[]): void;
}

/** What one read of the file gave: an update to apply, or why there is none. */
export type FileRead =
  | { readonly ok: true; readonly update: ResourceUpdate; readonly where: ReadonlyMap<string, string> }
  | { readonly ok: false; readonly problems: readonly FieldError[] };

/**
 * Reads a filesystem-xDS file: a DiscoveryResponse in YAML or JSON (`version_info`,
 * `resources: [{"@type": ..., ...}]`). Problems of the whole file (syntax, unknown top-level
 * fields) fail the read; a resource that does not decode, or is of another type, is refused by
 * name while the others go on, exactly as a resource in an ADS response. Every resource goes
 * through the Any encoding ADS uses, so both sources hand the appliers the same values.
 */
export function readDiscoveryFile(file: string, typeUrl: string, previous: ReadonlySet<string>, text?: string): FileRead {
  let doc: unknown;
  try {
    doc = parseConfigText(text ?? fs.readFileSync(file, 'utf8'), file);
  } catch (err) {
    if (err instanceof ConfigError) return { ok: false, problems: err.errors };
    return { ok: false, problems: [{ path: '', message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` }] };
  }
  if (doc === null || doc === undefined) return { ok: false, problems: [{ path: '', message: 'is empty; expected a DiscoveryResponse (version_info, resources)' }] };
  if (typeof doc !== 'object' || Array.isArray(doc)) return { ok: false, problems: [{ path: '', message: 'expected a DiscoveryResponse mapping (version_info, resources)' }] };
  const { resources: rawList, ...top } = doc as Obj;
  const ctx = newContext('opaque');
  const head = decodeResource(DISCOVERY_RESPONSE, top, '', ctx) as Obj | null;
  if (rawList !== undefined && !Array.isArray(rawList)) ctx.errors.push({ path: 'resources', message: 'expected a list' });
  if (ctx.errors.length) return { ok: false, problems: ctx.errors };
  const versionInfo = String(head?.version_info ?? '');
  const type = shortType(typeUrl);
  const resources: ReceivedResource[] = [];
  const rejected: string[] = [];
  const decodeProblems: string[] = [];
  const where = new Map<string, string>();
  ((rawList ?? []) as unknown[]).forEach((raw, i) => {
    const at = `resources[${i}]`;
    const r = raw && typeof raw === 'object' ? (raw as Obj) : {};
    // The name as written, to refuse the right resource when the rest does not decode.
    const given = String(r.name ?? r.cluster_name ?? '');
    const refuse = (errors: readonly FieldError[], name: string) => {
      for (const e of errors) decodeProblems.push(`${type} "${name}": ${e.path ? `${e.path}: ` : ''}${e.message}`);
      if (name) {
        rejected.push(name);
        where.set(name, at);
      }
    };
    const rc = newContext('opaque');
    const value = decodeResource('google.protobuf.Any', raw, '', rc) as Obj | null;
    if (rc.errors.length || !value) return refuse(rc.errors.length ? rc.errors : [{ path: '', message: 'is not a resource' }], given);
    if (value['@type'] !== typeUrl) return refuse([{ path: '@type', message: `is ${String(value['@type'])}; this file is a ${type} source` }], given);
    const any = encodeAny(typeUrl, value);
    const d = decodeAny(any, typeUrl);
    const name = d.value ? resourceName(typeUrl, d.value) : given;
    if (!d.value || d.errors.length) return refuse(d.errors, name);
    if (where.has(name)) return refuse([{ path: 'name', message: `a second ${type} named "${name}" (also ${where.get(name)})` }], name);
    where.set(name, at);
    resources.push({ name, version: contentVersion(any), value: d.value, any, warnings: d.warnings });
  });
  // State of the world: what the previous version had and this one lacks is gone (a refused
  // resource is kept, as a NACKed one is over ADS).
  const names = new Set([...resources.map((r) => r.name), ...rejected]);
  const removed = [...previous].filter((n) => !names.has(n));
  return { ok: true, update: { typeUrl, resources, removed, full: false, versionInfo, rejected, decodeProblems }, where };
}

/**
 * Envoy's filesystem subscription for one type: the file is read at start, then re-read when a
 * file is moved into place. Each version is the whole state of its type.
 *
 * Like Envoy, it reacts to renames only (inotify IN_MOVED_TO there; fs.watch's `rename` here):
 * an in-place write (`>` or an editor saving over the file) is not picked up, because a reader
 * could see it half-written; Envoy documents "replace the file with mv" for that reason. Node
 * cannot tell a create from a move-in, so a new file created in place is read too, after
 * SETTLE_MS. A rename that leaves no file (the file moved away or deleted) changes nothing: the
 * configuration in use stays. With `watched_directory`, any rename in it re-reads the file (a
 * Kubernetes ConfigMap swaps a `..data` symlink, never the file itself).
 */
export class FileSubscription {
  private watcher: fs.FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  /** Names of the last version applied: what a new version that lacks them removes. */
  private names = new Set<string>();
  /** The content last accepted whole: the same bytes moved in again are not re-applied. */
  private accepted: string | null = null;
  private running: Promise<void> = Promise.resolve();

  constructor(
    readonly typeUrl: string,
    readonly source: FileSourceSpec,
    private readonly sink: FileUpdateSink,
  ) {}

  get file(): string {
    return this.source.path;
  }

  /** The resource names this subscription holds now. */
  held(): ReadonlySet<string> {
    return this.names;
  }

  /** Reads the file now and starts watching; resolves once the first read was applied (or failed). */
  start(): Promise<void> {
    this.watch();
    return this.reload(true);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.watcher?.close();
    this.watcher = null;
  }

  private watch(): void {
    const dir = this.source.watchDir ?? path.dirname(this.file);
    const base = path.basename(this.file);
    try {
      // Not persistent: a watch must not keep a process alive that has nothing else to do.
      this.watcher = fs.watch(dir, { persistent: false }, (event, name) => {
        if (event !== 'rename') return; // an in-place write: ignored, as in Envoy (see above)
        // Without watched_directory only this file's name counts (an unknown name: some
        // platforms omit it, so look).
        if (this.source.watchDir === null && name && name !== base) return;
        if (this.timer) this.timer.refresh();
        else {
          this.timer = setTimeout(() => {
            this.timer = null;
            void this.reload(false);
          }, SETTLE_MS);
          this.timer.unref();
        }
      });
      this.watcher.on('error', (err) => log.error({ file: this.file, dir, err: err.message }, 'xds: file watch failed; this file is no longer followed'));
    } catch (err) {
      log.error({ file: this.file, dir, err: (err as Error).message }, 'xds: cannot watch for file changes; this file is read only at start');
    }
  }

  private reload(initial: boolean): Promise<void> {
    // One read at a time: a rename during an apply is read after it.
    this.running = this.running.then(() => this.readAndApply(initial));
    return this.running;
  }

  private async readAndApply(initial: boolean): Promise<void> {
    if (this.stopped) return;
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // Moved away or deleted: Envoy sees no moved-to event for that, and keeps its config.
      if (!initial && code === 'ENOENT') {
        log.debug({ file: this.file }, 'xds: file is gone; the configuration it gave stays');
        return;
      }
      this.sink.fileUpdateFailed(this.typeUrl, this.file, [{ path: '', message: `cannot read: ${code ?? (err as Error).message}` }]);
      return;
    }
    if (text === this.accepted) return; // the same content moved in again
    const read = readDiscoveryFile(this.file, this.typeUrl, this.names, text);
    if (!read.ok) {
      this.sink.fileUpdateFailed(this.typeUrl, this.file, read.problems);
      return;
    }
    const u = read.update;
    const result = await this.sink.applyFileUpdate(u, this.file);
    for (const r of u.resources) if (!result.rejected.has(r.name) || this.names.has(r.name)) this.names.add(r.name);
    for (const n of u.removed) this.names.delete(n);
    const problems = [...u.decodeProblems, ...result.problems];
    if (problems.length) {
      this.accepted = null;
      log.error({ file: this.file, type: shortType(this.typeUrl), version: u.versionInfo, errors: problems.map((p) => locate(p, read.where)) }, 'xds: file update rejected; the previous configuration of the refused resources keeps serving');
      return;
    }
    this.accepted = text;
    log.info({ file: this.file, type: shortType(this.typeUrl), version: u.versionInfo, resources: u.resources.length, removed: u.removed.length }, 'xds: file update applied');
  }
}

/** A field path as the builders write them: `a.b[0].c(name)`, no spaces. */
const FIELD_PATH = /^([A-Za-z_@][\w@]*(?:\[\d+\]|\([^)\s]*\))*(?:\.[A-Za-z_@][\w@]*(?:\[\d+\]|\([^)\s]*\))*)*): ([\s\S]*)$/;

/**
 * `Listener "a": address.port_value: …` → `resources[2].address.port_value: … (Listener "a")`:
 * the field path in the file, as a config error names it.
 */
export function locate(problem: string, where: ReadonlyMap<string, string>): string {
  const m = /^(\S+ "((?:[^"\\]|\\.)*)"): ([\s\S]*)$/.exec(problem);
  const at = m ? where.get(m[2]!) : undefined;
  if (!m || !at) return problem;
  const f = FIELD_PATH.exec(m[3]!);
  return f ? `${at}.${f[1]}: ${f[2]} (${m[1]})` : `${at}: ${m[3]} (${m[1]})`;
}
