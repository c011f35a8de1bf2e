import type { FieldError } from '../../../errors.js';
import type { FilterSpec } from '../../../listener/listener_config.js';
import { parseRbacConfig, type RbacConfig } from '../../../rbac/engine.js';
import type { FactoryContext, NetworkFilterFactory } from '../types.js';
import { NetworkRbacFilter } from './filter.js';

export const NETWORK_RBAC_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC';
const NAME = 'envoy.filters.network.rbac';
const RPC_TERMINALS: ReadonlySet<string> = new Set(['strait.filters.network.rpc_proxy', 'envoy.filters.network.dubbo_proxy']);

export interface NetworkRbacConfig extends RbacConfig {
  readonly statPrefix: string;
}

type Obj = Record<string, any>;

function parse(tc: Obj, path: string, ctx: FactoryContext): NetworkRbacConfig | null {
  const start = ctx.errors.length;
  const statPrefix = String(tc.stat_prefix ?? '');
  if (!statPrefix) ctx.errors.push({ path: `${path}.stat_prefix`, message: 'is required' });
  if (tc.delay_deny !== undefined && tc.delay_deny !== null) ctx.errors.push({ path: `${path}.delay_deny`, message: 'is not supported yet' });
  // Both enforcement types give the same answers here: the facts a connection-level rule reads
  // are known at accept time, and RPC rules are evaluated on every call anyway.
  const base = parseRbacConfig(tc, path, ctx.errors, ctx.warnings);
  if (!base || ctx.errors.length > start) return null;
  return Object.freeze({ ...base, statPrefix });
}

/**
 * A check that needs the whole chain: rules that read RPC call metadata only work in front of
 * an RPC terminal (any other would never ask them, and let every call by).
 */
export function rbacChainErrors(filters: readonly FilterSpec[], path: string): FieldError[] {
  const last = filters[filters.length - 1];
  const out: FieldError[] = [];
  filters.forEach((f, i) => {
    if (f.name === NAME && (f.config as RbacConfig).usesRpc && !(last && RPC_TERMINALS.has(last.name))) {
      out.push({ path: `${path}[${i}]`, message: 'RBAC rules that match RPC metadata need strait.filters.network.rpc_proxy or envoy.filters.network.dubbo_proxy as the terminal filter' });
    }
  });
  return out;
}

export const networkRbacFactory = {
  name: NAME,
  typeUrls: [NETWORK_RBAC_TYPE],
  terminal: false,
  parse,
  checkChain: rbacChainErrors,
  create: (config, rt, next) => {
    if (!next) throw new Error(`${NAME} needs a filter after it`);
    return new NetworkRbacFilter(config, rt, next);
  },
} satisfies NetworkFilterFactory<NetworkRbacConfig>;
