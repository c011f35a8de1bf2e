/**
 * `normalize_path: true`: the request's path is made canonical before filters and routing see it
 * and before it goes upstream (RFC 3986 §6.2.2), so that `/public/../admin` or `/%61dmin` cannot
 * slip past a prefix route or an RBAC path rule written for `/admin`. The result follows what
 * Envoy's normalizer (a snapshot of Chromium's URL path canonicalizer) produces:
 * - dot segments are removed (RFC 3986 §5.2.4); `%2e` counts as a dot, `\` as a slash, and `..`
 *   never climbs above the root;
 * - a percent-encoded unreserved byte (ALPHA, DIGIT, `-`, `.`, `_`, `~`) is decoded; other escapes
 *   are kept as they came (hex case included);
 * - a byte that may not appear literally (controls, space, `"`, `#`, `<`, `>`, `^`, `` ` ``, `{`,
 *   `|`, `}`, DEL, non-ASCII) is percent-encoded;
 * - `%00` makes the path invalid (the caller answers 400).
 * The query (from the first `?`) is left as it is; repeated slashes are kept (merge_slashes is
 * separate in Envoy). Case is not normalized.
 */

/** How a byte appears in a canonical path: as is, escaped, or decoded when it came escaped. */
const AS_IS = 0;
const ESCAPE = 1;
const DECODE = 2;

const KIND = new Uint8Array(256).fill(ESCAPE);
for (const c of "!$&'()*+,/:;=@[]") KIND[c.charCodeAt(0)] = AS_IS;
for (const c of '-._~') KIND[c.charCodeAt(0)] = DECODE;
for (let c = 0x30; c <= 0x39; c++) KIND[c] = DECODE;
for (let c = 0x41; c <= 0x5a; c++) KIND[c] = DECODE;
for (let c = 0x61; c <= 0x7a; c++) KIND[c] = DECODE;

const HEX = '0123456789ABCDEF';

function hexVal(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  return l >= 0x61 && l <= 0x66 ? l - 0x61 + 10 : -1;
}

/** The byte `%XY` at `i` in `s[.., lim)` stands for, or -1 when no valid escape starts there. */
function escapedAt(s: string, i: number, lim: number): number {
  if (s.charCodeAt(i) !== 0x25 || i + 2 >= lim) return -1;
  const h = hexVal(s.charCodeAt(i + 1));
  const l = hexVal(s.charCodeAt(i + 2));
  return h < 0 || l < 0 ? -1 : h * 16 + l;
}

/** Length of the dot at `i` in `p[i, end)`: 1 for `.`, 3 for `%2e`/`%2E`, else 0. */
function dotAt(p: string, i: number, end: number): number {
  const c = p.charCodeAt(i);
  if (c === 0x2e) return 1;
  if (c === 0x25 && i + 2 < end && p.charCodeAt(i + 1) === 0x32 && (p.charCodeAt(i + 2) | 0x20) === 0x65) return 3;
  return 0;
}

const isSlash = (c: number): boolean => c === 0x2f || c === 0x5c;

/** Whether `p[0, end)` is canonical already (the usual request): nothing to rewrite. */
function plain(p: string, end: number): boolean {
  for (let i = 0; i < end; i++) {
    const c = p.charCodeAt(i);
    if (c === 0x25 || c === 0x5c || c > 0xff || KIND[c] === ESCAPE) return false;
    if (c === 0x2e && i > 0 && p.charCodeAt(i - 1) === 0x2f) return false; // a segment starting with a dot
  }
  return true;
}

/** The canonical form of `target` (a path starting with `/`, maybe with a query), or null when invalid. */
export function normalizePath(target: string): string | null {
  const q = target.indexOf('?');
  const end = q < 0 ? target.length : q;
  if (plain(target, end)) return target;
  let out = '';
  // Index in `out` of a '%' that began no valid escape: decoding right after it could make one.
  let loosePercent = -1;
  for (let i = 0; i < end; i++) {
    const c = target.charCodeAt(i);
    const dot = dotAt(target, i, end);
    if (dot > 0) {
      if (out.endsWith('/')) {
        const after = i + dot;
        if (after === end || isSlash(target.charCodeAt(after))) {
          // "." as a whole segment: dropped, with its slash.
          i = after === end ? end : after;
          continue;
        }
        const dot2 = dotAt(target, after, end);
        if (dot2 > 0 && (after + dot2 === end || isSlash(target.charCodeAt(after + dot2)))) {
          // "..": back to the previous segment's start, never above the root.
          const cut = out.lastIndexOf('/', out.length - 2);
          out = cut < 0 ? '/' : out.slice(0, cut + 1);
          i = after + dot2 === end ? end : after + dot2;
          continue;
        }
      }
      out += '.';
      i += dot - 1;
      continue;
    }
    if (c === 0x5c) {
      out += '/';
      continue;
    }
    if (c === 0x25) {
      const v = escapedAt(target, i, end);
      if (v < 0) {
        loosePercent = out.length;
        out += '%';
        continue;
      }
      if (v === 0) return null; // %00
      i += 2;
      if (KIND[v] !== DECODE) {
        out += target.slice(i - 2, i + 1);
        continue;
      }
      out += String.fromCharCode(v);
      // "%%34%31" must not come out as "%41", which the next parser would decode: a loose '%'
      // that decoding has just made the start of a valid escape becomes "%25".
      const k = loosePercent;
      if (k >= 0 && out.length - k <= 3) {
        const second = out.length - k === 3 ? out.charCodeAt(k + 2) : i + 1 < end ? target.charCodeAt(i + 1) : -1;
        if (hexVal(out.charCodeAt(k + 1)) >= 0 && second >= 0 && hexVal(second) >= 0) {
          out = `${out.slice(0, k)}%25${out.slice(k + 1)}`;
          loosePercent = -1;
        }
      }
      continue;
    }
    if (c > 0xff) return null; // not a byte: never from a parsed request
    if (KIND[c] === ESCAPE) {
      if (c === 0) return null;
      out += `%${HEX[c >> 4]}${HEX[c & 15]}`;
      continue;
    }
    out += target[i];
  }
  return q < 0 ? out : out + target.slice(q);
}

/** `path_with_escaped_slashes_action`; IMPLEMENTATION_SPECIFIC_DEFAULT is KEEP_UNCHANGED, as in Envoy. */
export type EscapedSlashesAction = 'KEEP_UNCHANGED' | 'REJECT_REQUEST' | 'UNESCAPE_AND_REDIRECT' | 'UNESCAPE_AND_FORWARD';

/** What the connection manager does to every path before filters and routing see it. */
export interface PathOptions {
  readonly normalizePath: boolean;
  readonly mergeSlashes: boolean;
  readonly escapedSlashes: EscapedSlashesAction;
}

/**
 * Set by preparePath: the path it returned must be answered with a redirect to itself
 * (UNESCAPE_AND_REDIRECT found an escaped slash) rather than routed.
 */
export let pathRedirect = false;

/**
 * Envoy's order: escaped slashes first (`%2F`, `%5C`, either case, in the path part: refused,
 * or unescaped to `/` and `\`, forwarded or redirected to), then normalize_path (which turns the
 * `\` into `/`), then merge_slashes (after normalizing, so an escape cannot hide a `//`). Returns
 * the new target (the query untouched), or null for a 400. Targets start with `/`.
 */
export function preparePath(target: string, o: PathOptions): string | null {
  pathRedirect = false;
  let t = target;
  if (o.escapedSlashes !== 'KEEP_UNCHANGED') {
    const q = t.indexOf('?');
    const end = q < 0 ? t.length : q;
    const p = t.slice(0, end);
    const u = p.replace(/%(2f|5c)/gi, (m) => (m[2] === 'f' || m[2] === 'F' ? '/' : '\\'));
    if (u !== p) {
      if (o.escapedSlashes === 'REJECT_REQUEST') return null;
      if (o.escapedSlashes === 'UNESCAPE_AND_REDIRECT') pathRedirect = true;
      t = u + t.slice(end);
    }
  }
  if (o.normalizePath) {
    const n = normalizePath(t);
    if (n === null) return null;
    t = n;
  }
  if (o.mergeSlashes && t.includes('//')) {
    const q = t.indexOf('?');
    const end = q < 0 ? t.length : q;
    t = t.slice(0, end).replace(/\/{2,}/g, '/') + t.slice(end);
  }
  return t;
}
