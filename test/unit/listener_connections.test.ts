// The list of a listener's open connections (src/listener/listener.ts ConnectionList): linked
// through the connections, so that a connection per request leaves no table behind for the
// young-generation GC to treat as roots. Order, removal from anywhere, and a second done().
import { describe, expect, it } from 'vitest';
import { ConnectionList, ListenerConnection } from '../../src/listener/listener.js';

function conn(): ListenerConnection {
  // The listener and the socket are not touched by the list.
  return new ListenerConnection(null as never, null as never, 0, undefined, false);
}

describe('ConnectionList', () => {
  it('holds what was added, newest first, and lets go of each from any place', () => {
    const l = new ConnectionList();
    const [a, b, c, d] = [conn(), conn(), conn(), conn()];
    for (const x of [a, b, c, d]) l.add(x);
    expect(l.size).toBe(4);
    expect(l.toArray()).toEqual([d, c, b, a]);
    expect(l.delete(b)).toBe(true); // middle
    expect(l.toArray()).toEqual([d, c, a]);
    expect(l.delete(d)).toBe(true); // head
    expect(l.delete(a)).toBe(true); // tail
    expect(l.toArray()).toEqual([c]);
    expect(l.size).toBe(1);
    // Nothing of the list stays on a connection that left it.
    expect([b.prev, b.next, d.prev, d.next, a.prev, a.next]).toEqual([null, null, null, null, null, null]);
  });

  it('counts a connection once: a second delete says false and changes nothing', () => {
    const l = new ConnectionList();
    const [a, b] = [conn(), conn()];
    l.add(a);
    l.add(b);
    expect(l.delete(a)).toBe(true);
    expect(l.delete(a)).toBe(false);
    expect(l.size).toBe(1);
    expect(l.toArray()).toEqual([b]);
    // Re-added after leaving (not done by listeners, but the list allows it).
    l.add(a);
    expect(l.toArray()).toEqual([a, b]);
    expect(l.delete(b)).toBe(true);
    expect(l.delete(a)).toBe(true);
    expect(l.size).toBe(0);
    expect(l.toArray()).toEqual([]);
  });

  it('gives a copy to go through: connections closed meanwhile do not cut it short', () => {
    const l = new ConnectionList();
    const all = [conn(), conn(), conn()];
    for (const x of all) l.add(x);
    const seen: ListenerConnection[] = [];
    for (const x of l.toArray()) {
      seen.push(x);
      l.delete(x);
    }
    expect(seen).toHaveLength(3);
    expect(l.size).toBe(0);
  });
});
