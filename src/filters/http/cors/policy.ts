import type { FieldError } from '../../../errors.js';
import type { HeaderAdd, HeaderMutation } from '../../../router/http_route_table.js';
import { compileStringMatcher, type StringMatch } from '../../../router/string_matcher.js';
import { fraction, type LayeredPerRoute } from '../types.js';

type Obj = Record<string, any>;

/**
 * Where the route table keeps a route's older-style policy (`cors` on its RouteAction and its
 * virtual host), which the cors filter reads whatever its name in the chain.
 */
export const LEGACY_CORS_KEY = 'envoy.config.route.v3.CorsPolicy';

/**
 * One CORS policy, or several merged: an `envoy.extensions.filters.http.cors.v3.CorsPolicy`
 * (typed_per_filter_config) or the older `envoy.config.route.v3.CorsPolicy` (`cors` on a
 * RouteAction or VirtualHost); both have the same fields.
 *
 * Precedence, as Envoy's cors filter reads it: every level's policy is kept, and each setting
 * comes from the most specific level that sets it (route over virtual host over route
 * configuration; a list or string counts as set when non-empty, a BoolValue when present) —
 * except `filter_enabled` and `shadow_enabled`, which come from the most specific policy alone
 * (unset there: enabled, no shadow, whatever a less specific level says). The older `cors`
 * fields (route's over its virtual host's) apply only when no level has a typed policy. Envoy
 * resolves this per request; here `over` resolves it once per route when the table is compiled.
 */
export class CorsPolicy implements LayeredPerRoute {
  /** The `allow_origin_string_match` has a matcher that matches "*" itself: every origin is allowed (Envoy's rule). */
  private readonly anyOrigin: boolean;
  /** allow-credentials and expose-headers for a matching origin's response; allow-origin is added per request. */
  private readonly fixedEdits: readonly HeaderAdd[];

  constructor(
    /** null: not set at this level. */
    readonly origins: readonly StringMatch[] | null,
    /** '' when not set, as Envoy treats an empty string. */
    readonly allowMethods: string,
    readonly allowHeaders: string,
    readonly exposeHeaders: string,
    readonly maxAge: string,
    /** null: not set (false unless a less specific level says otherwise). */
    readonly allowCredentials: boolean | null,
    readonly allowPrivateNetworkAccess: boolean | null,
    /** null: not set (true, Envoy's default, unless a less specific level says otherwise). */
    readonly forwardNotMatchingPreflights: boolean | null,
    /** filter_enabled's default_value as a probability; 1 when unset. */
    readonly enabled: number,
    /** shadow_enabled's default_value as a probability; 0 when unset. */
    readonly shadow: number,
  ) {
    this.anyOrigin = origins !== null && origins.some((m) => m('*'));
    const fixed: HeaderAdd[] = [];
    if (allowCredentials === true) fixed.push(overwrite('access-control-allow-credentials', 'true'));
    if (exposeHeaders) fixed.push(overwrite('access-control-expose-headers', exposeHeaders));
    this.fixedEdits = Object.freeze(fixed);
    Object.freeze(this);
  }

  /** This (more specific) policy over a less specific level's: each unset setting taken from there. */
  over(less: unknown): unknown {
    if (!(less instanceof CorsPolicy)) return this;
    return new CorsPolicy(
      this.origins ?? less.origins,
      this.allowMethods || less.allowMethods,
      this.allowHeaders || less.allowHeaders,
      this.exposeHeaders || less.exposeHeaders,
      this.maxAge || less.maxAge,
      this.allowCredentials ?? less.allowCredentials,
      this.allowPrivateNetworkAccess ?? less.allowPrivateNetworkAccess,
      this.forwardNotMatchingPreflights ?? less.forwardNotMatchingPreflights,
      this.enabled,
      this.shadow,
    );
  }

  /** Whether `origin` (non-empty) matches one of allow_origin_string_match; none set allows none. */
  allows(origin: string): boolean {
    const o = this.origins;
    if (o === null) return false;
    if (this.anyOrigin) return true;
    for (let i = 0; i < o.length; i++) if (o[i]!(origin)) return true;
    return false;
  }

  /** What the response to a request from an allowed origin gets: the origin echoed, credentials, exposed headers. */
  responseEdits(origin: string): HeaderMutation {
    return Object.freeze({ add: [overwrite('access-control-allow-origin', origin), ...this.fixedEdits], remove: [] });
  }

  /**
   * The headers of the 200 a preflight gets. `origin` is null when it did not match (and
   * forward_not_matching_preflights is off): Envoy then answers without allow-origin, which the
   * browser reads as a refusal, but with the policy's other headers.
   */
  preflightHeaders(origin: string | null, header: (name: string) => string | undefined): Array<[string, string]> {
    const out: Array<[string, string]> = [];
    if (origin !== null) out.push(['access-control-allow-origin', origin]);
    if (this.allowCredentials === true) out.push(['access-control-allow-credentials', 'true']);
    // "*" echoes what the browser asked for.
    const m = this.allowMethods === '*' ? (header('access-control-request-method') ?? '') : this.allowMethods;
    if (m) out.push(['access-control-allow-methods', m]);
    const h = this.allowHeaders === '*' ? (header('access-control-request-headers') ?? '') : this.allowHeaders;
    if (h) out.push(['access-control-allow-headers', h]);
    if (this.maxAge) out.push(['access-control-max-age', this.maxAge]);
    // Private Network Access (https://wicg.github.io/private-network-access/): only when asked and allowed.
    if (this.allowPrivateNetworkAccess === true && header('access-control-request-private-network') === 'true') out.push(['access-control-allow-private-network', 'true']);
    return out;
  }

  /** forward_not_matching_preflights as resolved: true unless some level set it false. */
  get forwardsNotMatching(): boolean {
    return this.forwardNotMatchingPreflights ?? true;
  }
}

function overwrite(name: string, value: string): HeaderAdd {
  return Object.freeze({ name, value, action: 'OVERWRITE_IF_EXISTS_OR_ADD', keepEmpty: false });
}

/** A BoolValue after the JSON mapping: a plain boolean, or `{ value }` from a proto object. null: unset. */
function boolValue(v: unknown, path: string, errors: FieldError[]): boolean | null {
  if (v === undefined || v === null) return null;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'object' && typeof (v as Obj).value === 'boolean') return (v as Obj).value as boolean;
  if (typeof v === 'object' && (v as Obj).value === undefined) return false; // `{}`: a BoolValue left at its default
  errors.push({ path, message: `must be a boolean, got ${JSON.stringify(v)}` });
  return null;
}

/** A string setting that becomes a header value: no CR, LF or NUL. '' when unset. */
function headerString(v: unknown, path: string, errors: FieldError[]): string {
  if (v === undefined || v === null) return '';
  const s = String(v);
  if (/[\r\n\0]/.test(s)) {
    errors.push({ path, message: 'must not contain CR, LF or NUL (it becomes a header value)' });
    return '';
  }
  return s;
}

/**
 * filter_enabled / shadow_enabled (RuntimeFractionalPercent). Strait has no runtime layer: a
 * runtime_key reads as absent, so default_value applies, as in Envoy when the key is not set.
 */
function runtimeFraction(v: unknown, unset: number): number {
  if (v === undefined || v === null) return unset;
  return fraction((v as Obj).default_value as Obj | undefined);
}

/**
 * Either CorsPolicy message (they share field names and numbers) → a CorsPolicy, or null with
 * every problem reported by field path.
 */
export function parseCorsPolicy(tc: Obj, path: string, errors: FieldError[]): CorsPolicy | null {
  const start = errors.length;
  let origins: StringMatch[] | null = null;
  const list = tc.allow_origin_string_match;
  if (list !== undefined && list !== null) {
    if (!Array.isArray(list)) errors.push({ path: `${path}.allow_origin_string_match`, message: 'must be a list of string matchers' });
    else if (list.length > 0) {
      origins = [];
      list.forEach((m, i) => {
        const p = `${path}.allow_origin_string_match[${i}]`;
        const c = m && typeof m === 'object' ? compileStringMatcher(m as Obj, p, errors) : (errors.push({ path: p, message: 'must be a string matcher' }), null);
        if (c) origins!.push(c);
      });
    }
  }
  const policy = new CorsPolicy(
    origins && Object.freeze(origins),
    headerString(tc.allow_methods, `${path}.allow_methods`, errors),
    headerString(tc.allow_headers, `${path}.allow_headers`, errors),
    headerString(tc.expose_headers, `${path}.expose_headers`, errors),
    headerString(tc.max_age, `${path}.max_age`, errors),
    boolValue(tc.allow_credentials, `${path}.allow_credentials`, errors),
    boolValue(tc.allow_private_network_access, `${path}.allow_private_network_access`, errors),
    boolValue(tc.forward_not_matching_preflights, `${path}.forward_not_matching_preflights`, errors),
    runtimeFraction(tc.filter_enabled, 1),
    runtimeFraction(tc.shadow_enabled, 0),
  );
  return errors.length > start ? null : policy;
}

