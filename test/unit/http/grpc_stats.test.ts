// envoy.filters.http.grpc_stats in memory: the message counter over chunks cut anywhere, Envoy's
// service/method and content-type rules, config errors by field path, and what a call charges.
// The filter against real gRPC traffic is test/integration/http_grpc_stats.test.ts.
import { describe, expect, it } from 'vitest';
import type { FieldError } from '../../../src/errors.js';
import { grpcStatsFactory } from '../../../src/filters/http/grpc_stats/config.js';
import { isGrpcContentType, serviceAndMethod } from '../../../src/filters/http/grpc_stats/filter.js';
import { FrameCounter } from '../../../src/filters/http/grpc_stats/frames.js';
import type { HttpFilterRequest } from '../../../src/filters/http/types.js';
import { StatsStore } from '../../../src/observability/stats.js';
import type { Cluster } from '../../../src/upstream/cluster.js';

type Obj = Record<string, any>;

const frame = (n: number, flag = 0) => Buffer.concat([Buffer.from([flag, n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]), Buffer.alloc(n, 7)]);

function parse(tc: Obj) {
  const errors: FieldError[] = [];
  const warnings: FieldError[] = [];
  return { config: grpcStatsFactory.parse(tc, 'f', { errors, warnings }), errors, warnings };
}

describe('grpc_stats message counter', () => {
  it('counts frames however the body is cut, including empty and compressed messages', () => {
    const body = Buffer.concat([frame(3), frame(0), frame(70_000, 1), frame(1)]);
    for (const cut of [1, 2, 4, 5, 6, 7, 13, 1000, body.length]) {
      const c = new FrameCounter();
      let seen = 0;
      for (let i = 0; i < body.length; i += cut) seen += c.inspect(body.subarray(i, i + cut));
      expect([cut, seen, c.count]).toEqual([cut, 4, 4]);
    }
  });

  it('counts a frame when its first byte arrives, and stops at a byte that is no gRPC flag', () => {
    const c = new FrameCounter();
    expect(c.inspect(Buffer.from([0, 0]))).toBe(1);
    expect(c.inspect(Buffer.from([0, 0, 2, 9, 9, 0x80, 0, 0, 0, 0]))).toBe(0);
    expect(c.inspect(frame(1))).toBe(0);
    expect(c.count).toBe(1);
  });
});

describe('grpc_stats names', () => {
  it("takes service and method as Envoy splits the path (query aside, empty segments dropped)", () => {
    expect(serviceAndMethod('/pkg.Svc/Get')).toEqual(['pkg.Svc', 'Get']);
    expect(serviceAndMethod('/pkg.Svc/Get?x=1')).toEqual(['pkg.Svc', 'Get']);
    expect(serviceAndMethod('//pkg.Svc//Get')).toEqual(['pkg.Svc', 'Get']);
    expect(serviceAndMethod('/pkg.Svc/')).toBeNull();
    expect(serviceAndMethod('/a/b/c')).toBeNull();
  });

  it('takes application/grpc and its +suffix forms, not gRPC-Web', () => {
    expect(isGrpcContentType('application/grpc')).toBe(true);
    expect(isGrpcContentType('application/grpc+proto')).toBe(true);
    expect(isGrpcContentType('application/grpc-web')).toBe(false);
    expect(isGrpcContentType('application/grpcx')).toBe(false);
    expect(isGrpcContentType(undefined)).toBe(false);
  });
});

describe('grpc_stats config', () => {
  it("accepts Istio's shape, warning only that filter state has no reader", () => {
    const { config, errors, warnings } = parse({ emit_filter_state: true, stats_for_all_methods: false });
    expect(errors).toEqual([]);
    expect(config).toMatchObject({ emitFilterState: true, statsForAllMethods: false, allowlist: null });
    expect(warnings.map((w) => w.path)).toEqual(['f.emit_filter_state']);
    expect(parse({ stats_for_all_methods: { value: true } }).config).toMatchObject({ statsForAllMethods: true });
  });

  it('refuses a bad allowlist by field path', () => {
    const { config, errors } = parse({ individual_method_stats_allowlist: { services: [{ name: 'a.S', method_names: ['M'] }, { name: '', method_names: [] }] } });
    expect(config).toBeNull();
    expect(errors.map((e) => e.path)).toEqual(['f.individual_method_stats_allowlist.services[1].name', 'f.individual_method_stats_allowlist.services[1].method_names']);
  });
});

describe('grpc_stats filter', () => {
  const cluster = { name: 'c', spec: {} } as unknown as Cluster;
  function call(tc: Obj, path: string, ct = 'application/grpc') {
    const store = new StatsStore();
    const f = grpcStatsFactory.create(parse(tc).config!, store.root, store.root);
    const req = { method: 'POST', path, header: (n: string) => (n === 'content-type' ? ct : undefined), grpc: true } as HttpFilterRequest;
    expect(f.onRequest(req)).toBeNull();
    const stats = () => Object.fromEntries(store.all().map((s) => [s.name, s.value]));
    return { obs: req.observer ?? null, stats, store };
  }

  it('leaves gRPC-Web and paths without a method alone', () => {
    expect(call({}, '/a.S/M', 'application/grpc-web').obs).toBeNull();
    expect(call({}, '/health').obs).toBeNull();
  });

  it('charges nothing before the call is routed, then what came meanwhile', () => {
    const { obs, stats } = call({ stats_for_all_methods: true }, '/a.S/M');
    obs!.requestData(frame(2));
    expect(stats()).toEqual({});
    obs!.routed(cluster);
    obs!.requestData(frame(2));
    obs!.responseHead(200, 'application/grpc', undefined, false);
    obs!.responseData(Buffer.concat([frame(1), frame(1), frame(1)]));
    obs!.responseEnd('13', 5);
    expect(stats()).toEqual({
      'cluster.c.grpc.a.S.M.request_message_count': 2,
      'cluster.c.grpc.a.S.M.response_message_count': 3,
      'cluster.c.grpc.a.S.M.13': 1,
      'cluster.c.grpc.a.S.M.failure': 1,
      'cluster.c.grpc.a.S.M.total': 1,
    });
  });

  it('counts no response messages of a head that is not gRPC, and no status it lacks', () => {
    const { obs, stats } = call({}, '/a.S/M');
    obs!.routed(cluster);
    obs!.responseHead(503, 'text/plain', undefined, false);
    obs!.responseData(Buffer.from([0, 0, 0, 0, 0]));
    obs!.responseEnd(undefined, 1);
    expect(stats()).toEqual({});
  });
});
