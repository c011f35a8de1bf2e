// local_reply_config on real HTTP/1.1 and HTTP/2 clients, both engines: Envoy's own demo shape
// (a GET that finds no route gets an HTML page instead of the bare 404), a mapper that rewrites a
// 503 into a 500 with its own body and a header carrying the original code, the config-wide
// JSON body format, and replies no mapper matches left as made. Refused before (the field was
// "not supported yet").
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { h2cGet } from '../helpers/http.js';
import { ADMIN, ENGINES, startStrait, type StraitProcess } from '../helpers/strait.js';

const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';

function listener(name: string, localReply: string, routes: string): string {
  return `  - name: ${name}
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": ${HCM}
          stat_prefix: ${name}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
          local_reply_config:
${localReply}
          route_config:
${routes}
`;
}

// Envoy's demo (envoy-demo.yaml in Envoy's image): no virtual hosts, so every request is a 404.
const DEMO = listener(
  'demo',
  `            mappers:
            - filter:
                header_filter:
                  header: { name: ":method", string_match: { exact: GET } }
              body_format_override:
                text_format_source: { inline_string: "<h1>Welcome to Strait</h1>\\n" }
                content_type: "text/html; charset=UTF-8"`,
  '            name: local_route',
);

// /down goes to a cluster with no hosts (503 "no healthy upstream"); /direct is a direct response.
const MAPPED = listener(
  'mapped',
  `            mappers:
            - filter:
                status_code_filter: { comparison: { op: EQ, value: { default_value: 503, runtime_key: k } } }
              status_code: 500
              body: { inline_string: "the service is resting" }
              headers_to_add:
              - header: { key: x-original-status, value: "%RESPONSE_CODE%" }
                append_action: OVERWRITE_IF_EXISTS_OR_ADD
            body_format:
              json_format: { code: "%RESPONSE_CODE%", message: "%LOCAL_REPLY_BODY%", path: "%REQ(:path)%" }`,
  `            name: mapped
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/down" }
                route: { cluster: empty }
              - match: { prefix: "/direct" }
                direct_response: { status: 418, body: { inline_string: teapot } }`,
);

describe.each(ENGINES)('local_reply_config on the %s engine', (engine) => {
  let strait: StraitProcess;
  let demo: number;
  let mapped: number;

  beforeAll(async () => {
    strait = await startStrait(`${ADMIN}static_resources:
  listeners:
${DEMO}${MAPPED}  clusters:
  - name: empty
    type: STATIC
    connect_timeout: 1s
    load_assignment: { cluster_name: empty, endpoints: [] }
`, { engine });
    demo = await strait.port('demo');
    mapped = await strait.port('mapped');
  });

  afterAll(async () => {
    await strait?.stop();
  });

  it("rewrites the body of a GET that found no route (Envoy's demo), and leaves other methods alone", async () => {
    const get = await request(`http://127.0.0.1:${demo}/anything`);
    expect(get.statusCode).toBe(404);
    expect(get.headers['content-type']).toBe('text/html; charset=UTF-8');
    expect(await get.body.text()).toBe('<h1>Welcome to Strait</h1>\n');
    const post = await request(`http://127.0.0.1:${demo}/anything`, { method: 'POST', body: 'x' });
    expect(post.statusCode).toBe(404);
    expect(post.headers['content-type']).toBeUndefined();
    expect(await post.body.text()).toBe('');
    const h2 = await h2cGet(demo, '/anything');
    expect(h2.status).toBe(404);
    expect(h2.headers['content-type']).toBe('text/html; charset=UTF-8');
    expect(h2.body).toBe('<h1>Welcome to Strait</h1>\n');
  });

  it('maps a 503 to a 500 with its own body, a header with the original code, and the JSON format', async () => {
    for (const r of [await request(`http://127.0.0.1:${mapped}/down`).then(async (x) => ({ status: x.statusCode, headers: x.headers, body: await x.body.text() })), await h2cGet(mapped, '/down')]) {
      expect(r.status).toBe(500);
      expect(r.headers['x-original-status']).toBe('503');
      expect(r.headers['content-type']).toBe('application/json');
      expect(JSON.parse(r.body)).toEqual({ code: 500, message: 'the service is resting', path: '/down' });
    }
  });

  it('formats replies no mapper matched with body_format (a direct response here)', async () => {
    const r = await request(`http://127.0.0.1:${mapped}/direct`);
    expect(r.statusCode).toBe(418);
    expect(r.headers['x-original-status']).toBeUndefined();
    expect(JSON.parse(await r.body.text())).toEqual({ code: 418, message: 'teapot', path: '/direct' });
  });
});
