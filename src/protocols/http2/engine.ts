/**
 * Which HTTP/2 implementation runs h2c connections: the addon's nghttp2 session
 * (native_session.ts, the default) or node:http2. Set once at start-up from `--h2-engine` /
 * STRAIT_H2_ENGINE. One switch for both directions: downstream, plaintext connections on the
 * native io engine (TLS and `--io-engine node` keep node:http2); upstream, the HTTP/2 pools of
 * plaintext clusters whose hosts are IP literals or unix paths, on the native io engine too
 * (read once per pool).
 */
export const H2_ENGINE_NAMES = ['node', 'native'] as const;
export type H2EngineName = (typeof H2_ENGINE_NAMES)[number];

let current: H2EngineName = 'native';

export function setH2Engine(name: H2EngineName): void {
  current = name;
}

export function h2Engine(): H2EngineName {
  return current;
}
