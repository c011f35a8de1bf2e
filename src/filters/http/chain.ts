import type { HeaderMutation } from '../../router/http_route_table.js';
import { PER_ROUTE_DISABLED, type BodyNeed, type FilterDoneHook, type FilterReply, type FilterResume, type HttpFilter, type HttpFilterRequest } from './types.js';

/** What the connection manager does with a request after its HTTP filters had their say. */
export interface ChainVerdict {
  /** Hold the request this long first (fault delays add up). */
  delayMs: number;
  /** Send this instead of routing (unless `wait` is set, which decides instead). */
  reply: FilterReply | null;
  /** Told when the exchange is over; filters that run after a wait are appended later. */
  readonly notify: FilterDoneHook[];
  /**
   * A filter will decide later: call once (after `delayMs`, which it already includes) and
   * route or reply when `resume` runs. Filters after the waiting one run only then.
   */
  wait: ((resume: FilterResume) => void) | null;
  /** The waiting filter needs the request body first (types.ts FilterVerdict.needBody). */
  needBody?: BodyNeed | null;
}

/** Marks a chain whose exchange ended while it waited, so no later filter runs for it. */
class Over implements FilterDoneHook {
  over = false;
  onDone(): void {
    this.over = true;
  }
}

/**
 * Asks each filter in order from `from`: delays add up, the first reply ends the chain, and a
 * filter that has to wait ends the synchronous pass (the rest continue when it resumes).
 * Returns null when every filter lets the request through untouched. `names` (the filters' names
 * in the chain) lets a route's FilterConfig `disabled: true` skip a filter; `off` marks the
 * filters the chain disables (`disabled: true`), which run only where a route has a per-filter
 * config for them that does not disable them.
 */
export function runFilterChain(filters: readonly HttpFilter[], req: HttpFilterRequest, from = 0, notify: FilterDoneHook[] | null = null, names: readonly string[] | null = null, off: readonly boolean[] | null = null): ChainVerdict | null {
  let out: ChainVerdict | null = null;
  const pr = names ? req.perRoute : null;
  for (let i = from; i < filters.length; i++) {
    const f = filters[i]!;
    const pc = pr ? pr.get(names![i]!) : undefined;
    if (pc === PER_ROUTE_DISABLED || (off !== null && off[i] && pc === undefined)) continue;
    const v = f.onRequest(req);
    if (!v) continue;
    out ??= { delayMs: 0, reply: null, notify: notify ?? [], wait: null };
    out.delayMs += v.delayMs;
    out.notify.push(v.done ?? f);
    if (v.wait) {
      out.wait = continueAfter(filters, req, i + 1, out.notify, out.delayMs, v.wait, names, off);
      out.needBody = v.needBody ?? null;
      return out;
    }
    if (v.reply) {
      out.reply = v.reply;
      break;
    }
  }
  return out;
}

/** A wait that, once resumed with null, runs the filters after the waiting one. */
function continueAfter(filters: readonly HttpFilter[], req: HttpFilterRequest, next: number, notify: FilterDoneHook[], delayMs: number, inner: (resume: FilterResume) => void, names: readonly string[] | null, off: readonly boolean[] | null): (resume: FilterResume) => void {
  const over = new Over();
  notify.push(over);
  return (resume) => {
    const go = () => {
      if (over.over) return;
      inner((reply) => {
        if (over.over) return;
        if (reply || next >= filters.length) return resume(reply);
        const more = runFilterChain(filters, req, next, notify, names, off);
        if (!more) return resume(null);
        // A later filter's needBody is not honoured here: the body is held (or not) by now.
        if (more.wait) return more.wait(resume); // already includes its own delays
        if (more.delayMs > 0) setTimeout(() => !over.over && resume(more.reply), more.delayMs);
        else resume(more.reply);
      });
    };
    if (delayMs > 0) setTimeout(go, delayMs);
    else go();
  };
}

/**
 * The route with the request header edits the filters decided (ext_authz's ok response) put
 * before its own request_headers_to_add: Envoy's filters edit the request before the router
 * adds the route's headers. The same route when there are none.
 */
export function withFilterHeaders<R extends { readonly requestHeaders: HeaderMutation }>(route: R, req: HttpFilterRequest): R {
  const m = req.upstreamHeaders;
  if (!m || (m.add.length === 0 && m.remove.length === 0)) return route;
  const own = route.requestHeaders;
  return Object.freeze({ ...route, requestHeaders: Object.freeze({ add: [...m.add, ...own.add], remove: [...m.remove, ...own.remove] }) });
}
