import type { HeaderMutation } from '../../../router/http_route_table.js';
import type { HeaderObject } from './upstream_try.js';

/**
 * Response header edits on the two shapes a response head takes in the connection manager: a
 * header object (HTTP/2 downstream, an HTTP/2 upstream answering HTTP/1) and header lines being
 * built for an HTTP/1 head. The route's response_headers_to_add go through the sessions' own
 * fast code; these also serve the edits HTTP filters decide per request (HttpFilterRequest
 * responseHeaders), which come after the route's and may overwrite what it added.
 */

/** No edits: what a session applies when no filter set any. */
export const NO_EDITS: HeaderMutation = Object.freeze({ add: Object.freeze([]), remove: Object.freeze([]) });

/** Applies `m` to a header object in place: removals first, then each add by its action. */
export function applyHeaderObject(out: HeaderObject, m: HeaderMutation): void {
  for (const r of m.remove) delete out[r];
  for (const a of m.add) {
    if (a.value === '' && !a.keepEmpty) continue;
    const prev = out[a.name];
    switch (a.action) {
      case 'ADD_IF_ABSENT':
        if (prev === undefined) out[a.name] = a.value;
        break;
      case 'OVERWRITE_IF_EXISTS':
        if (prev !== undefined) out[a.name] = a.value;
        break;
      case 'OVERWRITE_IF_EXISTS_OR_ADD':
        out[a.name] = a.value;
        break;
      default:
        out[a.name] = prev === undefined ? a.value : Array.isArray(prev) ? [...prev, a.value] : [prev, a.value];
    }
  }
}

/** Whether `lines` ("name: value\r\n"...) has a line named `name` (lower-case), any case. */
function hasLine(lines: string, name: string): boolean {
  let i = 0;
  while (i < lines.length) {
    const e = lineEnd(lines, i);
    if (isNamed(lines, i, e, name)) return true;
    i = e;
  }
  return false;
}

/** `lines` without the lines named `name` (lower-case), any case. */
function withoutLines(lines: string, name: string): string {
  let out = '';
  let i = 0;
  while (i < lines.length) {
    const e = lineEnd(lines, i);
    if (!isNamed(lines, i, e, name)) out += lines.slice(i, e);
    i = e;
  }
  return out;
}

function lineEnd(lines: string, i: number): number {
  const e = lines.indexOf('\n', i);
  return e < 0 ? lines.length : e + 1;
}

function isNamed(lines: string, i: number, e: number, name: string): boolean {
  const c = i + name.length;
  return c < e && lines.charCodeAt(c) === 58 /* : */ && lines.slice(i, c).toLowerCase() === name;
}

/**
 * Applies `m` to an HTTP/1 head being built: `lines` are the header lines added so far (the
 * route's own edits among them), `has` says whether the head the lines go with (the upstream's,
 * or nothing for a local reply) has a field, and `drop` collects that head's fields to leave out.
 * Returns the new lines. An overwrite or removal takes out both the head's field and any line
 * added before it (a route's own access-control-allow-origin, say).
 */
export function editHeaderLines(lines: string, m: HeaderMutation, has: (name: string) => boolean, drop: string[]): string {
  for (const r of m.remove) {
    lines = withoutLines(lines, r);
    drop.push(r);
  }
  for (const a of m.add) {
    if (a.value === '' && !a.keepEmpty) continue;
    const n = a.name;
    switch (a.action) {
      case 'APPEND_IF_EXISTS_OR_ADD':
        break;
      case 'ADD_IF_ABSENT':
        if ((has(n) && !drop.includes(n)) || hasLine(lines, n)) continue;
        break;
      case 'OVERWRITE_IF_EXISTS':
        if (!((has(n) && !drop.includes(n)) || hasLine(lines, n))) continue;
        lines = withoutLines(lines, n);
        drop.push(n);
        break;
      case 'OVERWRITE_IF_EXISTS_OR_ADD':
        lines = withoutLines(lines, n);
        drop.push(n);
        break;
    }
    lines += `${n}: ${a.value}\r\n`;
  }
  return lines;
}

/**
 * A route's response_headers_to_add / _to_remove on the header lines of a reply Strait makes
 * itself (a direct response or redirect, the router's own errors), in Envoy's order: the reply's
 * own fields first (location, x-envoy-overloaded), the route's edits over them — an overwrite
 * replaces a line rather than adding a second — and the reply's default content-type last, only
 * where the edits left none; a reply without a body carries no content-type at all, as Envoy's
 * local replies.
 */
export function editLocalReplyLines(lines: string, m: HeaderMutation, hasBody: boolean): string {
  const ct = namedLines(lines, 'content-type');
  if (ct !== '') lines = withoutLines(lines, 'content-type');
  lines = editHeaderLines(lines, m, () => false, []);
  if (!hasBody) return withoutLines(lines, 'content-type');
  return ct === '' || hasLine(lines, 'content-type') ? lines : lines + ct;
}

/** The same order on a local reply's header object (HTTP/2 downstream). */
export function editLocalReplyObject(out: HeaderObject, m: HeaderMutation, hasBody: boolean): void {
  const ct = out['content-type'];
  if (ct !== undefined) delete out['content-type'];
  applyHeaderObject(out, m);
  if (!hasBody) delete out['content-type'];
  else if (out['content-type'] === undefined && ct !== undefined) out['content-type'] = ct;
}

/** The lines of `lines` named `name` (lower-case), any case, as they are. */
function namedLines(lines: string, name: string): string {
  let out = '';
  let i = 0;
  while (i < lines.length) {
    const e = lineEnd(lines, i);
    if (isNamed(lines, i, e, name)) out += lines.slice(i, e);
    i = e;
  }
  return out;
}
