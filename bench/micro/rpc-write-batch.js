// rpc_proxy corks a socket for the rest of the tick on its first write, so every frame bound for
// that socket in one event-loop turn leaves in one writev. This compares the cost per frame of
// 32 small frames written one syscall each with the corked batch, on a real loopback socket.
import net from 'node:net';

const FRAMES = 32;
const frame = Buffer.alloc(96, 0x61); // a small RPC response

export default {
  name: 'rpc write batching',
  description: 'dist/filters/network/rpc_proxy/write_batch.js: 32 frames per tick, write each vs corkedWrite',
  async load({ importDist }) {
    const mod = await importDist('filters/network/rpc_proxy/write_batch.js');
    if (!mod) return { skip: 'module not built (dist/filters/network/rpc_proxy/write_batch.js)' };
    // Every handle unref'd, the accepted socket too, so the micro runner can exit when done.
    const sink = net.createServer((s) => s.unref().on('data', () => {}));
    await new Promise((r) => sink.listen(0, '127.0.0.1', r));
    sink.unref();
    const sock = net.connect(sink.address().port, '127.0.0.1');
    sock.setNoDelay(true);
    await new Promise((r) => sock.once('connect', r));
    sock.unref();
    // Each call writes one batch, then yields a turn so the batch is flushed and read.
    const turn = () => new Promise((r) => setImmediate(r));
    return {
      tasks: [
        {
          name: `write each frame (${FRAMES} per turn)`,
          opsPerCall: FRAMES,
          fn: async () => {
            for (let i = 0; i < FRAMES; i++) sock.write(frame);
            await turn();
          },
        },
        {
          name: `corkedWrite, one writev (${FRAMES} per turn)`,
          opsPerCall: FRAMES,
          fn: async () => {
            for (let i = 0; i < FRAMES; i++) mod.corkedWrite(sock, frame);
            await turn();
          },
        },
      ],
    };
  },
};
