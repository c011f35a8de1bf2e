import type { FactoryContext, NetworkFilterFactory } from '../types.js';
import { IstioAuthnFilter } from './filter.js';

/** istio-proxy's type (proto/io/istio/network/authn/config.proto); Istio sends it in a TypedStruct, which the decoder unwraps. */
export const ISTIO_AUTHN_TYPE = 'type.googleapis.com/io.istio.network.authn.Config';
const NAME = 'io.istio.network.authn';

/**
 * Nothing to configure: the message's one field, `shared` (hand the principals to upstream
 * connections too), has nothing to act on in Strait, which keeps no upstream filter state. One
 * frozen value serves every chain.
 */
export type IstioAuthnConfig = Readonly<Record<string, never>>;
const CONFIG: IstioAuthnConfig = Object.freeze({});

export const istioAuthnFactory = {
  name: NAME,
  typeUrls: [ISTIO_AUTHN_TYPE],
  terminal: false,
  parse: (_tc: Record<string, unknown>, _path: string, _ctx: FactoryContext) => CONFIG,
  create: (_config, _rt, next) => {
    if (!next) throw new Error(`${NAME} needs a filter after it`);
    return new IstioAuthnFilter(next);
  },
} satisfies NetworkFilterFactory<IstioAuthnConfig>;
