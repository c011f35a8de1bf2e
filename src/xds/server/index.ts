import fs from 'node:fs';
import { log } from '../../log.js';
import { shortType } from '../proto.js';
import { AdsServer, type Snapshot } from './ads_server.js';
import { IstioState } from './istio/index.js';
import { loadResourceDir, type LoadOptions, type LoadResult, type ResourceSet } from './resource_dir.js';

export { AdsServer } from './ads_server.js';
export { loadResourceDir } from './resource_dir.js';

export interface XdsServerOptions {
  readonly dir: string;
  readonly host: string;
  readonly port: number;
  /** Quiet period after a change before the directory is re-read (editors write in bursts). */
  readonly debounceMs: number;
  /** Longest a stream of changes can hold a push back (default 1000 ms); caps debounceMs. */
  readonly debounceMaxMs?: number;
  /** Bind address of the outbound listeners translated from Istio objects (default 0.0.0.0). */
  readonly outboundBind?: string;
  /** Also serve the `<host>:<port>` api_listeners proxyless gRPC clients ask for. */
  readonly grpcListeners?: boolean;
  /** How long a push step waits for a client's ACK before the next step goes anyway (default 5000). */
  readonly confirmMs?: number;
  readonly addressPath?: string;
  readonly load?: LoadOptions;
}

/** Same resources, same versions: a reload that changed nothing keeps the version. */
function sameSet(a: ResourceSet, b: ResourceSet): boolean {
  const flat = (s: ResourceSet) =>
    [...s.entries()]
      .flatMap(([t, m]) => [...m.values()].map((r) => `${t}|${r.name}|${r.version}`))
      .sort()
      .join('\n');
  return flat(a) === flat(b);
}

function report(r: LoadResult): void {
  for (const f of r.files) {
    log.info({ file: f.file, kind: f.kind, resources: f.resources }, 'xds-server: read file');
    for (const p of f.problems) log.warn({ file: f.file, path: p.path }, p.message);
  }
  const counts = Object.fromEntries([...r.resources.entries()].map(([t, m]) => [shortType(t), m.size]));
  log.info({ resources: counts }, 'xds-server: resources loaded');
}

/**
 * `strait xds-server`: serves a directory of Envoy resources over ADS and pushes a new version
 * whenever the directory changes. Returns a handle whose close() stops watching and serving.
 */
export async function runXdsServer(o: XdsServerOptions): Promise<{ port: number; server: AdsServer; close(): Promise<void> }> {
  if (!fs.existsSync(o.dir) || !fs.statSync(o.dir).isDirectory()) throw new Error(`--dir ${o.dir} is not a directory`);
  const server = new AdsServer();
  if (o.confirmMs !== undefined) server.confirmMs = o.confirmMs;
  let generation = 1;
  const load: LoadOptions = { ...o.load, istio: new IstioState({ outboundBind: o.outboundBind ?? '0.0.0.0', grpcListeners: o.grpcListeners }) };
  const first = loadResourceDir(o.dir, load);
  report(first);
  server.update({ version: String(generation), resources: first.resources } satisfies Snapshot);

  let lastProblems = JSON.stringify(first.files.map((f) => [f.file, f.problems]));
  let timer: NodeJS.Timeout | null = null;
  // When the first change of a burst arrived: a directory that never goes quiet still gets
  // pushed every debounceMaxMs.
  let burstStart = 0;
  const maxWait = o.debounceMaxMs ?? 1000;
  const reload = () => {
    timer = null;
    burstStart = 0;
    let r: LoadResult;
    try {
      r = loadResourceDir(o.dir, load);
    } catch (err) {
      // The directory may be mid-rename; the next event reloads again.
      log.warn({ err: (err as Error).message }, 'xds-server: cannot read the directory; keeping the current version');
      return;
    }
    // A broken file whose last good version keeps serving changes no resource, yet its
    // problems are news: report whenever they differ from the last report.
    const problems = JSON.stringify(r.files.map((f) => [f.file, f.problems]));
    const same = sameSet(r.resources, server.snapshot.resources);
    if (same && problems === lastProblems) return;
    lastProblems = problems;
    report(r);
    if (same) return;
    generation++;
    log.info({ version: generation }, 'xds-server: pushing a new version');
    server.update({ version: String(generation), resources: r.resources });
  };
  const schedule = () => {
    const now = Date.now();
    if (!burstStart) burstStart = now;
    if (timer) clearTimeout(timer);
    timer = setTimeout(reload, Math.max(0, Math.min(o.debounceMs, burstStart + maxWait - now)));
  };
  const watcher = fs.watch(o.dir, { recursive: true }, schedule);
  // Node 20's recursive watcher on Linux loses track of a file after it has been replaced by a
  // rename more than once (the atomic write every deploy tool does); a plain watch of the
  // directory itself sees every rename into it, so top-level files never go unnoticed.
  const topWatcher = fs.watch(o.dir, schedule);

  const port = await server.listen(o.host, o.port);
  log.info({ address: `${o.host}:${port}`, dir: o.dir }, 'xds-server listening');
  if (o.addressPath) fs.writeFileSync(o.addressPath, `${o.host}:${port}`);
  return {
    port,
    server,
    async close() {
      watcher.close();
      topWatcher.close();
      if (timer) clearTimeout(timer);
      await server.close();
    },
  };
}
