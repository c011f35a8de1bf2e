import fs from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { decodeResource, newContext, typeFromUrl } from '../../config/index.js';
import type { FieldError } from '../../errors.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE, EXTENSION_CONFIG_TYPE, LISTENER_TYPE, resourceName, ROUTE_TYPE, SECRET_TYPE, TYPE_PREFIX, type AnyMsg } from '../proto.js';
import { contentVersion, encodeAny } from '../resources.js';
import { IstioState, isIstioDoc, toIstioDoc, type IstioDoc } from './istio/index.js';

type Obj = Record<string, any>;

/** One resource ready to serve: its Any, and a version that changes with its bytes. */
export interface ServedResource {
  readonly name: string;
  readonly version: string;
  readonly any: AnyMsg;
  /** Where it came from, for logs: `file.yaml: resources[2]`. */
  readonly origin: string;
}

/** Every resource of the directory, by type URL then name. */
export type ResourceSet = ReadonlyMap<string, ReadonlyMap<string, ServedResource>>;

export interface FileReport {
  readonly file: string;
  /** What the file was read as: `resource`, `resource list`, `config_dump`, `bootstrap`, or `skipped`. */
  readonly kind: string;
  readonly resources: number;
  readonly problems: readonly FieldError[];
}

export interface LoadResult {
  readonly resources: ResourceSet;
  readonly files: readonly FileReport[];
}

/** config_dump sections: which list holds which resource type, and where the resource sits in each entry. */
const DUMP_SECTIONS: Record<string, Array<{ list: string; at: string[]; type: string }>> = {
  'envoy.admin.v3.ClustersConfigDump': [
    { list: 'static_clusters', at: ['cluster'], type: CLUSTER_TYPE },
    { list: 'dynamic_active_clusters', at: ['cluster'], type: CLUSTER_TYPE },
    { list: 'dynamic_warming_clusters', at: ['cluster'], type: CLUSTER_TYPE },
  ],
  'envoy.admin.v3.ListenersConfigDump': [
    { list: 'static_listeners', at: ['listener'], type: LISTENER_TYPE },
    { list: 'dynamic_listeners', at: ['active_state', 'listener'], type: LISTENER_TYPE },
  ],
  'envoy.admin.v3.RoutesConfigDump': [
    { list: 'static_route_configs', at: ['route_config'], type: ROUTE_TYPE },
    { list: 'dynamic_route_configs', at: ['route_config'], type: ROUTE_TYPE },
  ],
  'envoy.admin.v3.EndpointsConfigDump': [
    { list: 'static_endpoint_configs', at: ['endpoint_config'], type: ENDPOINT_TYPE },
    { list: 'dynamic_endpoint_configs', at: ['endpoint_config'], type: ENDPOINT_TYPE },
  ],
  'envoy.admin.v3.SecretsConfigDump': [
    { list: 'static_secrets', at: ['secret'], type: SECRET_TYPE },
    { list: 'dynamic_active_secrets', at: ['secret'], type: SECRET_TYPE },
    { list: 'dynamic_warming_secrets', at: ['secret'], type: SECRET_TYPE },
  ],
  'envoy.admin.v3.EcdsConfigDump': [{ list: 'ecds_filters', at: ['ecds_filter'], type: EXTENSION_CONFIG_TYPE }],
};

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function typeName(url: string): string {
  return url.slice(url.lastIndexOf('/') + 1);
}

/**
 * Every file under `dir` (recursively; dot-files — editors' and atomic writers' temporaries —
 * skipped), sorted for a stable order. Files that are not configuration are reported, not hidden.
 */
export function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.name.startsWith('.')) continue;
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && !e.name.endsWith('~')) out.push(p);
    }
  };
  walk(dir);
  return out.sort();
}

/** A raw (not yet decoded) resource found in a file. */
interface Found {
  readonly type: string;
  readonly raw: unknown;
  readonly where: string;
}

/** Classifies one parsed document and lists the resources in it. */
function findResources(doc: unknown, where: string): { kind: string; found: Found[]; problems: FieldError[] } {
  const found: Found[] = [];
  const problems: FieldError[] = [];
  if (!isObj(doc)) return { kind: 'skipped', found, problems: [{ path: where.replace(/\.$/, '') || '(root)', message: 'neither YAML nor JSON with a mapping at the top; nothing to serve' }] };

  if (typeof doc.apiVersion === 'string' && typeof doc.kind === 'string') {
    // Istio's ServiceEntry, DestinationRule and VirtualService are taken before this; others are not translated.
    return { kind: 'skipped', found, problems: [{ path: where.replace(/\.$/, '') || '(root)', message: `Kubernetes object ${doc.apiVersion} ${doc.kind} is not translated to xDS (translated: networking.istio.io ServiceEntry, DestinationRule, VirtualService); skipped` }] };
  }
  if (Array.isArray(doc.resources) || ('version_info' in doc && !('@type' in doc) && Object.keys(doc).every((k) => k === 'version_info' || k === 'resources'))) {
    // Envoy's filesystem subscription format: {version_info?, resources: [Any...]}.
    ((doc.resources ?? []) as unknown[]).forEach((r, i) => {
      const url = isObj(r) ? r['@type'] : undefined;
      if (typeof url !== 'string') problems.push({ path: `${where}resources[${i}]`, message: 'needs "@type"' });
      else found.push({ type: url, raw: r, where: `${where}resources[${i}]` });
    });
    return { kind: 'resource list', found, problems };
  }
  if (Array.isArray(doc.configs)) {
    doc.configs.forEach((c: unknown, i: number) => {
      const cw = `${where}configs[${i}]`;
      const url = isObj(c) ? c['@type'] : undefined;
      const name = typeof url === 'string' ? typeName(url) : '';
      if (name === 'envoy.admin.v3.BootstrapConfigDump') {
        found.push(...staticResources((c as Obj).bootstrap?.static_resources, `${cw}.bootstrap.static_resources`));
        return;
      }
      const sections = DUMP_SECTIONS[name];
      if (!sections) {
        if (name !== 'envoy.admin.v3.ScopedRoutesConfigDump' || Object.keys(c as Obj).length > 1) {
          problems.push({ path: cw, message: `config_dump section ${name || '(no @type)'} is not served; skipped` });
        }
        return;
      }
      for (const s of sections) {
        (((c as Obj)[s.list] ?? []) as unknown[]).forEach((e, j) => {
          let r: unknown = e;
          for (const k of s.at) r = isObj(r) ? r[k] : undefined;
          // A dynamic listener may exist only in warming or draining state.
          if (r === undefined && s.list === 'dynamic_listeners' && isObj(e)) r = (e.warming_state ?? e.draining_state)?.listener;
          if (r !== undefined) found.push({ type: s.type, raw: r, where: `${cw}.${s.list}[${j}]` });
        });
      }
    });
    return { kind: 'config_dump', found, problems };
  }
  if (typeof doc['@type'] === 'string') {
    found.push({ type: doc['@type'], raw: doc, where: where || '(root)' });
    return { kind: 'resource', found, problems };
  }
  if (isObj(doc.bootstrap) && !doc.static_resources) {
    return findResources(doc.bootstrap, `${where}bootstrap.`);
  }
  if (doc.static_resources || doc.dynamic_resources || doc.node || doc.admin) {
    // A bootstrap: its static resources are what it would run, so serve those.
    found.push(...staticResources(doc.static_resources, `${where}static_resources`));
    return { kind: 'bootstrap', found, problems };
  }
  return { kind: 'skipped', found, problems: [{ path: where || '(root)', message: 'neither a resource (@type), a resource list (resources:), a config_dump nor a bootstrap; skipped' }] };
}

function staticResources(sr: unknown, where: string): Found[] {
  if (!isObj(sr)) return [];
  const out: Found[] = [];
  const add = (list: string, type: string) =>
    ((sr[list] ?? []) as unknown[]).forEach((r, i) => out.push({ type, raw: r, where: `${where}.${list}[${i}]` }));
  add('clusters', CLUSTER_TYPE);
  add('listeners', LISTENER_TYPE);
  add('secrets', SECRET_TYPE);
  return out;
}

/** Parses one file into documents: JSON, or YAML with `---` separated documents. */
function parseFile(file: string): { docs: unknown[]; problems: FieldError[] } {
  const text = fs.readFileSync(file, 'utf8');
  if (/\{\{[^}]*\}\}/.test(text)) {
    return { docs: [], problems: [{ path: '', message: 'a template ({{ … }} placeholders); render it before serving; skipped' }] };
  }
  if (file.endsWith('.json') || /^\s*[{[]/.test(text)) {
    try {
      return { docs: [JSON.parse(text)], problems: [] };
    } catch (err) {
      if (file.endsWith('.json')) return { docs: [], problems: [{ path: '', message: `JSON syntax error: ${(err as Error).message}` }] };
    }
  }
  const docs = parseAllDocuments(text, { uniqueKeys: true, merge: true });
  const list = Array.isArray(docs) ? docs : [docs];
  const problems: FieldError[] = [];
  const out: unknown[] = [];
  for (const d of list) {
    if (d.errors.length) problems.push(...d.errors.map((e) => ({ path: '', message: `YAML syntax error: ${e.message.split('\n')[0]}` })));
    else {
      const v = d.toJS({ maxAliasCount: 10_000 });
      if (v !== null && v !== undefined) out.push(v);
    }
  }
  return { docs: out, problems };
}

/**
 * Reads one file in any of the forms the directory accepts (Envoy's filesystem-xDS `resources:`
 * list above all) into decoded resources: what a path config source (file-based SDS) reads.
 */
export function readResourceFile(file: string): { resources: Array<{ type: string; name: string; value: Obj; where: string }>; problems: FieldError[] } {
  const parsed = parseFile(file);
  const problems: FieldError[] = [...parsed.problems];
  const resources: Array<{ type: string; name: string; value: Obj; where: string }> = [];
  parsed.docs.forEach((doc, d) => {
    const found = findResources(doc, parsed.docs.length > 1 ? `documents[${d}].` : '');
    problems.push(...found.problems);
    for (const f of found.found) {
      if (!typeFromUrl(f.type)) {
        problems.push({ path: f.where, message: `unknown resource type "${f.type}"` });
        continue;
      }
      const url = `${TYPE_PREFIX}${typeName(f.type)}`;
      const ctx = newContext('opaque');
      const value = decodeResource(url, f.raw, f.where, ctx);
      if (ctx.errors.length || !isObj(value)) {
        problems.push(...ctx.errors);
        continue;
      }
      resources.push({ type: url, name: resourceName(url, value), value, where: f.where });
    }
  });
  return { resources, problems };
}

export interface LoadOptions {
  /**
   * Rewrites every listener's socket address to this one (port 0: a free port each). Lets a
   * production listener set (ports 15001, 15006, node IPs…) run on a development machine.
   */
  readonly listenerAddress?: { readonly host: string; readonly port: number };
  /** Istio translation state (last good objects per file, outbound bind); a fresh one when absent. */
  readonly istio?: IstioState;
}

function rewriteListener(l: Obj, to: NonNullable<LoadOptions['listenerAddress']>): Obj {
  const sa = l.address?.socket_address;
  if (!sa) return l;
  return { ...l, address: { ...l.address, socket_address: { ...sa, address: to.host, port_value: to.port } } };
}

/**
 * Reads every file of a directory into the resources to serve. Each resource is decoded and
 * validated as its type (unknown nested types — Istio's private filters — kept as given), then
 * encoded once. Problems are reported per file; a bad file never stops the others.
 */
export function loadResourceDir(dir: string, opts: LoadOptions = {}): LoadResult {
  const byType = new Map<string, Map<string, ServedResource>>();
  const reports: Array<{ file: string; kind: string; resources: number; problems: FieldError[] }> = [];
  const istio = opts.istio ?? new IstioState({ outboundBind: '0.0.0.0' });
  const istioFiles = new Map<string, IstioDoc[]>();
  const istioBroken = new Set<string>();

  /** Decodes, validates, names and encodes one resource; false when it is not served. */
  const serve = (rawType: string, raw: unknown, where: string, rel: string, problems: FieldError[]): boolean => {
    const type = typeFromUrl(rawType);
    if (!type) {
      problems.push({ path: where, message: `unknown resource type "${rawType}"; skipped` });
      return false;
    }
    const url = `${TYPE_PREFIX}${typeName(rawType)}`;
    const ctx = newContext('opaque');
    let value = decodeResource(url, raw, where, ctx);
    if (opts.listenerAddress && url === LISTENER_TYPE && isObj(value)) value = rewriteListener(value, opts.listenerAddress);
    if (ctx.errors.length || !isObj(value)) {
      problems.push(...ctx.errors);
      problems.push({ path: where, message: 'invalid resource; not served' });
      return false;
    }
    let name = resourceName(url, value);
    if (!name) {
      // Envoy names an unnamed static listener itself; a stable name from the origin keeps
      // versions steady across reloads.
      name = `${rel}:${where}`;
      if (url === ENDPOINT_TYPE) value.cluster_name = name;
      else value.name = name;
      problems.push({ path: where, message: `has no name; served as "${name}"` });
    }
    let m = byType.get(url);
    if (!m) byType.set(url, (m = new Map()));
    const prev = m.get(name);
    if (prev) {
      problems.push({ path: where, message: `duplicate ${typeName(url)} "${name}" (also ${prev.origin}); the first is served` });
      return false;
    }
    let any: AnyMsg;
    try {
      any = encodeAny(url, value);
    } catch (err) {
      problems.push({ path: where, message: `cannot encode: ${(err as Error).message}` });
      return false;
    }
    m.set(name, { name, version: contentVersion(any), any, origin: `${rel}: ${where}` });
    return true;
  };

  for (const file of listFiles(dir)) {
    const rel = path.relative(dir, file);
    const report = { file: rel, kind: 'skipped', resources: 0, problems: [] as FieldError[] };
    reports.push(report);
    let parsed: { docs: unknown[]; problems: FieldError[] };
    try {
      parsed = parseFile(file);
    } catch (err) {
      report.problems.push({ path: '', message: `cannot read: ${(err as Error).message}` });
      if (istio.knows(rel)) istioBroken.add(rel);
      continue;
    }
    report.problems.push(...parsed.problems);
    // A file of Istio objects that no longer parses keeps its last good objects.
    if (parsed.problems.length && istio.knows(rel)) {
      istioBroken.add(rel);
      report.kind = 'istio';
    }
    parsed.docs.forEach((doc, d) => {
      const where = parsed.docs.length > 1 ? `documents[${d}].` : '';
      if (isObj(doc) && isIstioDoc(doc)) {
        // Translated below, all files together: a VirtualService names another file's subsets.
        report.kind = 'istio';
        let list = istioFiles.get(rel);
        if (!list) istioFiles.set(rel, (list = []));
        list.push(toIstioDoc(doc, rel, where));
        return;
      }
      const found = findResources(doc, where);
      report.kind = found.kind;
      report.problems.push(...found.problems);
      for (const f of found.found) if (serve(f.type, f.raw, f.where, rel, report.problems)) report.resources++;
    });
  }

  {
    // Always: a state that held files now gone must forget them.
    let t: ReturnType<IstioState['translate']>;
    try {
      t = istio.translate(istioFiles, istioBroken);
    } catch (err) {
      // A shape the validation let through must not take the server down: report, serve the rest.
      const message = `Istio translation failed: ${(err as Error).message}; no Istio object is served`;
      t = { resources: [], problems: [...istioFiles.keys()].map((file) => ({ file, path: '', message, severity: 'error' as const })) };
    }
    const byFile = new Map(reports.map((r) => [r.file, r]));
    const reportOf = (file: string) => {
      let r = byFile.get(file);
      if (!r) {
        // A file that vanished while its last good objects still serve.
        r = { file, kind: 'istio', resources: 0, problems: [] };
        byFile.set(file, r);
        reports.push(r);
      }
      return r;
    };
    for (const p of t.problems) reportOf(p.file).problems.push({ path: p.path, message: p.message });
    for (const g of t.resources) {
      const r = reportOf(g.file);
      if (serve(`${TYPE_PREFIX}${g.type.slice(g.type.lastIndexOf('/') + 1)}`, g.value, g.where, g.file, r.problems)) r.resources++;
    }
  }
  return { resources: byType, files: reports };
}
