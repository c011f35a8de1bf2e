import type net from 'node:net';

const corked = new WeakSet<net.Socket>();

/**
 * Writes with the socket corked until the end of this tick, so every frame bound for one socket
 * in one event-loop turn leaves in a single writev.
 */
export function corkedWrite(socket: net.Socket, chunk: Buffer): void {
  if (!corked.has(socket)) {
    corked.add(socket);
    socket.cork();
    process.nextTick(() => {
      corked.delete(socket);
      socket.uncork();
    });
  }
  socket.write(chunk);
}
