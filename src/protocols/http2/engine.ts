/**
 * Which HTTP/2 implementation serves downstream h2c connections: node:http2 (the default) or the
 * addon's nghttp2 session (native_session.ts). Set once at start-up from `--h2-engine` /
 * STRAIT_H2_ENGINE; read per connection. The native one applies only to plaintext connections
 * on the native io engine (TLS and `--io-engine node` keep node:http2).
 */
export const H2_ENGINE_NAMES = ['node', 'native'] as const;
export type H2EngineName = (typeof H2_ENGINE_NAMES)[number];

let current: H2EngineName = 'node';

export function setH2Engine(name: H2EngineName): void {
  current = name;
}

export function h2Engine(): H2EngineName {
  return current;
}
