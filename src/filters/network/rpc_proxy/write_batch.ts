import type net from 'node:net';

const corked: net.Socket[] = [];
let scheduled = false;

function flush(): void {
  scheduled = false;
  // uncork may run write callbacks that cork again for the next turn: take the list first.
  const list = corked.splice(0);
  for (const s of list) {
    (s as { strait_corked?: boolean }).strait_corked = false;
    s.uncork();
  }
}

/**
 * Writes with the socket corked until the end of this event-loop turn (the check phase, after
 * every socket read in the turn has been handled), so all frames bound for one socket in one
 * turn — from every client sharing an upstream connection — leave in a single writev.
 */
export function corkedWrite(socket: net.Socket, chunk: Buffer): void {
  const s = socket as net.Socket & { strait_corked?: boolean };
  if (!s.strait_corked) {
    s.strait_corked = true;
    socket.cork();
    corked.push(socket);
    if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  }
  socket.write(chunk);
}
