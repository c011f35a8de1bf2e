import { describe, expect, it } from 'vitest';
import type { FieldError } from '../../../src/errors.js';
import { newEntry, type AccessLogEntry } from '../../../src/observability/access_log/entry.js';
import { compileJsonFormat, compileTextFormat } from '../../../src/observability/access_log/format.js';
import { parseAccessLogs } from '../../../src/observability/access_log/config.js';

function entry(): AccessLogEntry {
  const e = newEntry(Date.UTC(2024, 1, 29, 13, 4, 5, 67));
  e.durationMs = 12.4;
  e.bytesReceived = 10;
  e.bytesSent = 20;
  e.downstreamRemote = { family: 'IPv6', address: '::1', port: 5000 };
  e.upstreamHost = '10.0.0.1:80';
  e.upstreamCluster = 'backend';
  e.responseFlags = 'UF,URX';
  e.responseCode = 503;
  const headers: Record<string, string> = { ':method': 'GET', 'x-request-id': 'abc-123', 'user-agent': 'curl/8' };
  e.requestHeader = (n) => headers[n];
  return e;
}

const text = (fmt: string, omit = false) => {
  const errors: FieldError[] = [];
  const f = compileTextFormat(fmt, 'fmt', errors, omit);
  expect(errors).toEqual([]);
  return f;
};

describe('access log format', () => {
  it('renders Envoy operators, with - for missing values', () => {
    const f = text('%START_TIME% %DURATION% %BYTES_RECEIVED% %BYTES_SENT% %DOWNSTREAM_REMOTE_ADDRESS% %UPSTREAM_HOST% %UPSTREAM_CLUSTER% %RESPONSE_FLAGS% %RESPONSE_CODE% %RPC_METHOD%\n');
    expect(f(entry())).toBe('2024-02-29T13:04:05.067Z 12 10 20 [::1]:5000 10.0.0.1:80 backend UF,URX 503 -\n');
  });

  it('renders DYNAMIC_METADATA: a key, a path into a structured value, a whole namespace; numbers keep their type in JSON', () => {
    const e = entry();
    e.dynamicMetadata = new Map([['envoy.filters.http.ext_authz', new Map<string, any>([['user', 'alice'], ['n', 3], ['tags', { team: 'blue', ids: [1] }]])]]);
    const f = text('%DYNAMIC_METADATA(envoy.filters.http.ext_authz:user)% %DYNAMIC_METADATA(envoy.filters.http.ext_authz:tags:team)% %DYNAMIC_METADATA(envoy.filters.http.ext_authz:tags)% %DYNAMIC_METADATA(envoy.filters.http.ext_authz:tags:nope)% %DYNAMIC_METADATA(other:x)%');
    expect(f(e)).toBe('alice blue {"team":"blue","ids":[1]} - -');
    expect(text('%DYNAMIC_METADATA(envoy.filters.http.ext_authz)%')(e)).toBe('{"user":"alice","n":3,"tags":{"team":"blue","ids":[1]}}');
    expect(text('%DYNAMIC_METADATA(envoy.filters.http.ext_authz:user:deeper)%')(e)).toBe('-');
    const errors: FieldError[] = [];
    const j = compileJsonFormat({ n: '%DYNAMIC_METADATA(envoy.filters.http.ext_authz:n)%', none: '%DYNAMIC_METADATA(x:y)%' }, 'fmt', errors, false);
    expect(errors).toEqual([]);
    expect(JSON.parse(j(e))).toEqual({ n: 3, none: null });
    compileTextFormat('%DYNAMIC_METADATA%', 'fmt', errors, false);
    expect(errors.length).toBe(1);
  });

  it('formats START_TIME with strftime specifiers in UTC', () => {
    expect(text('%START_TIME(%Y/%m/%d %H:%M:%S.%3f %z %s)%')(entry())).toBe('2024/02/29 13:04:05.067 +0000 1709211845');
    expect(text('%START_TIME(%E3S)%')(entry())).toBe('05.067');
  });

  it('reads request headers with a fallback and a length limit', () => {
    expect(text('%REQ(:METHOD)% %REQ(X-MISSING?X-REQUEST-ID)% %REQ(USER-AGENT):4% %REQ(X-NONE)%')(entry())).toBe('GET abc-123 curl -');
  });

  it('omits empty values when asked', () => {
    expect(text('[%RPC_INTERFACE%]', true)(entry())).toBe('[]');
  });

  it('keeps types in JSON when a value is a single operator', () => {
    const errors: FieldError[] = [];
    const f = compileJsonFormat({ code: '%RESPONSE_CODE%', who: '%UPSTREAM_HOST% via %UPSTREAM_CLUSTER%', iface: '%RPC_INTERFACE%', n: 1, nested: { rx: '%BYTES_RECEIVED%' } }, 'j', errors, false);
    expect(errors).toEqual([]);
    expect(JSON.parse(f(entry()))).toEqual({ code: 503, who: '10.0.0.1:80 via backend', iface: null, n: 1, nested: { rx: 10 } });
    const omit = compileJsonFormat({ iface: '%RPC_INTERFACE%', rx: '%BYTES_RECEIVED%' }, 'j', errors, true);
    expect(JSON.parse(omit(entry()))).toEqual({ rx: 10 });
  });

  it('reports unknown operators and missing arguments with the field path', () => {
    const errors: FieldError[] = [];
    compileTextFormat('%NOPE% %REQ%', 'p.text_format', errors, false);
    expect(errors.map((e) => e.path)).toEqual(['p.text_format', 'p.text_format']);
    expect(errors[0]!.message).toContain('%NOPE%');
  });

  it('parses access_log entries and rejects unknown loggers', () => {
    const errors: FieldError[] = [];
    const warnings: FieldError[] = [];
    const specs = parseAccessLogs(
      [
        { name: 'envoy.access_loggers.file', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog', path: '/dev/stdout' } },
        { name: 'x', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig' } },
        { name: 'f', filter: { status_code_filter: {} }, typed_config: { '@type': 'type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StderrAccessLog' } },
      ],
      'al',
      errors,
      warnings,
    );
    expect(specs?.map((s) => s.target)).toEqual([1, 2]);
    expect(errors.map((e) => e.path)).toEqual(['al[1].typed_config.@type']);
    // status_code_filter without a comparison compares EQ 0: valid, nothing to warn about.
    expect(warnings).toEqual([]);
    expect(specs?.[1]?.filter).not.toBeNull();
    expect(parseAccessLogs([], 'al', errors, warnings)).toBeNull();
  });
});
