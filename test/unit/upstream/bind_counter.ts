import { AsyncResource } from 'node:async_hooks';

/**
 * Wraps node's AsyncResource#bind with a counter. Imported first by h2try_request.test.ts, so the
 * wrapper is what upstream_try.ts finds (and must put back) when it loads.
 */
export const nodeBind = AsyncResource.prototype.bind;
export const binds = { n: 0 };
AsyncResource.prototype.bind = function (this: AsyncResource, ...a: Parameters<typeof nodeBind>) {
  binds.n++;
  return nodeBind.apply(this, a);
} as typeof nodeBind;
export const counting = AsyncResource.prototype.bind;
