import type { FieldError } from '../../../errors.js';
import type { IstioDoc, Obj } from './types.js';

/** Istio duration strings ("7s", "100ms", "1.5s", "1m", "1h", "1h30m") in milliseconds, or null. */
export function durationMs(v: unknown): number | null {
  if (typeof v !== 'string') return null;
  const re = /(\d+(?:\.\d+)?)(ms|us|µs|ns|s|m|h)/gy;
  const unit: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 0.001, µs: 0.001, ns: 0.000001 };
  let total = 0;
  let n = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(v))) {
    total += Number(m[1]) * unit[m[2]!]!;
    n++;
    if (re.lastIndex === v.length) return total;
  }
  return n === 0 && v === '0' ? 0 : null;
}

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const SIMPLE_LB = new Set(['UNSPECIFIED', 'LEAST_CONN', 'LEAST_REQUEST', 'RANDOM', 'PASSTHROUGH', 'ROUND_ROBIN']);
const RESOLUTIONS = new Set(['NONE', 'STATIC', 'DNS', 'DNS_ROUND_ROBIN']);

/**
 * Structural checks of one object, independent of the others. Any error here makes the
 * object's file fall back to its last good version, so only what would make the translation
 * wrong (not merely partial) is an error; unsupported-but-valid fields are warnings later.
 */
export function validateDoc(d: IstioDoc): FieldError[] {
  const errors: FieldError[] = [];
  const p = `${d.where}spec`;
  const s = d.spec;
  const err = (path: string, message: string) => errors.push({ path, message });
  /** The list at `path` (absent: empty); anything else is reported. */
  const list = (v: unknown, path: string): unknown[] => {
    if (v === undefined || v === null) return [];
    if (Array.isArray(v)) return v;
    err(path, 'must be a list');
    return [];
  };
  /** The mapping at `path` (absent: empty); anything else is reported. */
  const map = (v: unknown, path: string): Obj => {
    if (v === undefined || v === null) return {};
    if (isObj(v)) return v;
    err(path, 'must be a mapping');
    return {};
  };
  const labels = (v: unknown, path: string) => {
    for (const [k, x] of Object.entries(map(v, path))) if (typeof x !== 'string') err(`${path}.${k}`, 'must be a string');
  };
  const dur = (v: unknown, path: string) => {
    if (v !== undefined && durationMs(v) === null) err(path, `invalid duration ${JSON.stringify(v)}: write it like "1s", "100ms" or "1m"`);
  };
  const count = (v: unknown, path: string) => {
    if (v !== undefined && (!Number.isInteger(v) || (v as number) < 0)) err(path, `must be a non-negative integer, got ${JSON.stringify(v)}`);
  };
  const percent = (v: unknown, path: string) => {
    if (v === undefined) return;
    const x = isObj(v) ? v.value : v;
    if (typeof x !== 'number' || x < 0 || x > 100) err(path, `must be a percentage in [0, 100], got ${JSON.stringify(v)}`);
  };
  const stringMatch = (m: unknown, path: string) => {
    if (!isObj(m)) return err(path, 'must be a StringMatch ({exact|prefix|regex: ...})');
    const kinds = ['exact', 'prefix', 'regex'].filter((k) => m[k] !== undefined);
    if (kinds.length !== 1) return err(path, 'needs exactly one of exact, prefix, regex');
    if (typeof m[kinds[0]!] !== 'string') err(`${path}.${kinds[0]}`, 'must be a string');
    else if (kinds[0] === 'regex') {
      try {
        new RegExp(m.regex);
      } catch (e) {
        err(`${path}.regex`, `invalid regular expression: ${(e as Error).message}`);
      }
    }
  };
  const portNumber = (v: unknown, path: string) => {
    if (v !== undefined && (!Number.isInteger(v) || (v as number) < 1 || (v as number) > 65535)) err(path, `must be a port number, got ${JSON.stringify(v)}`);
  };
  const trafficPolicy = (tp: unknown, path: string) => {
    if (tp === undefined) return;
    if (!isObj(tp)) return err(path, 'must be a mapping');
    const lb = tp.loadBalancer;
    if (lb !== undefined) {
      if (!isObj(lb)) err(`${path}.loadBalancer`, 'must be a mapping');
      else {
        if (lb.simple !== undefined && !SIMPLE_LB.has(lb.simple)) err(`${path}.loadBalancer.simple`, `unknown load balancer ${JSON.stringify(lb.simple)} (one of ${[...SIMPLE_LB].join(', ')})`);
        if (lb.simple !== undefined && lb.consistentHash !== undefined) err(`${path}.loadBalancer`, 'simple and consistentHash are exclusive');
        const ch = lb.consistentHash;
        if (ch !== undefined) {
          const keys = ['httpHeaderName', 'httpCookie', 'useSourceIp', 'httpQueryParameterName'].filter((k) => ch?.[k] !== undefined);
          if (keys.length !== 1) err(`${path}.loadBalancer.consistentHash`, 'needs exactly one of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName');
          if (ch?.httpCookie !== undefined && typeof ch.httpCookie?.name !== 'string') err(`${path}.loadBalancer.consistentHash.httpCookie.name`, 'is required');
          dur(ch?.httpCookie?.ttl, `${path}.loadBalancer.consistentHash.httpCookie.ttl`);
        }
      }
    }
    const cp = tp.connectionPool;
    if (isObj(cp)) {
      count(cp.tcp?.maxConnections, `${path}.connectionPool.tcp.maxConnections`);
      dur(cp.tcp?.connectTimeout, `${path}.connectionPool.tcp.connectTimeout`);
      for (const f of ['http1MaxPendingRequests', 'http2MaxRequests', 'maxRequestsPerConnection', 'maxRetries', 'maxConcurrentStreams']) count(cp.http?.[f], `${path}.connectionPool.http.${f}`);
      dur(cp.http?.idleTimeout, `${path}.connectionPool.http.idleTimeout`);
    }
    const od = tp.outlierDetection;
    if (isObj(od)) {
      for (const f of ['consecutiveErrors', 'consecutive5xxErrors', 'consecutiveGatewayErrors', 'consecutiveLocalOriginFailures']) {
        const v = isObj(od[f]) ? od[f].value : od[f];
        count(v, `${path}.outlierDetection.${f}`);
      }
      dur(od.interval, `${path}.outlierDetection.interval`);
      dur(od.baseEjectionTime, `${path}.outlierDetection.baseEjectionTime`);
      percent(od.maxEjectionPercent, `${path}.outlierDetection.maxEjectionPercent`);
      percent(od.minHealthPercent, `${path}.outlierDetection.minHealthPercent`);
    }
    list(tp.portLevelSettings, `${path}.portLevelSettings`).forEach((pl, i) => {
      const pp = `${path}.portLevelSettings[${i}]`;
      if (!isObj(pl) || !isObj(pl.port)) return err(`${pp}.port`, 'is required');
      portNumber(pl.port.number, `${pp}.port.number`);
      trafficPolicy({ ...pl, port: undefined, portLevelSettings: undefined }, pp);
    });
  };

  if (!isObj(s)) {
    err(p, 'is required and must be a mapping');
    return errors;
  }
  if (d.kind === 'ServiceEntry') {
    if (!Array.isArray(s.hosts) || !s.hosts.length || s.hosts.some((h: unknown) => typeof h !== 'string' || !h)) err(`${p}.hosts`, 'needs at least one host name');
    if (s.resolution !== undefined && !RESOLUTIONS.has(s.resolution)) err(`${p}.resolution`, `unknown resolution ${JSON.stringify(s.resolution)} (one of ${[...RESOLUTIONS].join(', ')})`);
    if (!Array.isArray(s.ports) || !s.ports.length) err(`${p}.ports`, 'needs at least one port');
    else
      s.ports.forEach((port: unknown, i: number) => {
        if (!isObj(port)) return err(`${p}.ports[${i}]`, 'must be a mapping');
        portNumber(port.number, `${p}.ports[${i}].number`);
        if (port.number === undefined) err(`${p}.ports[${i}].number`, 'is required');
        portNumber(port.targetPort, `${p}.ports[${i}].targetPort`);
      });
    list(s.endpoints, `${p}.endpoints`).forEach((e, i) => {
      const ep = `${p}.endpoints[${i}]`;
      if (!isObj(e)) return err(ep, 'must be a mapping');
      if (typeof e.address !== 'string' || !e.address) err(`${ep}.address`, 'is required');
      for (const [k, v] of Object.entries(map(e.ports, `${ep}.ports`))) portNumber(v, `${ep}.ports.${k}`);
      labels(e.labels, `${ep}.labels`);
      if (e.locality !== undefined && typeof e.locality !== 'string') err(`${ep}.locality`, 'must be a string (region/zone/subzone)');
      if (e.weight !== undefined) count(e.weight, `${ep}.weight`);
    });
    if (s.resolution === 'STATIC' && !(Array.isArray(s.endpoints) && s.endpoints.length) && !s.workloadSelector) err(`${p}.endpoints`, 'STATIC resolution needs endpoints');
    // Istio's rule: DNS_ROUND_ROBIN becomes a LOGICAL_DNS cluster, which is one name.
    if (s.resolution === 'DNS_ROUND_ROBIN' && Array.isArray(s.endpoints) && s.endpoints.length > 1) err(`${p}.endpoints`, 'DNS_ROUND_ROBIN resolution takes at most one endpoint');
  } else if (d.kind === 'DestinationRule') {
    if (typeof s.host !== 'string' || !s.host) err(`${p}.host`, 'is required');
    trafficPolicy(s.trafficPolicy, `${p}.trafficPolicy`);
    const seen = new Set<string>();
    list(s.subsets, `${p}.subsets`).forEach((sub, i) => {
      const sp = `${p}.subsets[${i}]`;
      if (!isObj(sub) || typeof sub.name !== 'string' || !sub.name) return err(`${sp}.name`, 'is required');
      if (seen.has(sub.name)) err(`${sp}.name`, `duplicate subset "${sub.name}"`);
      seen.add(sub.name);
      labels(sub.labels, `${sp}.labels`);
      trafficPolicy(sub.trafficPolicy, `${sp}.trafficPolicy`);
    });
  } else {
    if (!Array.isArray(s.hosts) || !s.hosts.length || s.hosts.some((h: unknown) => typeof h !== 'string' || !h)) err(`${p}.hosts`, 'needs at least one host name');
    const destination = (dst: unknown, path: string) => {
      if (!isObj(dst) || typeof dst.host !== 'string' || !dst.host) return err(`${path}.host`, 'is required');
      if (dst.subset !== undefined && typeof dst.subset !== 'string') err(`${path}.subset`, 'must be a string');
      if (dst.port !== undefined) portNumber(dst.port?.number, `${path}.port.number`);
    };
    const routes = (list: unknown, path: string) => {
      if (!Array.isArray(list)) return err(path, 'must be a list');
      list.forEach((r, k) => {
        const rp = `${path}[${k}]`;
        if (!isObj(r)) return err(rp, 'must be a mapping');
        destination(r.destination, `${rp}.destination`);
        if (r.weight !== undefined && (!Number.isInteger(r.weight) || r.weight < 0)) err(`${rp}.weight`, `must be a non-negative integer, got ${JSON.stringify(r.weight)}`);
      });
      if (list.length > 1 && list.every((r) => isObj(r) && Number.isInteger(r.weight)) && list.reduce((a, r) => a + r.weight, 0) === 0) err(path, 'weights add up to 0');
    };
    list(s.http, `${p}.http`).forEach((h, i) => {
      const hp = `${p}.http[${i}]`;
      if (!isObj(h)) return err(hp, 'must be a mapping');
      if (h.route === undefined && h.redirect === undefined && h.directResponse === undefined && h.delegate === undefined) err(hp, 'needs route, redirect or directResponse');
      if (h.route !== undefined) routes(h.route, `${hp}.route`);
      list(h.match, `${hp}.match`).forEach((m, j) => {
        const mp = `${hp}.match[${j}]`;
        if (!isObj(m)) return err(mp, 'must be a mapping');
        for (const f of ['uri', 'scheme', 'method', 'authority']) if (m[f] !== undefined) stringMatch(m[f], `${mp}.${f}`);
        for (const f of ['headers', 'queryParams', 'withoutHeaders']) {
          if (m[f] === undefined) continue;
          if (!isObj(m[f])) {
            err(`${mp}.${f}`, 'must be a mapping of names to StringMatch');
            continue;
          }
          // An empty StringMatch ({}) means "present".
          for (const [k, v] of Object.entries(m[f])) if (!isObj(v) || Object.keys(v).length) stringMatch(v, `${mp}.${f}.${k}`);
        }
        portNumber(m.port, `${mp}.port`);
      });
      dur(h.timeout, `${hp}.timeout`);
      if (h.retries !== undefined) {
        count(h.retries?.attempts, `${hp}.retries.attempts`);
        dur(h.retries?.perTryTimeout, `${hp}.retries.perTryTimeout`);
        if (h.retries?.retryOn !== undefined && typeof h.retries.retryOn !== 'string') err(`${hp}.retries.retryOn`, 'must be a comma-separated string');
      }
      const cp = h.corsPolicy;
      if (cp !== undefined) {
        if (!isObj(cp)) err(`${hp}.corsPolicy`, 'must be an object');
        else {
          ((Array.isArray(cp.allowOrigins) ? cp.allowOrigins : []) as unknown[]).forEach((o, k) => stringMatch(o, `${hp}.corsPolicy.allowOrigins[${k}]`));
          dur(cp.maxAge, `${hp}.corsPolicy.maxAge`);
          if (cp.unmatchedPreflights !== undefined && !['UNSPECIFIED', 'FORWARD', 'IGNORE'].includes(cp.unmatchedPreflights)) err(`${hp}.corsPolicy.unmatchedPreflights`, 'must be FORWARD or IGNORE');
        }
      }
      const f = h.fault;
      if (f !== undefined) {
        if (!isObj(f) || (f.delay === undefined && f.abort === undefined)) err(`${hp}.fault`, 'needs delay or abort');
        if (isObj(f?.delay)) {
          if (durationMs(f.delay.fixedDelay) === null) err(`${hp}.fault.delay.fixedDelay`, 'is required (a duration like "5s")');
          percent(f.delay.percentage, `${hp}.fault.delay.percentage`);
          percent(f.delay.percent, `${hp}.fault.delay.percent`);
        }
        if (isObj(f?.abort)) {
          const st = f.abort.httpStatus;
          if (st !== undefined && (!Number.isInteger(st) || st < 200 || st > 599)) err(`${hp}.fault.abort.httpStatus`, `must be an HTTP status in [200, 599], got ${JSON.stringify(st)}`);
          if (st === undefined && f.abort.grpcStatus === undefined) err(`${hp}.fault.abort`, 'needs httpStatus or grpcStatus');
          percent(f.abort.percentage, `${hp}.fault.abort.percentage`);
        }
      }
      const hdr = map(h.headers, `${hp}.headers`);
      for (const dir of ['request', 'response']) {
        const ops = map(hdr[dir], `${hp}.headers.${dir}`);
        for (const op of ['set', 'add']) for (const [k, v] of Object.entries(map(ops[op], `${hp}.headers.${dir}.${op}`))) if (typeof v === 'object') err(`${hp}.headers.${dir}.${op}.${k}`, 'must be a string');
        list(ops.remove, `${hp}.headers.${dir}.remove`).forEach((v, k) => typeof v !== 'string' && err(`${hp}.headers.${dir}.remove[${k}]`, 'must be a header name'));
      }
      map(h.rewrite, `${hp}.rewrite`);
      map(h.retries, `${hp}.retries`);
      map(h.redirect, `${hp}.redirect`);
      map(h.directResponse, `${hp}.directResponse`);
      if (h.mirror !== undefined) destination(h.mirror, `${hp}.mirror`);
      list(h.mirrors, `${hp}.mirrors`).forEach((m, j) => destination(isObj(m) ? m.destination : undefined, `${hp}.mirrors[${j}].destination`));
      percent(h.mirrorPercentage, `${hp}.mirrorPercentage`);
      if (h.rewrite?.uriRegexRewrite !== undefined) {
        try {
          new RegExp(h.rewrite.uriRegexRewrite.match);
        } catch (e) {
          err(`${hp}.rewrite.uriRegexRewrite.match`, `invalid regular expression: ${(e as Error).message}`);
        }
      }
    });
    list(s.tcp, `${p}.tcp`).forEach((t, i) => {
      const tp = `${p}.tcp[${i}]`;
      if (!isObj(t)) return err(tp, 'must be a mapping');
      routes(t.route, `${tp}.route`);
    });
  }
  return errors;
}

export { SIMPLE_LB };
