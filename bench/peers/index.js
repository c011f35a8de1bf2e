// The peers a workload is measured through. A peer is:
//   {
//     name, kind: 'direct' | 'proxy', describe,
//     detect(ctx) -> { ok: true, version } | { ok: false, reason }   (once per run)
//     configs: { <layer>: (c) -> Launch }     c = { dir, listenPort, adminPort, upstreamPort, fdLimit, connections, nodeArgs? }
//   }
//   Launch = { files: { <name>: text }, cmd, args, ready?: { http: url } }
//   (`args` may contain '{file:<name>}', replaced by that file's path in the peer's temp dir)
// A peer with no config for a workload's layer is reported as skipped for it, never dropped.
import direct from './direct.js';
import envoy from './envoy.js';
import haproxy from './haproxy.js';
import nginx from './nginx.js';
import { straitPeer } from './strait.js';

export const PEERS = [direct, straitPeer('native'), straitPeer('node'), haproxy, nginx, envoy];
