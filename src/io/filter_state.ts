/**
 * Connection-lifetime facts a network filter publishes for the filters after it, by name:
 * Envoy's FilterState with the connection life span, reduced to what Strait's readers need
 * (string values). A key is set once and is read-only from then on, as Istio sets its
 * principals. Only `istio_authn` writes here so far; RBAC `filter_state` rules read it (the
 * HTTP filter through its request's connection), and a key nobody set matches nothing.
 */
export class FilterState {
  private readonly values = new Map<string, string>();

  /**
   * Sets `key` unless it is already set. Envoy refuses to overwrite a read-only object; here
   * the first writer wins and the caller learns it lost (false).
   */
  setReadOnly(key: string, value: string): boolean {
    if (this.values.has(key)) return false;
    this.values.set(key, value);
    return true;
  }

  get(key: string): string | undefined {
    return this.values.get(key);
  }
}

/** The filter state keys istio-proxy's `istio_authn` sets: the first `spiffe://` URI SAN of each side. */
export const PEER_PRINCIPAL_KEY = 'io.istio.peer_principal';
export const LOCAL_PRINCIPAL_KEY = 'io.istio.local_principal';
