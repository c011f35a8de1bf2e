import fs from 'node:fs';
import path from 'node:path';
import { resourceFiles, type ResourceFiles } from '../config/resource_files.js';
import type { FieldError } from '../errors.js';
import { log } from '../log.js';
import type { Scope } from '../observability/stats.js';
import type { AnyMsg } from '../xds/proto.js';
import { nodeCrypto } from './lazy_builtins.js';
import { checkSecret, MaterialError, secretSpecOf, type SdsRef, type SdsSource, type SecretSpec } from './context.js';

type Obj = Record<string, any>;

/** File changes come in bursts (a Kubernetes secret mount swaps a symlink, then removes the old dir). */
const SETTLE_MS = 100;
const SECRET_PROTO = 'envoy.extensions.transport_sockets.tls.v3.Secret';

/** A secret delivered over SDS (ADS or a file), already checked to be usable. */
export interface DynamicSecret {
  readonly name: string;
  readonly version: string;
  /** The normalized Secret resource (private keys included: never dump it unredacted). */
  readonly value: Obj;
  readonly spec: SecretSpec;
  readonly lastUpdated: string;
  /** ADS: the resource as received, for the persisted snapshot. */
  readonly any?: AnyMsg;
}

/** The store key of a reference: the same name from two sources is two secrets. */
export function sdsKey(name: string, source: SdsSource): string {
  if (source.kind === 'ads') return `ads:${name}`;
  if (source.kind === 'grpc') return `grpc:${source.cluster}#${name}`;
  return `file:${source.path}#${name}`;
}

interface FileSource {
  refs: number;
  watcher: fs.FSWatcher | null;
  timer: NodeJS.Timeout | null;
  /** The file's bytes last applied, to skip events that changed nothing. */
  last: string;
}

/**
 * The secrets TLS contexts take from SDS. The ADS client puts what the control plane sends;
 * file sources are read here and watched for rotation. TLS context providers subscribe by key
 * and rebuild their SecureContext when a secret they use changes. A secret that cannot be used
 * never gets in: the previous one stays, and the caller (NACK, log) says why.
 */
export class SecretStore {
  private readonly secrets = new Map<string, DynamicSecret>();
  private readonly subscribers = new Map<string, Set<() => void>>();
  private readonly files = new Map<string, FileSource>();
  /** Secrets (key → name) from a control plane that some resource waits for: warming until they arrive. */
  private wanted: ReadonlyMap<string, string> = new Map();
  /** `sds.<secret name>.*`, in the serving process's stats; null until a server attaches it. */
  private scope: Scope | null = null;

  /** Envoy's per-secret counters go to `root` from now on (one server per process). */
  useStats(root: Scope): void {
    this.scope = root.scope('sds');
  }

  /** Envoy's subscription counters for one secret (`sds.<name>.update_attempt` …). */
  count(name: string, stat: 'update_attempt' | 'update_success' | 'update_rejected'): void {
    // Updates are rare: resolving the counter by name each time keeps no per-secret state here.
    if (this.scope) this.scope.scope(name).counter(stat).value++;
  }

  get(key: string): DynamicSecret | undefined {
    return this.secrets.get(key);
  }

  lookup(ref: SdsRef): SecretSpec | undefined {
    return this.secrets.get(sdsKey(ref.name, ref.source))?.spec;
  }

  /** Whether every secret the references name from a control plane is here (file ones are read on use). */
  remoteReady(refs: readonly SdsRef[]): boolean {
    return refs.every((r) => r.source.kind === 'file' || this.secrets.has(sdsKey(r.name, r.source)));
  }

  /** Stores a checked secret and tells the contexts using it. */
  set(key: string, s: DynamicSecret): void {
    this.secrets.set(key, s);
    const subs = this.subscribers.get(key);
    if (subs) for (const cb of [...subs]) cb();
  }

  /** The control plane removed it: contexts built from it keep serving; nothing new can use it. */
  delete(key: string): void {
    this.secrets.delete(key);
  }

  subscribe(key: string, cb: () => void): () => void {
    let subs = this.subscribers.get(key);
    if (!subs) this.subscribers.set(key, (subs = new Set()));
    subs.add(cb);
    return () => {
      subs.delete(cb);
      if (subs.size === 0) this.subscribers.delete(key);
    };
  }

  /** The secrets received over ADS (for the persisted snapshot). */
  adsSecrets(): DynamicSecret[] {
    return [...this.secrets.entries()].filter(([k]) => k.startsWith('ads:')).map(([, s]) => s);
  }

  /** Whether the control-plane secrets of these references are subscribed (so they can still come). */
  subscribed(refs: readonly SdsRef[]): boolean {
    return refs.every((r) => r.source.kind === 'file' || this.wanted.has(sdsKey(r.name, r.source)));
  }

  setWanted(wanted: ReadonlyMap<string, string>): void {
    this.wanted = wanted;
  }

  /**
   * Starts using a file source: reads it now (so a context can be built at once) and watches it.
   * Throws when the file cannot be read or holds no usable secret; `field` names the reference.
   */
  acquireFile(source: Extract<SdsSource, { kind: 'file' }>, field: string): void {
    const cur = this.files.get(source.path);
    if (cur) {
      cur.refs++;
      return;
    }
    const f: FileSource = { refs: 1, watcher: null, timer: null, last: '' };
    const problems = this.readFile(source.path, f);
    if (problems) {
      const p = problems[0]!;
      // The field goes into the text too: start-up errors show only the message.
      throw new MaterialError(`${field}.sds_config`, `${field}.sds_config: ${source.path}: ${p.path ? `${p.path}: ` : ''}${p.message}`);
    }
    this.files.set(source.path, f);
    // The directory, not the file: a mounted secret is replaced by rename, which a watch on the
    // old inode never sees.
    const dir = source.watchDir ?? path.dirname(path.resolve(source.path));
    try {
      f.watcher = fs.watch(dir, { persistent: false }, () => {
        if (f.timer) return;
        f.timer = setTimeout(() => {
          f.timer = null;
          this.reloadFile(source.path, f);
        }, SETTLE_MS);
        f.timer.unref();
      });
      f.watcher.on('error', (err) => log.warn({ dir, err: err.message }, 'sds: file watch failed'));
    } catch (err) {
      log.warn({ dir, err: (err as Error).message }, 'sds: cannot watch the secret file; rotation needs a restart');
    }
  }

  releaseFile(file: string): void {
    const f = this.files.get(file);
    if (!f || --f.refs > 0) return;
    f.watcher?.close();
    if (f.timer) clearTimeout(f.timer);
    this.files.delete(file);
    for (const k of [...this.secrets.keys()]) if (k.startsWith(`file:${file}#`)) this.secrets.delete(k);
  }

  private reloadFile(file: string, f: FileSource): void {
    if (this.files.get(file) !== f) return;
    const problems = this.readFile(file, f);
    if (problems) {
      // The secrets this file serves keep their previous value: each counts the refused update.
      for (const k of this.secrets.keys()) {
        if (!k.startsWith(`file:${file}#`)) continue;
        const name = k.slice(file.length + 6);
        this.count(name, 'update_attempt');
        this.count(name, 'update_rejected');
      }
      for (const p of problems) log.error({ file, field: p.path }, `sds: secret file update rejected; the previous secret keeps serving: ${p.message}`);
    }
  }

  /**
   * Reads a file source and stores each of its secrets; null when all went in (or nothing
   * changed), else the problems (and nothing of this read is stored).
   */
  private readFile(file: string, f: FileSource): FieldError[] | null {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      return [{ path: '', message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` }];
    }
    if (text === f.last) return null;
    let read: ReturnType<ResourceFiles['readResourceFile']>;
    let secretType: string;
    try {
      const rf = resourceFiles();
      secretType = rf.SECRET_TYPE;
      read = rf.readResourceFile(file);
    } catch (err) {
      return [{ path: '', message: (err as Error).message }];
    }
    const problems = [...read.problems];
    const secrets = read.resources.filter((r) => r.type === secretType);
    if (!secrets.length && !problems.length) problems.push({ path: 'resources', message: 'holds no Secret' });
    const ok: DynamicSecret[] = [];
    const now = new Date().toISOString();
    // A version that changes with the content, as a control plane would give.
    const version = nodeCrypto().createHash('sha256').update(text).digest('hex').slice(0, 16);
    for (const r of secrets) {
      const errs = checkSecret(r.value);
      if (errs.length) {
        problems.push(...errs.map((e) => ({ path: `${r.where}${e.path ? `.${e.path}` : ''}`, message: `secret "${r.name}": ${e.message}` })));
        continue;
      }
      ok.push({ name: r.name, version, value: r.value, spec: secretSpecOf(r.name, r.value, `${file}: secret "${r.name}"`), lastUpdated: now });
    }
    if (problems.length) return problems;
    f.last = text;
    for (const s of ok) {
      this.count(s.name, 'update_attempt');
      this.count(s.name, 'update_success');
      this.set(`file:${file}#${s.name}`, s);
    }
    log.info({ file, secrets: ok.map((s) => s.name) }, 'sds: secrets loaded from file');
    return null;
  }

  /** Envoy's SecretsConfigDump entries, private keys redacted. */
  dump(): { dynamic_active_secrets: Obj[]; dynamic_warming_secrets: Obj[] } | null {
    if (!this.secrets.size && !this.wanted.size) return null;
    // Loaded with the first secret: by an SDS file source or the xDS client.
    const { redact, SECRET_TYPE } = resourceFiles();
    const active = [...this.secrets.values()].map((s) => ({
      name: s.name,
      version_info: s.version,
      last_updated: s.lastUpdated,
      secret: { '@type': SECRET_TYPE, ...(redact(SECRET_PROTO, s.value) as Obj) },
    }));
    const warming = [...this.wanted].filter(([k]) => !this.secrets.has(k)).map(([, name]) => ({ name, secret: { '@type': SECRET_TYPE, name } }));
    return { dynamic_active_secrets: active, dynamic_warming_secrets: warming };
  }
}

/** One store per process: providers (listeners, clusters) and the ADS client meet here. */
export const secretStore = new SecretStore();
