import type crypto from 'node:crypto';
import { createRequire } from 'node:module';
import type tls from 'node:tls';

// node:tls and node:crypto, each loaded on first use: a sidecar with no TLS and no SDS file never
// needs them, and with their OpenSSL glue they cost ~1 MB of idle RSS. Builtins can be required
// synchronously, so callers stay synchronous.

const load = createRequire(import.meta.url);
let tlsMod: typeof tls | null = null;
let cryptoMod: typeof crypto | null = null;

export function nodeTls(): typeof tls {
  return (tlsMod ??= load('node:tls') as typeof tls);
}

export function nodeCrypto(): typeof crypto {
  return (cryptoMod ??= load('node:crypto') as typeof crypto);
}
