// The hot-restart channel (native/upgrade): the serving process accepts the new epoch through the
// addon's Acceptor, then both sides send large messages (a stats delta of a big mesh runs to MBs).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { b } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'strait-upgrade-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function recvAll(fd: number): Buffer {
  const m = b.upgrade.recv(fd, 2000);
  if (!m || 'eof' in m) throw new Error(`nothing received on fd ${fd}`);
  return m.data;
}

describe('hot-restart channel', () => {
  it('carries a message far above the default socket buffer both ways on an Acceptor-accepted fd', async () => {
    const lfd = b.upgrade.listen(path.join(tmp, 'ch'));
    let acc: { close(): void } | null = null;
    const accepted = new Promise<number>((resolve) => {
      acc = new b.Acceptor(lfd, (fd) => resolve(fd), () => {});
    });
    const child = b.upgrade.connect(path.join(tmp, 'ch'));
    const parent = await accepted;
    try {
      // Over /proc/sys/net/core/wmem_default (208 KiB): a send on a socket left at the default fails EMSGSIZE.
      const big = Buffer.alloc(1024 * 1024);
      for (let i = 0; i < big.length; i++) big[i] = i * 31;
      b.upgrade.send(parent, big);
      expect(recvAll(child).equals(big)).toBe(true);
      const back = Buffer.from(big).reverse();
      b.upgrade.send(child, back);
      expect(recvAll(parent).equals(back)).toBe(true);
    } finally {
      acc!.close();
      b.closeFd(parent);
      b.closeFd(child);
    }
  });
});
