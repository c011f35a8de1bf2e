import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AnyMsg } from '../proto.js';

/**
 * The last accepted xDS configuration on disk, so a restart while the control plane is down
 * serves what was running. Resources are kept as the exact Any bytes received: restoring runs
 * them through the same decode and validation path as a live update.
 */
export interface PersistedSnapshot {
  readonly node_id: string;
  readonly saved_at: string;
  readonly types: Record<string, { version_info: string; resources: Array<{ name: string; version: string; any: string }> }>;
}

/** Default location: one file per node id under the OS temp directory. */
export function defaultSnapshotPath(nodeId: string): string {
  const safe = (nodeId || 'default').replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 150);
  return path.join(os.tmpdir(), `strait-xds-${safe}.json`);
}

export function encodeSnapshot(nodeId: string, types: ReadonlyMap<string, { versionInfo: string; resources: Array<{ name: string; version: string; any: AnyMsg }> }>): PersistedSnapshot {
  const out: PersistedSnapshot['types'] = {};
  for (const [t, v] of types) {
    out[t] = {
      version_info: v.versionInfo,
      resources: v.resources.map((r) => ({ name: r.name, version: r.version, any: Buffer.from(r.any.value).toString('base64') })),
    };
  }
  return { node_id: nodeId, saved_at: new Date().toISOString(), types: out };
}

/** Writes atomically (temp file + rename): a crash mid-write leaves the previous snapshot intact. */
export function saveSnapshot(file: string, snap: PersistedSnapshot): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(snap), { mode: 0o600 });
  fs.renameSync(tmp, file);
}

/** Reads a snapshot; null when absent. Throws with a reason when present but unusable. */
export function loadSnapshot(file: string, nodeId: string): PersistedSnapshot | null {
  if (!fs.existsSync(file)) return null;
  const s = JSON.parse(fs.readFileSync(file, 'utf8')) as PersistedSnapshot;
  if (typeof s !== 'object' || s === null || typeof s.types !== 'object') throw new Error('not a Strait xDS snapshot');
  // Another node's configuration would be wrong for this one (its listeners, its clusters).
  if (s.node_id !== nodeId) throw new Error(`saved for node "${s.node_id}", this is "${nodeId}"`);
  return s;
}

export function snapshotAny(typeUrl: string, b64: string): AnyMsg {
  return { type_url: typeUrl, value: Buffer.from(b64, 'base64') };
}
