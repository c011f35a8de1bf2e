import type { Scope } from '../../../observability/stats.js';
import type { HttpRequestView, HttpRoute, HttpRouteTable } from '../../../router/http_route_table.js';

// Apart from rds.ts (the file source) so that bootstrap validation can hand out RDS tables
// without loading the route table compiler and the file reader (idle memory).

/** What an HTTP session asks for a request's route: a static table or an RDS subscription. */
export interface RouteLookup {
  route(req: HttpRequestView): HttpRoute | null;
  /** Route sources that change at run time (a watched file) start here, once the listener runs. */
  start?(scope: Scope): void;
}

/**
 * The route table of one RDS `route_config_name`, shared by every listener that names it.
 * A session looks the route up once, when a request's head arrives, so replacing `current` is
 * an atomic swap: new requests see the new table, requests in flight keep the route they got.
 * `current` is null until the first RouteConfiguration arrives (the listener warms meanwhile;
 * if it starts anyway after initial_fetch_timeout, requests get 404 as with no matching route).
 */
export class RdsRouteTable implements RouteLookup {
  current: HttpRouteTable | null = null;
  constructor(readonly name: string) {}
  route(req: HttpRequestView): HttpRoute | null {
    return this.current ? this.current.route(req) : null;
  }
}
