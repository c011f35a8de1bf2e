/**
 * `http.<stat_prefix>.rbac.<rules_stat_prefix>allowed|denied|logged|not_logged` and
 * `http.<stat_prefix>.rbac.<shadow_rules_stat_prefix>shadow_allowed|shadow_denied`, Envoy's
 * names; the counters are declared once in src/rbac/engine.ts for both RBAC filters.
 */
export { rbacStats as httpRbacStats } from '../../../rbac/engine.js';
