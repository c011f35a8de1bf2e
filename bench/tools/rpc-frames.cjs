// The bench's RPC frames, encoded once by the real client libraries — sofa-bolt-node (what
// sofa-rpc-node sends) and apache-dubbo-js — and, for responses, by the same encoders real
// providers' peers use (sofa-bolt-node's response encoder; test/fixtures/rpc/dubbo_provider.cjs).
// The load generator and the upstream then only patch request ids into these bytes, so the
// measured cost is the proxies', not hessian's.
//
// rpcFrames(protocol, payload) -> { request, response, service, method, payload }  (Buffers)
// decodeResponse(protocol, frame) -> the value a real client would see (for preflight checks)
'use strict';

const path = require('node:path');

const SERVICE = 'com.strait.bench.EchoService';
const VERSION = '1.0.0';
const METHOD = 'echo';
const BOLT_OPTS = { protocolType: 'bolt', codecType: 'hessian2', boltVersion: 1, crcEnable: false };

const javaString = (s) => ({ $class: 'java.lang.String', $: s });

function boltFrames(payload) {
  const bolt = require('sofa-bolt-node/lib/protocol');
  const RpcRequest = require('sofa-rpc-node/lib/client/request');
  // What sofa-rpc-node's consumer builds for consumer.invoke(METHOD, [payload]).
  const req = new RpcRequest({ serverSignature: `${SERVICE}:${VERSION}`, methodName: METHOD, args: [javaString(payload)], timeout: 3000 });
  const request = bolt.requestEncode(1, req, BOLT_OPTS);
  const decoded = bolt.decode(request, {});
  const response = bolt.responseEncode(1, { isError: false, appResponse: javaString(payload), appRequest: decoded.data }, BOLT_OPTS);
  return { request, response };
}

function dubboFrames(payload) {
  const Context = require('apache-dubbo-js/es7/context').default;
  const DubboEncoder = require('apache-dubbo-js/es7/encode').default;
  const { resultResponse } = require(path.join(__dirname, '../../test/fixtures/rpc/dubbo_provider.cjs'));
  const ctx = Context.create();
  ctx.requestId = 1;
  ctx.dubboVersion = '2.0.2';
  ctx.dubboInterface = SERVICE;
  ctx.path = SERVICE;
  ctx.version = VERSION;
  ctx.methodName = METHOD;
  ctx.methodArgs = [javaString(payload)];
  ctx.timeout = 3000;
  const request = new DubboEncoder(ctx).encode();
  const response = resultResponse(1n, { value: payload, dubboVersion: '2.0.2' });
  return { request, response };
}

function rpcFrames(protocol, payload) {
  const f = protocol === 'bolt' ? boltFrames(payload) : protocol === 'dubbo' ? dubboFrames(payload) : null;
  if (!f) throw new Error(`unknown RPC protocol ${protocol}`);
  return { ...f, service: SERVICE, version: VERSION, method: METHOD, payload };
}

/** Decodes one response frame with the client library's own decoder. */
function decodeResponse(protocol, frame) {
  if (protocol === 'bolt') {
    const res = require('sofa-bolt-node/lib/protocol').decode(frame, { sentReqs: new Map() });
    if (res.packetType !== 'response') throw new Error(`bolt: expected a response, got ${res.packetType}`);
    if (res.data.error) throw res.data.error;
    if (res.data.appResponse === undefined) throw new Error(`bolt: no appResponse in ${JSON.stringify(res.data).slice(0, 200)}`);
    return { id: res.packetId, value: res.data.appResponse };
  }
  const { decode } = require('apache-dubbo-js/es7/decode');
  const r = decode(frame);
  if (r.err) throw r.err;
  return { id: r.requestId, value: r.res };
}

/** Bytes of the first whole frame at the start of `buf`, or 0 when incomplete. */
function frameLength(protocol, buf) {
  if (protocol === 'bolt') {
    // v1 response: 20-byte header, classLen u16 at 12, headerLen u16 at 14, contentLen u32 at 16.
    if (buf.length < 20) return 0;
    const n = 20 + buf.readUInt16BE(12) + buf.readUInt16BE(14) + buf.readUInt32BE(16);
    return buf.length >= n ? n : 0;
  }
  if (buf.length < 16) return 0;
  const n = 16 + buf.readInt32BE(12);
  return buf.length >= n ? n : 0;
}

/** Writes request id `id` into a request frame in place (Bolt u32 at 5, Dubbo i64 at 4). */
function setRequestId(protocol, frame, id) {
  if (protocol === 'bolt') frame.writeUInt32BE(id, 5);
  else frame.writeBigInt64BE(BigInt(id), 4);
  return frame;
}

module.exports = { rpcFrames, decodeResponse, frameLength, setRequestId, SERVICE, VERSION, METHOD };
