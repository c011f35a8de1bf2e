import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { hcmListener, httpUpstream, type TestUpstream } from '../helpers/http.js';
import { ADMIN, startStrait, staticCluster, type StraitProcess } from '../helpers/strait.js';

const fileLog = (file: string, filter: string) => `          - name: envoy.access_loggers.file
            filter: ${filter}
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: "{{TMP}}/${file}"
              log_format: { text_format: "%REQ(X-TAG)% %RESPONSE_CODE%\\n" }
`;

describe('access_log filter in http_connection_manager', () => {
  let a: TestUpstream;
  let strait: StraitProcess;
  let port: number;

  beforeAll(async () => {
    a = await httpUpstream('a');
    const rc = `name: local
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: "/ok" }
    route: { cluster: a }`;
    const extra = `          access_log:
${fileLog('errors.log', '{ status_code_filter: { comparison: { op: GE, value: { default_value: 400, runtime_key: errors } } } }')}${fileLog(
      'debug.log',
      '{ and_filter: { filters: [ { header_filter: { header: { name: x-debug, present_match: true } } }, { duration_filter: { comparison: { op: GE, value: { default_value: 0, runtime_key: slow } } } } ] } }',
    )}${fileLog('all.log', '{ not_health_check_filter: {} }')}`;
    strait = await startStrait(`${ADMIN}static_resources:
  listeners:
${hcmListener('al', rc, extra)}
  clusters:
${staticCluster('a', [a.port])}`);
    port = await strait.port('al');
  });

  afterAll(async () => {
    await strait?.stop();
    await a?.close();
  });

  it('each log takes only the entries its filter selects', async () => {
    const send = async (p: string, headers: Record<string, string>) => {
      const r = await request(`http://127.0.0.1:${port}${p}`, { headers });
      await r.body.text();
      return r.statusCode;
    };
    expect(await send('/ok', { 'x-tag': 'plain' })).toBe(200);
    expect(await send('/missing', { 'x-tag': 'missing' })).toBe(404);
    expect(await send('/ok', { 'x-tag': 'debugged', 'x-debug': '1' })).toBe(200);
    const read = (f: string) => (fs.existsSync(path.join(strait.dir, f)) ? fs.readFileSync(path.join(strait.dir, f), 'utf8') : '');
    // Each sink opens and writes its file on its own: wait for the slowest.
    const lines = (f: string) => read(f).split('\n').length - 1;
    for (let i = 0; i < 200 && (lines('all.log') < 3 || lines('errors.log') < 1 || lines('debug.log') < 1); i++) await sleep(25);
    await sleep(50);
    expect(read('all.log').trim().split('\n')).toEqual(['plain 200', 'missing 404', 'debugged 200']);
    expect(read('errors.log').trim().split('\n')).toEqual(['missing 404']);
    expect(read('debug.log').trim().split('\n')).toEqual(['debugged 200']);
  });
});
