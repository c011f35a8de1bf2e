import type { FieldError } from '../../../errors.js';

export type Obj = Record<string, any>;

/** The Istio networking kinds this control plane translates to xDS. */
export const ISTIO_KINDS: ReadonlySet<string> = new Set(['ServiceEntry', 'DestinationRule', 'VirtualService']);
export const ISTIO_API_VERSIONS: ReadonlySet<string> = new Set(['networking.istio.io/v1alpha3', 'networking.istio.io/v1beta1', 'networking.istio.io/v1']);

/** One Istio object as read from a file, with where it sits (for messages). */
export interface IstioDoc {
  readonly kind: 'ServiceEntry' | 'DestinationRule' | 'VirtualService';
  readonly name: string;
  readonly namespace: string;
  readonly spec: Obj;
  /** The file, relative to the served directory. */
  readonly file: string;
  /** Path prefix of the object inside the file (`documents[1].` or ''). */
  readonly where: string;
}

/** An Envoy resource the translation produced, attributed to the Istio object it came from. */
export interface Generated {
  readonly type: string;
  readonly value: Obj;
  readonly file: string;
  readonly where: string;
}

/** A problem in one file: `error` drops the object (its last good version keeps serving), `warning` drops a field. */
export interface IstioProblem extends FieldError {
  readonly file: string;
  readonly severity: 'error' | 'warning';
}

export interface TranslateOptions {
  /** The outbound listeners' bind address (Istio's sidecars use 0.0.0.0). */
  readonly outboundBind: string;
  /**
   * Also serve, per HTTP service port, the Listener a proxyless gRPC client asks for when it
   * dials `xds:///<host>:<port>`: named `<host>:<port>`, an api_listener taking route
   * configuration "<port>". Off by default: a sidecar proxy has no use for them (Strait refuses them).
   */
  readonly grpcListeners?: boolean;
}
