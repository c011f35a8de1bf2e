/**
 * The Host (or :authority) without its port, for the connection manager's `strip_any_host_port`
 * (`only` -1: any port) and `strip_matching_host_port` (`only`: the port the connection came to,
 * as Envoy compares it): routing and the upstream then see the bare host. A host without a port,
 * or with another port than `only`, is returned as it is.
 */
export function stripHostPort(host: string, only: number): string {
  let i: number;
  if (host.charCodeAt(0) === 0x5b /* [ */) {
    const e = host.indexOf(']');
    if (e === -1 || host.charCodeAt(e + 1) !== 0x3a /* : */) return host;
    i = e + 1;
  } else {
    i = host.lastIndexOf(':');
    if (i === -1) return host;
  }
  if (only >= 0 && host.slice(i + 1) !== String(only)) return host;
  return host.slice(0, i);
}
