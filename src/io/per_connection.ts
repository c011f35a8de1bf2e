/**
 * A value kept on a connection's own object (its socket, its HTTP/2 session, its TLS facts,
 * its Downstream) under a symbol of this slot, in place of a WeakMap keyed by those objects.
 *
 * Such a WeakMap outlives thousands of connections, so its table is in the old generation, and
 * Node 20's scavenger keeps an old table's entry whose value names its key (a Downstream its
 * socket): key, value and all they reach survived every scavenge until a mark-compact. Every
 * connection's objects were promoted (h2c connections, --trace-gc: 1003 bytes promoted per
 * connection, a mark-compact every ~6,000 connections; 5 bytes and none once the entries went).
 * A property dies with its object.
 */
export class PerConnection<V> {
  private readonly key: symbol;

  constructor(name: string) {
    this.key = Symbol(name);
  }

  get(o: object): V | undefined {
    return (o as Record<symbol, V | undefined>)[this.key];
  }

  set(o: object, v: V): void {
    (o as Record<symbol, V>)[this.key] = v;
  }
}
