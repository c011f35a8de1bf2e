import fs from 'node:fs';
import path from 'node:path';
import protobuf from 'protobufjs';
import { log } from '../log.js';
import { findProto, PROJECT_PROTO_DIR, protoFiles, REPO_ROOT } from './proto_files.js';

/** Precompiled at build time (`npm run build:ts` runs scripts/build-descriptor.js); see getRoot(). */
export const DESCRIPTOR_PATH = path.join(REPO_ROOT, 'generated/descriptor.json');

/** google/protobuf/*.proto files protobufjs bundles (any, duration, struct, wrappers, field_mask…). */
const BUNDLED = Object.keys(protobuf.common as unknown as Record<string, unknown>).filter((f) => f.endsWith('.proto'));
const builtin = (rel: string): boolean => BUNDLED.includes(rel);

/** Parses the .proto files directly (the Envoy v3 API from node_modules and proto/**). */
export function compileRoot(): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => findProto(target) ?? target;
  // Every bundled well-known type too, so that an Any of any of them resolves.
  root.loadSync([...BUNDLED, ...protoFiles(builtin)], { keepCase: true });
  root.resolveAll();
  alignWithNewerApi(root);
  return root;
}

/**
 * Rules the vendored API snapshot still has and Envoy's current API dropped, where Strait
 * implements the newer meaning: a local rate limit descriptor entry with an empty value is a
 * wildcard (Envoy 1.34's dynamic descriptors), where the snapshot requires a value.
 */
function alignWithNewerApi(root: protobuf.Root): void {
  const entry = root.lookup('envoy.extensions.common.ratelimit.v3.RateLimitDescriptor.Entry');
  const value = entry instanceof protobuf.Type ? entry.fields.value : undefined;
  if (!value?.options) return;
  delete value.options['(validate.rules).string.min_len'];
  // No options left is no options at all, as a field without any reads back from the descriptor.
  if (Object.keys(value.options).length === 0) value.options = undefined;
}

function newestMtime(dir: string): number {
  if (!fs.existsSync(dir)) return 0;
  let t = fs.statSync(dir).mtimeMs;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newestMtime(p) : fs.statSync(p).mtimeMs);
  }
  return t;
}

function descriptorIsFresh(): boolean {
  if (!fs.existsSync(DESCRIPTOR_PATH)) return false;
  const built = fs.statSync(DESCRIPTOR_PATH).mtimeMs;
  const lock = path.join(REPO_ROOT, 'package-lock.json');
  const inputs = Math.max(fs.existsSync(lock) ? fs.statSync(lock).mtimeMs : 0, newestMtime(PROJECT_PROTO_DIR));
  return built >= inputs;
}

/** A descriptor written by scripts/build-descriptor.js (`root.toJSON()` of compileRoot()). */
export function loadDescriptor(file: string): protobuf.Root {
  const json = JSON.parse(fs.readFileSync(file, 'utf8')) as protobuf.INamespace;
  const root = protobuf.Root.fromJSON(json);
  restoreValuesOptions(root, json);
  root.resolveAll();
  return root;
}

/** protobufjs's Enum.fromJSON drops per-value options (`deprecated` on enum values): put them back. */
function restoreValuesOptions(ns: protobuf.NamespaceBase, json: protobuf.INamespace): void {
  for (const [name, child] of Object.entries(json.nested ?? {})) {
    const obj = ns.get(name);
    const vo = (child as { valuesOptions?: Record<string, Record<string, unknown>> }).valuesOptions;
    if (obj instanceof protobuf.Enum && vo) obj.valuesOptions = vo;
    if (obj instanceof protobuf.Namespace) restoreValuesOptions(obj, child as protobuf.INamespace);
  }
}

let cached: protobuf.Root | null = null;

/**
 * The Envoy v3 API (and Strait's own protos) as one protobufjs Root, loaded once: from
 * generated/descriptor.json when it is newer than package-lock.json and every file under proto/,
 * else by compiling the .proto files (a fresh tree, vitest, or a proto edited since the build).
 */
export function getRoot(): protobuf.Root {
  if (cached) return cached;
  const t0 = performance.now();
  const fresh = descriptorIsFresh();
  if (fresh) {
    cached = loadDescriptor(DESCRIPTOR_PATH);
  } else {
    cached = compileRoot();
  }
  log.debug({ source: fresh ? 'descriptor' : 'protos', ms: Math.round(performance.now() - t0) }, 'Envoy API loaded');
  return cached;
}

export function lookupType(fullName: string): protobuf.Type | null {
  const name = fullName.startsWith('.') ? fullName.slice(1) : fullName;
  const t = getRoot().lookup(name);
  return t instanceof protobuf.Type ? t : null;
}

/** `type.googleapis.com/envoy.config.cluster.v3.Cluster` → its Type (any host prefix). */
export function typeFromUrl(url: string): protobuf.Type | null {
  const slash = url.lastIndexOf('/');
  return lookupType(slash >= 0 ? url.slice(slash + 1) : url);
}

