// RPC pieces shared by the Bolt/Dubbo workloads and their upstream: the pre-encoded frames
// (bench/tools/rpc-frames.cjs, CommonJS because the client libraries are) and the one-call
// preflight that proves a peer carries a real call before it is measured.
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import { TOOLS_DIR } from './tools.js';

const require = createRequire(import.meta.url);
/** The interface every bench call names (Envoy's dubbo_proxy routes need it spelled out). */
export const RPC_SERVICE = require(path.join(TOOLS_DIR, 'rpc-frames.cjs')).SERVICE;
let framesMod;
let framesErr;

function mod() {
  if (framesMod || framesErr) return framesMod;
  try {
    framesMod = require(path.join(TOOLS_DIR, 'rpc-frames.cjs'));
    // Fail here, not mid-run, when a client library is missing.
    framesMod.rpcFrames('bolt', 'x');
    framesMod.rpcFrames('dubbo', 'x');
  } catch (err) {
    framesMod = null;
    framesErr = `RPC client libraries not installed (npm ci installs sofa-rpc-node and apache-dubbo-js): ${err.message.split('\n')[0]}`;
  }
  return framesMod;
}

/** null when the frames can be encoded, else why not. */
export function rpcUnavailable() {
  mod();
  return framesErr ?? null;
}

/** The exact string every call sends and every response carries: printable, `size` bytes. */
export function rpcPayload(size) {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  let s = `strait-bench-rpc-${size}-`;
  for (let i = 0; s.length < size; i++) s += alphabet[i % alphabet.length];
  return s.slice(0, size);
}

const cache = new Map();
/** { request, response, service, version, method, payload } for a protocol and payload size. */
export function rpcFrames(protocol, size) {
  const key = `${protocol}/${size}`;
  if (!cache.has(key)) cache.set(key, mod().rpcFrames(protocol, rpcPayload(size)));
  return cache.get(key);
}

/**
 * Sends `ids.length` calls on each of `conns` connections at once (every connection numbering
 * from the same ids, so they collide in a proxy's shared upstream connection) and checks that
 * each comes back once, with its id, decoded by the client library to the exact payload.
 */
export async function rpcPreflight(port, protocol, size, { conns = 2, ids = [1, 2, 3], timeoutMs = 5000 } = {}) {
  const m = mod();
  const f = rpcFrames(protocol, size);
  const one = (i) =>
    new Promise((resolve, reject) => {
      const s = net.connect({ port, host: '127.0.0.1' });
      let buf = Buffer.alloc(0);
      const got = new Map();
      const t = setTimeout(() => done(new Error(`connection ${i}: ${got.size} of ${ids.length} responses within ${timeoutMs} ms`)), timeoutMs);
      function done(err) {
        clearTimeout(t);
        s.destroy();
        if (err) reject(err);
        else resolve(got);
      }
      s.on('error', (e) => done(e));
      s.on('connect', () => s.write(Buffer.concat(ids.map((id) => m.setRequestId(protocol, Buffer.from(f.request), id)))));
      s.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        for (let n = m.frameLength(protocol, buf); n; n = m.frameLength(protocol, buf)) {
          const frame = buf.subarray(0, n);
          buf = buf.subarray(n);
          let r;
          try {
            r = m.decodeResponse(protocol, frame);
          } catch (err) {
            return done(new Error(`connection ${i}: response does not decode: ${err.message}`));
          }
          if (!ids.includes(r.id) || got.has(r.id)) return done(new Error(`connection ${i}: unexpected response id ${r.id}`));
          if (r.value !== f.payload) return done(new Error(`connection ${i}: response ${r.id} carries ${JSON.stringify(String(r.value).slice(0, 60))}, not the payload`));
          if (n !== f.response.length) return done(new Error(`connection ${i}: response of ${n} bytes, the upstream sends ${f.response.length}`));
          got.set(r.id, n);
        }
        if (got.size === ids.length) done(null);
      });
      s.on('end', () => done(new Error(`connection ${i}: closed after ${got.size} of ${ids.length} responses`)));
    });
  await Promise.all(Array.from({ length: conns }, (_, i) => one(i)));
  return { responseBytes: f.response.length };
}
