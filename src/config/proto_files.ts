import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root: this file sits two levels down, in src/config or dist/config. */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

const XDS_DEPS = path.join(REPO_ROOT, 'node_modules/@grpc/grpc-js-xds/deps');

/** Where imports resolve, in order: Envoy's API, xds/udpa, googleapis, PGV, protobufjs's google/protobuf, ours. */
export const PROTO_ROOTS: readonly string[] = [
  path.join(XDS_DEPS, 'envoy-api'),
  path.join(XDS_DEPS, 'xds'),
  path.join(XDS_DEPS, 'googleapis'),
  path.join(XDS_DEPS, 'protoc-gen-validate'),
  path.join(REPO_ROOT, 'node_modules/protobufjs'),
  path.join(REPO_ROOT, 'proto'),
];

/** The project's own .proto files. */
export const PROJECT_PROTO_DIR = path.join(REPO_ROOT, 'proto');

export function findProto(rel: string): string | null {
  for (const r of PROTO_ROOTS) {
    const p = path.join(r, rel);
    if (fs.existsSync(p)) return p;
  }
  return null;
}

function walk(dir: string, out: string[] = []): string[] {
  if (!fs.existsSync(dir)) return out;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (e.name.endsWith('.proto')) out.push(p);
  }
  return out;
}

/**
 * Every Envoy v3 proto and every xds/udpa proto whose imports all resolve (a few, e.g. OpenCensus
 * tracing, import files the package does not ship), plus the project's own protos under proto/.
 * Paths are relative to their root. Shared by getRoot() and scripts/build-descriptor.js.
 * `builtin` tells which google/protobuf files protobufjs provides itself.
 */
export function protoFiles(builtin: (rel: string) => boolean): string[] {
  const memo = new Map<string, boolean>();
  const loadable = (rel: string): boolean => {
    const known = memo.get(rel);
    if (known !== undefined) return known;
    memo.set(rel, true); // cycles resolve optimistically
    let ok = builtin(rel);
    if (!ok) {
      const p = findProto(rel);
      ok = p !== null;
      if (p) {
        const src = fs.readFileSync(p, 'utf8');
        for (const m of src.matchAll(/^import\s+(?:public\s+|weak\s+)?"([^"]+)"/gm)) {
          if (!loadable(m[1]!)) {
            ok = false;
            break;
          }
        }
      }
    }
    memo.set(rel, ok);
    return ok;
  };
  const under = (root: string, dir: string) => walk(path.join(root, dir)).map((f) => path.relative(root, f));
  const [envoyRoot, xdsRoot] = [PROTO_ROOTS[0]!, PROTO_ROOTS[1]!];
  const envoy = under(envoyRoot, 'envoy')
    // v2 and the v2-era alpha APIs (envoy.config.filter.*) are gone from Envoy; loading them only costs start-up time.
    .filter((f) => !/\/v2(alpha\d*)?\//.test(f) && !/\/v1alpha\d*\//.test(f));
  // xds.* and udpa.* types appear in configs by type URL (TypedStruct, xds.type.matcher.v3.IPMatcher…)
  // even where no envoy/ file imports them.
  const xds = [...under(xdsRoot, 'xds'), ...under(xdsRoot, 'udpa')];
  const own = walk(PROJECT_PROTO_DIR).map((f) => path.relative(PROJECT_PROTO_DIR, f));
  return [...envoy, ...xds, ...own].filter(loadable);
}
