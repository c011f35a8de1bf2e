// PerConnection (src/io/per_connection.ts) keeps a connection's value on the connection's own
// object. The WeakMaps it replaced kept each connection's key and value through scavenges when
// the value named its key (a Downstream its socket): every connection was promoted. Measured in
// a child with --expose-gc: old-space growth over two scavenges after 20,000 short-lived keys.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PerConnection } from '../../src/io/per_connection.js';

const dist = path.resolve(import.meta.dirname, '../../dist');

function promotedBy(kind: 'per-connection' | 'weakmap'): Promise<number> {
  const script = `
    import v8 from 'node:v8';
    const { PerConnection } = await import(${JSON.stringify(`${dist}/io/per_connection.js`)});
    const slot = new PerConnection('test');
    const map = new WeakMap();
    // Both containers old, as a process-wide one is after its first minutes.
    gc(); gc();
    const old = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'old_space').space_used_size;
    function connection(i) {
      const socket = {};
      const downstream = { socket, n: i, close: () => socket };
      if (${JSON.stringify(kind)} === 'weakmap') map.set(socket, downstream);
      else slot.set(socket, downstream);
    }
    setTimeout(() => {
      for (let i = 0; i < 20000; i++) connection(i);
      const before = old();
      gc({ type: 'minor' });
      gc({ type: 'minor' });
      process.stdout.write(String(old() - before));
    }, 0);`;
  return new Promise((resolve, reject) =>
    execFile(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { timeout: 20_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(Number(stdout)),
    ),
  );
}

describe('PerConnection', () => {
  it('keeps one value per object and slot', () => {
    const a = new PerConnection<number>('a');
    const b = new PerConnection<number>('b');
    const x = {};
    const y = {};
    expect(a.get(x)).toBeUndefined();
    a.set(x, 1);
    b.set(x, 2);
    a.set(y, 3);
    expect([a.get(x), b.get(x), a.get(y), b.get(y)]).toEqual([1, 2, 3, undefined]);
    // Not an own string key: JSON and key listings of the object do not see it.
    expect(Object.keys(x)).toEqual([]);
  });

  it('lets short-lived connections die in scavenges, where a WeakMap promoted every one', async () => {
    const [slot, map] = await Promise.all([promotedBy('per-connection'), promotedBy('weakmap')]);
    // ~100 bytes per connection if its objects were promoted: 2 MB for 20,000.
    expect(slot).toBeLessThan(200 * 1024);
    // The premise (Node 20's V8). Should a later V8 clear these entries in scavenges, this
    // fails: PerConnection is then no longer needed for this reason.
    expect(map).toBeGreaterThan(1024 * 1024);
  });
});
