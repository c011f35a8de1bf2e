/**
 * The RPC codecs for users outside an RPC filter (the RPC heartbeat health checker): loaded only
 * when a config names such a checker (src/config/preload.ts), since the codecs and the hessian2
 * reader cost idle memory a sidecar without RPC never needs. rpc_proxy imports ./index.js itself.
 */
type Protocols = typeof import('./index.js');

let mod: Protocols | null = null;
let loading: Promise<void> | null = null;

export function loadProtocols(): Promise<void> {
  loading ??= import('./index.js').then((m) => {
    mod = m;
  });
  return loading;
}

/** The codec registry; throws (a bug) when nothing loaded it first. */
export function protocols(): Protocols {
  if (!mod) throw new Error('the RPC codecs are used before they were loaded (preloadExtensions)');
  return mod;
}
