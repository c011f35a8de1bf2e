// Framer.pushAt with borrowed bytes (the batch reader's arena, reused after each read batch):
// frames are handed out in place, and the tail of a partial frame must survive the source
// being overwritten. Runs the TypeScript decoder (a custom codec) and the addon's batch decoder.
import { describe, expect, it } from 'vitest';
import { Framer } from '../../src/filters/network/rpc_proxy/framer.js';
import { exampleCodec, exampleFrame, ExampleType } from '../../src/protocols/example/codec.js';
import { boltCodec } from '../../src/protocols/bolt/codec.js';
import { nativeCodec } from '../../src/protocols/native_codec.js';
import { H, type RpcCodec } from '../../src/protocols/types.js';

/** A Bolt v1 response frame carrying `body`. */
function boltResponse(id: number, body: Buffer): Buffer {
  const h = Buffer.alloc(20);
  h[0] = 1;
  h.writeUInt16BE(2, 2);
  h[4] = 1;
  h.writeUInt32BE(id, 5);
  h[9] = 1;
  h.writeUInt32BE(body.length, 16);
  return Buffer.concat([h, body]);
}

const CODECS: [string, RpcCodec, (id: number, body: Buffer) => Buffer][] = [
  ['example (TypeScript decoder)', exampleCodec, (id, body) => exampleFrame(ExampleType.RESPONSE, id, 0, '', body)],
  ['bolt (native batch decoder)', nativeCodec(boltCodec), boltResponse],
];

describe.each(CODECS)('Framer over borrowed reads, %s', (_name, codec, frame) => {
  it('delivers every frame intact when each read is overwritten right after it is pushed', () => {
    const frames: Buffer[] = [];
    for (let id = 1; id <= 200; id++) frames.push(frame(id, Buffer.alloc(1 + ((id * 37) % 300), id & 0xff)));
    const stream = Buffer.concat(frames);
    const got: { id: number; body: Buffer }[] = [];
    const f = new Framer(codec, 1 << 20, (buf, off, hdr) => {
      got.push({ id: hdr[H.ID_LO]!, body: Buffer.from(buf.subarray(hdr[H.BODY_OFF]!, off + hdr[H.FRAME_LEN]!)) });
    }, (code) => {
      throw new Error(`decode error ${code}`);
    });
    // One arena reused for every read, at a moving offset, as the batch reader does.
    const arena = Buffer.alloc(4096);
    for (let at = 0, i = 0; at < stream.length; i++) {
      const n = Math.min(stream.length - at, 1 + ((i * 211) % 700));
      const off = (i * 97) % (arena.length - n);
      stream.copy(arena, off, at, at + n);
      f.pushAt(arena, off, off + n, false);
      arena.fill(0xee); // the next batch's reads land here
      at += n;
    }
    expect(f.buffered).toBe(0);
    expect(got.map((g) => g.id)).toEqual(frames.map((_, i) => i + 1));
    for (const g of got) expect(g.body.equals(Buffer.alloc(1 + ((g.id * 37) % 300), g.id & 0xff))).toBe(true);
  });
});
