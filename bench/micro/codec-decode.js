// RPC header decoding, the per-request cost the rpc_proxy pays before routing: the TypeScript
// codecs (dist/protocols/{bolt,dubbo}/codec.js) against the native decoders (native/codec/,
// through dist/protocols/native_codec.js) called once per frame, and called once per read with
// 32 frames (decodeFrames: one boundary crossing amortized over the batch). Also the lazy body
// walks routes may ask for: the Bolt method (inside the hessian2 SofaRequest) and the Dubbo group
// (in the attachments, past the arguments). Frames come from bench/tools/rpc-frames.cjs (written
// by sofa-bolt-node and apache-dubbo-js), 64-byte payload. Results are per frame.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const OPS = 1000;
const BATCH = 32;
const MAX_FRAME = 8 << 20;
const H_SIZE = 19;
const STATE = 0;
const FRAME_LEN = 1;

export default {
  name: 'codec-decode',
  description: 'RPC header decode per frame (Bolt, Dubbo): TypeScript vs native per frame vs native batched (32 frames per call), and lazy method/group walks',
  async load({ importDist }) {
    const bolt = await importDist('protocols/bolt/codec.js');
    const dubbo = await importDist('protocols/dubbo/codec.js');
    const nat = await importDist('protocols/native_codec.js');
    const types = await importDist('protocols/types.js');
    if (!bolt || !dubbo || !nat || !types) return { skip: 'module not built (dist/protocols/{bolt,dubbo}/codec.js, native_codec.js)' };
    let natBolt;
    let natDubbo;
    try {
      natBolt = nat.nativeCodec(bolt.boltCodec);
      natDubbo = nat.nativeCodec(dubbo.dubboCodec);
    } catch (err) {
      return { skip: `native addon unavailable: ${err.message}` };
    }
    const { rpcFrames } = require('../tools/rpc-frames.cjs');
    const H = types.H;
    const tasks = [];
    for (const [proto, ts, native, lazyField] of [
      ['bolt', bolt.boltCodec, natBolt, 'method'],
      ['dubbo', dubbo.dubboCodec, natDubbo, 'group'],
    ]) {
      const frame = Buffer.from(rpcFrames(proto, 'x'.repeat(64)).request);
      const read = Buffer.concat(Array.from({ length: BATCH }, () => frame));
      const out = new Int32Array(H_SIZE);
      const batch = new Int32Array(BATCH * H_SIZE);
      const check = (o) => {
        if (o[STATE] !== 1) throw new Error(`${proto}: decode state ${o[STATE]}`);
      };
      // The same bytes decoded by both before timing: a bench of a broken decoder is worthless.
      ts.decodeHeader(frame, 0, frame.length, MAX_FRAME, out);
      const tsSlots = Array.from(out);
      native.decodeHeader(frame, 0, frame.length, MAX_FRAME, out);
      if (JSON.stringify(Array.from(out)) !== JSON.stringify(tsSlots)) throw new Error(`${proto}: native and TypeScript slots differ`);
      const perFrame = (codec) => () => {
        for (let i = 0; i < OPS; i++) codec.decodeHeader(frame, 0, frame.length, MAX_FRAME, out);
        check(out);
      };
      // A read of 32 frames: the framer's loop in TypeScript, or one native call.
      const tsRead = () => {
        for (let r = 0; r < OPS / BATCH; r++) {
          let pos = 0;
          while (pos < read.length) {
            ts.decodeHeader(read, pos, read.length, MAX_FRAME, out);
            pos += out[FRAME_LEN];
          }
        }
        check(out);
      };
      const nativeRead = () => {
        for (let r = 0; r < OPS / BATCH; r++) {
          const n = native.decodeFrames(read, 0, read.length, MAX_FRAME, batch, BATCH);
          if (n !== BATCH) throw new Error(`${proto}: decodeFrames gave ${n}`);
        }
        check(batch);
      };
      const hdr = new Int32Array(H_SIZE);
      ts.decodeHeader(frame, 0, frame.length, MAX_FRAME, hdr);
      const offSlot = lazyField === 'method' ? H.METHOD_OFF : H.GROUP_OFF;
      const lazy = (codec) => () => {
        for (let i = 0; i < OPS; i++) codec.decodeLazy(frame, 0, hdr, lazyField);
        if (hdr[offSlot] < 0) throw new Error(`${proto}: lazy ${lazyField} undecodable`);
      };
      const rounded = Math.floor(OPS / BATCH) * BATCH;
      tasks.push(
        { name: `${proto} header: TypeScript, per frame (x${OPS})`, opsPerCall: OPS, fn: perFrame(ts) },
        { name: `${proto} header: native, per frame (x${OPS})`, opsPerCall: OPS, fn: perFrame(native) },
        { name: `${proto} header: TypeScript, ${BATCH}-frame reads (x${rounded})`, opsPerCall: rounded, fn: tsRead },
        { name: `${proto} header: native batched, ${BATCH} frames per call (x${rounded})`, opsPerCall: rounded, fn: nativeRead },
        { name: `${proto} lazy ${lazyField}: TypeScript (x${OPS})`, opsPerCall: OPS, fn: lazy(ts) },
        { name: `${proto} lazy ${lazyField}: native (x${OPS})`, opsPerCall: OPS, fn: lazy(native) },
      );
    }
    return { tasks };
  },
};
