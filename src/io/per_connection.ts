/**
 * A value kept on a connection's own object (its socket, its HTTP/2 session, its TLS facts,
 * its Downstream) under a symbol of this slot, in place of a WeakMap keyed by those objects.
 *
 * Such a WeakMap outlives thousands of connections, so its table is in the old generation, and
 * its entries held each connection's key and value through every scavenge until a mark-compact
 * cleared them: the value named its key (a Downstream its socket), and the scavenger does not
 * clear a dead key's entry in an old table. Every connection's objects were promoted (h2c
 * connections, --trace-gc: 1003 bytes promoted per connection, a mark-compact every ~3,000
 * connections; 6 bytes and none once the entries went). A property dies with its object.
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
