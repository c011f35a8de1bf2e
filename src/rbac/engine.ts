import type { FieldError } from '../errors.js';
import { log } from '../log.js';
import type { Counter, Scope } from '../observability/stats.js';
import { compilePermission, compilePrincipal, type CompileNotes, type RbacFacts, type Rule } from './matchers.js';

type Obj = Record<string, any>;

export type RbacAction = 'ALLOW' | 'DENY' | 'LOG';

interface Policy {
  readonly name: string;
  readonly permission: Rule;
  readonly principal: Rule;
}

/**
 * A compiled `config.rbac.v3.RBAC`. A policy matches when any of its permissions and any of
 * its principals match. ALLOW lets a request through only when some policy matches, DENY
 * refuses it when one does, LOG never refuses and only records whether one matched.
 */
export class RbacEngine {
  constructor(
    readonly action: RbacAction,
    private readonly policies: readonly Policy[],
  ) {}

  /** The first matching policy's name (policies in name order, as Envoy keeps them), or null. */
  match(f: RbacFacts): string | null {
    for (const p of this.policies) if (p.permission(f) && p.principal(f)) return p.name;
    return null;
  }

  /** Whether the action lets a request with this match through. */
  allows(matched: string | null): boolean {
    return this.action === 'DENY' ? matched === null : this.action === 'ALLOW' ? matched !== null : true;
  }
}

/** Compiles `rules` / `shadow_rules`; null when the field is absent (nothing to enforce). */
export function compileRbac(rules: Obj | undefined | null, path: string, errors: FieldError[], warnings: FieldError[], notes: CompileNotes): RbacEngine | null {
  if (rules === undefined || rules === null) return null;
  const start = errors.length;
  const action = String(rules.action ?? 'ALLOW');
  if (action !== 'ALLOW' && action !== 'DENY' && action !== 'LOG') errors.push({ path: `${path}.action`, message: `${action} is not a valid action (ALLOW, DENY, LOG)` });
  if (rules.audit_logging_options) errors.push({ path: `${path}.audit_logging_options`, message: 'is not supported yet' });
  const ctx = { errors, warnings, notes };
  const policies: Policy[] = [];
  const byName = (rules.policies ?? {}) as Record<string, Obj>;
  for (const name of Object.keys(byName).sort()) {
    const p = byName[name]!;
    const pp = `${path}.policies.${name}`;
    if (p.condition || p.checked_condition) errors.push({ path: `${pp}.${p.condition ? 'condition' : 'checked_condition'}`, message: 'CEL conditions are not supported yet' });
    const perms = ((p.permissions ?? []) as Obj[]).map((o, i) => compilePermission(o, `${pp}.permissions[${i}]`, ctx));
    const princ = ((p.principals ?? []) as Obj[]).map((o, i) => compilePrincipal(o, `${pp}.principals[${i}]`, ctx));
    // Envoy requires at least one of each (a policy with none would never match).
    if (perms.length === 0) errors.push({ path: `${pp}.permissions`, message: 'needs at least one permission' });
    if (princ.length === 0) errors.push({ path: `${pp}.principals`, message: 'needs at least one principal' });
    if (perms.some((r) => !r) || princ.some((r) => !r) || !perms.length || !princ.length) continue;
    const anyOf = (rs: Rule[]): Rule => (rs.length === 1 ? rs[0]! : (f) => rs.some((r) => r(f)));
    policies.push({ name, permission: anyOf(perms as Rule[]), principal: anyOf(princ as Rule[]) });
  }
  if (errors.length > start) return null;
  return new RbacEngine(action as RbacAction, Object.freeze(policies));
}

/** What both RBAC filters share: the enforced and the shadow engines, and their stat names. */
export interface RbacConfig {
  readonly rules: RbacEngine | null;
  readonly shadow: RbacEngine | null;
  readonly rulesStatPrefix: string;
  readonly shadowStatPrefix: string;
  /** Some rule reads RPC call metadata. */
  readonly usesRpc: boolean;
}

/** Parses the fields the network and HTTP `RBAC` messages have in common. */
export function parseRbacConfig(tc: Obj, path: string, errors: FieldError[], warnings: FieldError[]): RbacConfig | null {
  const start = errors.length;
  for (const f of ['matcher', 'shadow_matcher']) {
    if (tc[f] !== undefined && tc[f] !== null) errors.push({ path: `${path}.${f}`, message: 'is not supported yet (use rules / shadow_rules)' });
  }
  const notes: CompileNotes = { usesRpc: false };
  const rules = compileRbac(tc.rules, `${path}.rules`, errors, warnings, notes);
  const shadow = compileRbac(tc.shadow_rules, `${path}.shadow_rules`, errors, warnings, notes);
  if (errors.length > start) return null;
  return Object.freeze({
    rules,
    shadow,
    rulesStatPrefix: String(tc.rules_stat_prefix ?? ''),
    shadowStatPrefix: String(tc.shadow_rules_stat_prefix ?? ''),
    usesRpc: notes.usesRpc,
  });
}

/** The counters Envoy's RBAC filters keep, under `<prefix>rbac.`. */
export interface RbacStats {
  readonly allowed: Counter;
  readonly denied: Counter;
  readonly shadow_allowed: Counter;
  readonly shadow_denied: Counter;
  readonly logged: Counter;
  readonly not_logged: Counter;
}

/** `scope` is where `rbac.` goes: `<stat_prefix>` for the network filter, `http.<prefix>` for HTTP. */
export function rbacStats(scope: Scope, c: RbacConfig): RbacStats {
  const s = scope.scope('rbac');
  return Object.freeze({
    allowed: s.counter(`${c.rulesStatPrefix}allowed`),
    denied: s.counter(`${c.rulesStatPrefix}denied`),
    shadow_allowed: s.counter(`${c.shadowStatPrefix}shadow_allowed`),
    shadow_denied: s.counter(`${c.shadowStatPrefix}shadow_denied`),
    logged: s.counter(`${c.rulesStatPrefix}logged`),
    not_logged: s.counter(`${c.rulesStatPrefix}not_logged`),
  });
}

/**
 * Denials are logged at most once a second per filter, with how many were not: a client
 * hammering a denied port must not turn into a log flood.
 */
export class DenialLog {
  private last = 0;
  private suppressed = 0;

  constructor(private readonly filter: string) {}

  note(shadow: boolean, policy: string | null, f: RbacFacts): void {
    const now = Date.now();
    if (now - this.last < 1000) {
      this.suppressed++;
      return;
    }
    this.last = now;
    const r = f.downstream.remote;
    const what = f.rpc ? `${f.rpc.iface()}#${f.rpc.method()}` : f.method !== undefined ? `${f.method} ${f.path}` : 'connection';
    log.info(
      { filter: this.filter, shadow, policy: policy ?? 'none', remote: r.family === 'unix' ? r.address : `${r.address}:${r.port}`, request: what, suppressed: this.suppressed },
      shadow ? 'rbac shadow rules would deny' : 'rbac denied',
    );
    this.suppressed = 0;
  }
}

/**
 * Runs shadow then enforced rules on one set of facts, counting as Envoy does; returns
 * whether the request may go on and the policy behind the answer.
 */
export function evaluate(c: RbacConfig, stats: RbacStats, denials: DenialLog, f: RbacFacts): { allowed: boolean; policy: string | null } {
  if (c.shadow) {
    const m = c.shadow.match(f);
    if (c.shadow.allows(m)) stats.shadow_allowed.value++;
    else {
      stats.shadow_denied.value++;
      denials.note(true, m, f);
    }
  }
  const e = c.rules;
  if (!e) return { allowed: true, policy: null };
  const m = e.match(f);
  if (e.action === 'LOG') {
    if (m !== null) stats.logged.value++;
    else stats.not_logged.value++;
    stats.allowed.value++;
    return { allowed: true, policy: m };
  }
  if (e.allows(m)) {
    stats.allowed.value++;
    return { allowed: true, policy: m };
  }
  stats.denied.value++;
  denials.note(false, m, f);
  return { allowed: false, policy: m };
}
