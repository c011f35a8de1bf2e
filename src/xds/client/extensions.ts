import { typeFromUrl } from '../../config/index.js';
import type { FieldError } from '../../errors.js';

type Obj = Record<string, any>;

const TYPED_STRUCT_URLS = new Set(['type.googleapis.com/udpa.type.v1.TypedStruct', 'type.googleapis.com/xds.type.v3.TypedStruct']);
const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const WASM_HTTP = 'type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm';
const WASM_NETWORK = 'type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm';

/**
 * Why an extension is skippable, or null when it must be judged by its factory. The decoder
 * keeps Any values of types without a descriptor as given (or as a TypedStruct of that type):
 * those are control-plane-private extensions (Istio's stats, metadata exchange, alpn…).
 * Istio's `istio_authn` (io.istio.network.authn.Config) is not among them: Strait has its
 * descriptor (proto/io/istio/network/authn) and implements it, because the RBAC principals Istio
 * generates read what it records; the decoder unwraps its TypedStruct, so it reaches its factory.
 * Wasm plugins on the null VM are compiled into istio-proxy itself, so no other proxy has them.
 */
function privateExtension(tc: unknown): string | null {
  if (!tc || typeof tc !== 'object') return null;
  const url = (tc as Obj)['@type'];
  if (typeof url !== 'string') return null;
  if ('@value' in (tc as Obj) || !typeFromUrl(url)) return `${url} is a private or unknown extension type`;
  if (TYPED_STRUCT_URLS.has(url)) return `${(tc as Obj).type_url ?? url} (in a TypedStruct) is a private or unknown extension type`;
  if (url === WASM_HTTP || url === WASM_NETWORK) {
    const vm = (tc as Obj).config?.vm_config;
    if (vm?.runtime === 'envoy.wasm.runtime.null') return `Wasm plugin "${vm.code?.local?.inline_string ?? vm.vm_id ?? ''}" runs on the null VM, which only istio-proxy builds have`;
  }
  return null;
}

function stripChain(fc: Obj, path: string, warnings: FieldError[]): Obj {
  const filters = ((fc.filters ?? []) as Obj[]).flatMap((f, i) => {
    const fpath = `${path}.filters[${i}]`;
    const why = privateExtension(f.typed_config);
    if (why) {
      warnings.push({ path: fpath, message: `network filter "${f.name ?? ''}" skipped: ${why}` });
      return [];
    }
    if (f.typed_config?.['@type'] !== HCM || !Array.isArray(f.typed_config.http_filters)) return [f];
    const http = (f.typed_config.http_filters as Obj[]).filter((h, j) => {
      const hwhy = privateExtension(h.typed_config);
      if (hwhy) warnings.push({ path: `${fpath}.typed_config.http_filters[${j}]`, message: `HTTP filter "${h.name ?? ''}" skipped: ${hwhy}` });
      return !hwhy;
    });
    return [{ ...f, typed_config: { ...f.typed_config, http_filters: http } }];
  });
  return { ...fc, filters };
}

/**
 * A listener from a control plane with its private extensions taken out, each reported as a
 * warning with its field path. What remains is judged by the normal listener and filter
 * builders, so unsupported standard features are still refused (and NACKed) with a reason.
 */
export function stripPrivateExtensions(l: Obj, warnings: FieldError[]): Obj {
  const out: Obj = { ...l };
  if (Array.isArray(l.filter_chains)) out.filter_chains = (l.filter_chains as Obj[]).map((fc, i) => stripChain(fc, `filter_chains[${i}]`, warnings));
  if (l.default_filter_chain) out.default_filter_chain = stripChain(l.default_filter_chain as Obj, 'default_filter_chain', warnings);
  if (Array.isArray(l.listener_filters)) {
    out.listener_filters = (l.listener_filters as Obj[]).filter((lf, i) => {
      const why = privateExtension(lf.typed_config);
      if (why) warnings.push({ path: `listener_filters[${i}]`, message: `listener filter "${lf.name ?? ''}" skipped: ${why}` });
      return !why;
    });
    if (!out.listener_filters.length) delete out.listener_filters;
  }
  return out;
}
