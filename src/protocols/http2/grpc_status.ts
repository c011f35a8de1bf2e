/**
 * Envoy's mapping of an HTTP status to a gRPC one (Grpc::Utility::httpToGrpcStatus), for replies
 * to gRPC clients, which read grpc-status and never the HTTP status. `timeoutIsDeadline`: a 504
 * the proxy made for a timeout reads as DEADLINE_EXCEEDED (Envoy's router does so for its own
 * timeouts); otherwise 504 is UNAVAILABLE, as in the table.
 */
export function grpcStatusOfHttp(status: number, timeoutIsDeadline = false): number {
  switch (status) {
    case 400:
      return 13; // INTERNAL
    case 401:
      return 16; // UNAUTHENTICATED
    case 403:
      return 7; // PERMISSION_DENIED
    case 404:
      return 12; // UNIMPLEMENTED
    case 504:
      return timeoutIsDeadline ? 4 : 14; // DEADLINE_EXCEEDED : UNAVAILABLE
    case 429: // the rate limiter can ask for RESOURCE_EXHAUSTED instead
    case 502:
    case 503:
      return 14; // UNAVAILABLE
    default:
      return 2; // UNKNOWN
  }
}
