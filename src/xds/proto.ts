import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';
import type protobuf from 'protobufjs';
import { lookupType, toJsonValue, toProtobufObject } from '../config/index.js';

/**
 * The ADS wire types (envoy.service.discovery.v3) as plain objects with the proto's snake_case
 * field names, and the grpc-js method definitions that (de)serialize them with the same
 * protobufjs root the config decoder uses. No generated code: one registry for config and xDS.
 */

export const TYPE_PREFIX = 'type.googleapis.com/';

export const LISTENER_TYPE = `${TYPE_PREFIX}envoy.config.listener.v3.Listener`;
export const CLUSTER_TYPE = `${TYPE_PREFIX}envoy.config.cluster.v3.Cluster`;
export const ENDPOINT_TYPE = `${TYPE_PREFIX}envoy.config.endpoint.v3.ClusterLoadAssignment`;
export const ROUTE_TYPE = `${TYPE_PREFIX}envoy.config.route.v3.RouteConfiguration`;
export const SCOPED_ROUTE_TYPE = `${TYPE_PREFIX}envoy.config.route.v3.ScopedRouteConfiguration`;
export const VHOST_TYPE = `${TYPE_PREFIX}envoy.config.route.v3.VirtualHost`;
export const SECRET_TYPE = `${TYPE_PREFIX}envoy.extensions.transport_sockets.tls.v3.Secret`;
export const EXTENSION_CONFIG_TYPE = `${TYPE_PREFIX}envoy.config.core.v3.TypedExtensionConfig`;
export const RUNTIME_TYPE = `${TYPE_PREFIX}envoy.service.runtime.v3.Runtime`;
export const TYPED_STRUCT_TYPE = `${TYPE_PREFIX}xds.type.v3.TypedStruct`;

/**
 * The order a control plane pushes in, so a client never sees a reference before its target:
 * clusters, then their endpoints, then listeners, then the routes listeners name.
 */
export const PUSH_ORDER: readonly string[] = [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, SCOPED_ROUTE_TYPE, VHOST_TYPE, SECRET_TYPE, EXTENSION_CONFIG_TYPE, RUNTIME_TYPE];

/**
 * LDS and CDS are wildcard in the state-of-the-world protocol: every response is the full set.
 * Secrets are not: a client asks for them by name, and an empty name list must not hand every
 * private key of the control plane to a proxy that needs none ('*' still asks for all).
 */
export const WILDCARD_TYPES: ReadonlySet<string> = new Set([LISTENER_TYPE, CLUSTER_TYPE, SCOPED_ROUTE_TYPE, RUNTIME_TYPE]);

/** The field holding each resource type's name (ClusterLoadAssignment calls it cluster_name). */
export function resourceName(typeUrl: string, r: Record<string, unknown>): string {
  const v = typeUrl === ENDPOINT_TYPE ? r.cluster_name : r.name;
  return typeof v === 'string' ? v : '';
}

/** Short labels for logs and stats: `envoy.config.cluster.v3.Cluster` → `Cluster`. */
export function shortType(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf('.') + 1);
}

export interface Status {
  code: number;
  message: string;
}

export interface AnyMsg {
  type_url: string;
  value: Uint8Array;
}

export interface DiscoveryRequest {
  version_info?: string;
  node?: Record<string, unknown> | null;
  resource_names?: string[];
  type_url?: string;
  response_nonce?: string;
  error_detail?: Status | null;
}

export interface DiscoveryResponse {
  version_info?: string;
  resources?: AnyMsg[];
  type_url?: string;
  nonce?: string;
}

export interface DeltaDiscoveryRequest {
  node?: Record<string, unknown> | null;
  type_url?: string;
  resource_names_subscribe?: string[];
  resource_names_unsubscribe?: string[];
  initial_resource_versions?: Record<string, string>;
  response_nonce?: string;
  error_detail?: Status | null;
}

export interface DeltaResource {
  name: string;
  version: string;
  resource?: AnyMsg | null;
}

export interface DeltaDiscoveryResponse {
  system_version_info?: string;
  resources?: DeltaResource[];
  type_url?: string;
  removed_resources?: string[];
  nonce?: string;
}

const NODE = 'envoy.config.core.v3.Node';

let types: Record<'req' | 'res' | 'dreq' | 'dres' | 'node', protobuf.Type> | null = null;

function t() {
  if (!types) {
    const get = (n: string) => {
      const ty = lookupType(n);
      if (!ty) throw new Error(`${n} is missing from the Envoy API registry`);
      return ty;
    };
    types = {
      req: get('envoy.service.discovery.v3.DiscoveryRequest'),
      res: get('envoy.service.discovery.v3.DiscoveryResponse'),
      dreq: get('envoy.service.discovery.v3.DeltaDiscoveryRequest'),
      dres: get('envoy.service.discovery.v3.DeltaDiscoveryResponse'),
      node: get(NODE),
    };
  }
  return types;
}

/**
 * Node arrives decoded by protobufjs (metadata as a Struct message); the rest of Strait works on
 * the normalized JSON form, and the encoder wants fromObject input: convert at the edges.
 */
function encodeNode(node: Record<string, unknown> | null | undefined): unknown {
  return node ? toProtobufObject(t().node, node) : undefined;
}

function decodeNode(node: unknown): Record<string, unknown> | null {
  return node ? (toJsonValue(t().node, node) as Record<string, unknown>) : null;
}

function encoder<T extends { node?: Record<string, unknown> | null }>(type: () => protobuf.Type) {
  return (m: T): Buffer => {
    const ty = type();
    const obj = 'node' in m ? { ...m, node: encodeNode(m.node) } : m;
    return Buffer.from(ty.encode(ty.fromObject(obj as Record<string, unknown>)).finish());
  };
}

function decoder<T>(type: () => protobuf.Type, hasNode: boolean) {
  return (b: Buffer): T => {
    const m = type().decode(b) as unknown as Record<string, unknown>;
    // protobufjs leaves unset fields on the prototype; copy own fields so spreads see them.
    const out: Record<string, unknown> = { ...m };
    for (const k of Object.keys(type().fields)) if (out[k] === undefined && (m as Record<string, unknown>)[k] !== undefined) out[k] = m[k];
    if (hasNode) out.node = decodeNode(m.node);
    return out as T;
  };
}

export const encodeRequest = encoder<DiscoveryRequest>(() => t().req);
export const decodeRequest = decoder<DiscoveryRequest>(() => t().req, true);
export const encodeResponse = encoder<DiscoveryResponse & { node?: null }>(() => t().res);
export const decodeResponse = decoder<DiscoveryResponse>(() => t().res, false);
export const encodeDeltaRequest = encoder<DeltaDiscoveryRequest>(() => t().dreq);
export const decodeDeltaRequest = decoder<DeltaDiscoveryRequest>(() => t().dreq, true);
export const encodeDeltaResponse = encoder<DeltaDiscoveryResponse & { node?: null }>(() => t().dres);
export const decodeDeltaResponse = decoder<DeltaDiscoveryResponse>(() => t().dres, false);

const SERVICE = '/envoy.service.discovery.v3.AggregatedDiscoveryService';

function bidi<Req, Res>(
  name: string,
  service: string,
  reqSer: (m: Req) => Buffer,
  reqDes: (b: Buffer) => Req,
  resSer: (m: Res) => Buffer,
  resDes: (b: Buffer) => Res,
): MethodDefinition<Req, Res> {
  return {
    path: `${service}/${name}`,
    requestStream: true,
    responseStream: true,
    requestSerialize: reqSer,
    requestDeserialize: reqDes,
    responseSerialize: resSer,
    responseDeserialize: resDes,
  };
}

export const SOTW_METHOD = bidi<DiscoveryRequest, DiscoveryResponse>('StreamAggregatedResources', SERVICE, encodeRequest, decodeRequest, encodeResponse, decodeResponse);
export const DELTA_METHOD = bidi<DeltaDiscoveryRequest, DeltaDiscoveryResponse>(
  'DeltaAggregatedResources',
  SERVICE,
  encodeDeltaRequest,
  decodeDeltaRequest,
  encodeDeltaResponse,
  decodeDeltaResponse,
);

/**
 * The stand-alone SDS service (Istio's pilot-agent serves it on a unix socket, the `sds-grpc`
 * cluster): the same messages as ADS on another service name.
 */
const SDS_SERVICE = '/envoy.service.secret.v3.SecretDiscoveryService';
export const SDS_SOTW_METHOD = bidi<DiscoveryRequest, DiscoveryResponse>('StreamSecrets', SDS_SERVICE, encodeRequest, decodeRequest, encodeResponse, decodeResponse);
export const SDS_DELTA_METHOD = bidi<DeltaDiscoveryRequest, DeltaDiscoveryResponse>('DeltaSecrets', SDS_SERVICE, encodeDeltaRequest, decodeDeltaRequest, encodeDeltaResponse, decodeDeltaResponse);

export const ADS_SERVICE = {
  StreamAggregatedResources: SOTW_METHOD,
  DeltaAggregatedResources: DELTA_METHOD,
} satisfies ServiceDefinition;

/** google.rpc.Code values used in error_detail. */
export const GRPC_INVALID_ARGUMENT = 3;
