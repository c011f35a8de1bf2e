/**
 * Absolute-form request targets (RFC 9112 §3.2.2), as clients configured with a proxy send them:
 * `GET http://svc.local:8080/a?b HTTP/1.1`. A server must accept them; the proxy then routes and
 * forwards the request in origin-form with the target's authority as its Host, ignoring the Host
 * field received (Envoy's `allow_absolute_url`, on by default).
 */

/** A target split into the Host it stands for and the origin-form path it forwards as. */
export interface OriginForm {
  readonly authority: string;
  readonly path: string;
}

/**
 * `target` as authority and origin-form path, or null when it is not an http(s) absolute-form
 * target a proxy can serve: another scheme, no authority, or userinfo (`user@host`, which a
 * sender must not generate, RFC 9110 §4.2.4, and which would put credentials in a Host field).
 * The parser has already limited the target to visible ASCII and obs-text.
 */
export function originFormOf(target: string): OriginForm | null {
  let i: number;
  // Schemes are case-insensitive (RFC 3986 §3.1).
  if (target.length > 7 && target.slice(0, 7).toLowerCase() === 'http://') i = 7;
  else if (target.length > 8 && target.slice(0, 8).toLowerCase() === 'https://') i = 8;
  else return null;
  let end = i;
  while (end < target.length) {
    const c = target.charCodeAt(end);
    if (c === 0x2f /* / */ || c === 0x3f /* ? */ || c === 0x23 /* # */) break;
    if (c === 0x40 /* @ */) return null;
    end++;
  }
  if (end === i || target.charCodeAt(end) === 0x23) return null; // no host; a fragment is never sent
  const authority = target.slice(i, end);
  const rest = target.slice(end);
  return { authority, path: rest === '' ? '/' : rest.charCodeAt(0) === 0x3f ? `/${rest}` : rest };
}
