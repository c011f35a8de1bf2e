/**
 * The network RBAC filter counts under `<stat_prefix>.rbac.` (Envoy joins the prefix with one
 * dot, so `tcp.` and `tcp` give the same names): allowed, denied, shadow_allowed, shadow_denied
 * (the shadow ones after shadow_rules_stat_prefix), logged and not_logged for the LOG action.
 * The table lives in src/rbac/engine.ts (rbacStats), shared with the HTTP filter.
 */
export { rbacStats as networkRbacStats } from '../../../rbac/engine.js';

/** Envoy's statPrefixJoin: a trailing dot on the user's prefix is not doubled. */
export function joinStatPrefix(prefix: string): string {
  return prefix.endsWith('.') ? prefix.slice(0, -1) : prefix;
}
