// rpc_proxy's write batch with direct sends (the addon's send(2)) on a real loopback pair: a
// reader held until the socket drains must hear 'drain' even when the kernel took every byte
// at once and Node's stream never saw them; frames queued from a borrowed arena must reach the
// peer with their own bytes even when they wait in the stream.
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { corkedWrite, directWrites, holdDrain, inReadBatch, unsentBytes } from '../../src/filters/network/rpc_proxy/write_batch.js';

async function pair(): Promise<{ client: net.Socket; received: () => Buffer; close(): void }> {
  const chunks: Buffer[] = [];
  const server = net.createServer((s) => s.on('data', (d: Buffer) => chunks.push(d)));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await new Promise<void>((r) => client.once('connect', () => r()));
  return {
    client,
    received: () => Buffer.concat(chunks),
    close: () => {
      client.destroy();
      server.close();
    },
  };
}

async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 5));
}

describe('rpc_proxy write batch, direct sends', () => {
  let p: Awaited<ReturnType<typeof pair>> | null = null;
  afterEach(() => p?.close());

  it("emits 'drain' for a waiter once a batch the kernel took whole has left", async () => {
    p = await pair();
    expect(directWrites(p.client)).toBe(true);
    // A reader waits as the filter's holdUntilDrained does: a listener and a holdDrain(+1).
    holdDrain(p.client, 1);
    const drained = new Promise<boolean>((r) => {
      p!.client.once('drain', () => r(true));
      setTimeout(() => r(false), 3000);
    });
    corkedWrite(p.client, Buffer.alloc(1000, 0x61));
    expect(await drained).toBe(true);
    expect(p.client.writableLength).toBe(0);
    await until(() => p!.received().length === 1000);
  });

  it('copies borrowed frames that must wait in the stream, and merges adjacent ranges', async () => {
    p = await pair();
    directWrites(p.client);
    const arena = Buffer.alloc(64);
    arena.write('0123456789abcdef');
    // Corked: nothing may be sent directly now, so the frames go into the stream.
    p.client.cork();
    inReadBatch(arena);
    corkedWrite(p.client, arena, 0, 4);
    corkedWrite(p.client, arena, 4, 4);
    corkedWrite(p.client, arena, 10, 6);
    expect(unsentBytes(p.client)).toBe(14);
    await new Promise((r) => process.nextTick(r)); // the read batch ends: its writes leave
    arena.fill(0x78); // the next batch's reads land here
    p.client.uncork();
    await until(() => p!.received().length === 14);
    expect(p.received().toString()).toBe('01234567abcdef');
  });
});
