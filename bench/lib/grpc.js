// gRPC pieces shared by the unary workload and its upstream (bench/tools/grpc-server.js): the
// request and reply messages, the length-prefixed request body h2load posts, and the one-call
// preflight through @grpc/grpc-js that proves a peer carries a real gRPC call (reply bytes and
// grpc-status 0 from the trailers) before it is measured.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export const GRPC_PATH = '/bench.Echo/Unary';

/**
 * A `size`-byte protobuf message: field 1 (string) holding size - 2 printable bytes, so it is a
 * valid message for any `message { string s = 1; }` while the bench needs no protobuf runtime.
 */
export function grpcMessage(size, tag) {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  let text = `strait-${tag}-${size}-`;
  for (let i = 0; text.length < size - 2; i++) text += alphabet[i % alphabet.length];
  const s = Buffer.from(text.slice(0, size - 2), 'latin1');
  if (s.length > 127) throw new Error('grpcMessage: one-byte length only');
  return Buffer.concat([Buffer.from([0x0a, s.length]), s]);
}

/** gRPC's 5-byte prefix (uncompressed, big-endian length) followed by the message. */
export function grpcFrame(msg) {
  const h = Buffer.alloc(5);
  h.writeUInt32BE(msg.length, 1);
  return Buffer.concat([h, msg]);
}

export function grpcMessages(size) {
  return { request: grpcMessage(size, 'req'), reply: grpcMessage(size, 'rep') };
}

let grpcMod;
let grpcErr;
function grpcJs() {
  if (grpcMod || grpcErr) return grpcMod;
  try {
    grpcMod = require('@grpc/grpc-js');
  } catch (err) {
    grpcErr = `@grpc/grpc-js not installed (npm ci): ${err.message.split('\n')[0]}`;
  }
  return grpcMod;
}

/** null when @grpc/grpc-js loads, else why not. */
export function grpcUnavailable() {
  grpcJs();
  return grpcErr ?? null;
}

/** One unary call with @grpc/grpc-js over cleartext HTTP/2; resolves the reply bytes, rejects with the gRPC status. */
export function grpcUnaryCall(port, request, timeoutMs = 5000) {
  const grpc = grpcJs();
  if (!grpc) return Promise.reject(new Error(grpcErr));
  const id = (b) => b;
  const Client = grpc.makeGenericClientConstructor(
    { Unary: { path: GRPC_PATH, requestStream: false, responseStream: false, requestSerialize: id, requestDeserialize: id, responseSerialize: id, responseDeserialize: id } },
    'Echo',
  );
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) => {
    client.Unary(request, { deadline: Date.now() + timeoutMs }, (err, reply) => {
      client.close();
      if (err) reject(new Error(`gRPC status ${err.code} (${grpc.status[err.code] ?? '?'}): ${err.details || err.message}`));
      else resolve(reply);
    });
  });
}
