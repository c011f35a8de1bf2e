import { httpFilters } from '../filters/http/registry.js';
import { networkFilters } from '../filters/network/registry.js';
import { loadProtocols } from '../protocols/lazy.js';
import { RPC_HEARTBEAT_CHECKER, RPC_HEARTBEAT_TYPE } from '../upstream/health/config.js';
import { loadResourceFiles } from './resource_files.js';

/** Keys whose object, given a string `path`, is a filesystem config source (the older form). */
const SOURCE_KEYS: ReadonlySet<string> = new Set(['config_source', 'sds_config', 'lds_config', 'cds_config', 'eds_config']);

interface Found {
  readonly words: Set<string>;
  files: boolean;
}

/** Every string key and value of a decoded config, and whether it names a file config source. */
function collect(v: unknown, found: Found, depth: number): void {
  if (depth > 64 || v === null || typeof v !== 'object') {
    if (typeof v === 'string') found.words.add(v);
    return;
  }
  if (Array.isArray(v)) {
    for (const x of v) collect(x, found, depth + 1);
    return;
  }
  if (ArrayBuffer.isView(v)) return;
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    found.words.add(k);
    if (k === 'path_config_source' || (SOURCE_KEYS.has(k) && typeof (x as Record<string, unknown> | null)?.path === 'string')) found.files = true;
    collect(x, found, depth + 1);
  }
}

/** The words (string keys and values) of a config, and whether it names a file config source. */
export function scanConfig(config: unknown): { readonly words: ReadonlySet<string>; readonly files: boolean } {
  const found: Found = { words: new Set(), files: false };
  collect(config, found, 0);
  return found;
}

/**
 * Loads the modules of the extensions a config names, before it is parsed: filters are found by
 * the names and type URLs anywhere in it (listener chains, HCM http_filters, per-route configs),
 * so parsing, which is synchronous, finds their factories loaded; likewise the file readers (and
 * every HTTP filter) for file config sources and the RPC codecs for RPC heartbeat health checks.
 * Unknown names load nothing and are reported by parsing as before. Called once per config load
 * (start-up, --mode validate).
 */
export async function preloadExtensions(config: unknown): Promise<void> {
  const found = scanConfig(config);
  const rpcHealth = found.words.has(RPC_HEARTBEAT_CHECKER) || found.words.has(RPC_HEARTBEAT_TYPE);
  // A route configuration read from a file (now or when the file changes) may name any HTTP
  // filter's per-route config, and is compiled synchronously: with a file source, load them all.
  const http = found.files ? httpFilters.loadAll() : httpFilters.loadNamed(found.words);
  await Promise.all([networkFilters.loadNamed(found.words), http, found.files ? loadResourceFiles() : null, rpcHealth ? loadProtocols() : null]);
}

/**
 * Everything: for a control plane, which may name any filter in any update. The xDS client
 * brings gRPC and the Envoy API registry anyway, next to which the filters are small.
 */
export async function loadAllExtensions(): Promise<void> {
  await Promise.all([networkFilters.loadAll(), httpFilters.loadAll(), loadResourceFiles(), loadProtocols()]);
}
