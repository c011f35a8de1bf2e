/**
 * `--mode validate` with filesystem config sources: the LDS, CDS and EDS files present here are
 * read and checked with the builders the running proxy applies them with, so a bad file fails
 * validation rather than being refused only once served. A missing file stays a warning
 * (parseConfigSource in validate mode). Each problem is named by its file and field path.
 */
import fs from 'node:fs';
import type { FieldError } from '../errors.js';
import type { ClusterSpec } from '../upstream/cluster.js';
import type { XdsBootstrap, ConfigSourceSpec } from './bootstrap.js';
import { buildDynamicCluster, buildDynamicListener, edsSource, resourceProblem } from './client/dynamic_config.js';
import { buildEndpoints } from './client/endpoints.js';
import { locate, readDiscoveryFile } from './client/file_subscription.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE } from './proto.js';
import { RdsRouteTable } from '../filters/network/http_connection_manager/rds.js';

type Obj = Record<string, any>;

/** Checks one file's resources with `build`; false when the file is absent (already warned about). */
function checkFile(file: string, typeUrl: string, errors: FieldError[], warnings: FieldError[], build: (value: Obj, name: string, errors: FieldError[], warnings: FieldError[]) => void): boolean {
  if (!fs.existsSync(file)) return false;
  const read = readDiscoveryFile(file, typeUrl, new Set());
  if (!read.ok) {
    for (const p of read.problems) errors.push({ path: file, message: `${p.path ? `${p.path}: ` : ''}${p.message}` });
    return true;
  }
  const problems = [...read.update.decodeProblems];
  for (const r of read.update.resources) {
    const errs: FieldError[] = [];
    const warns: FieldError[] = [...r.warnings];
    build(r.value, r.name, errs, warns);
    for (const e of errs) problems.push(resourceProblem(typeUrl, r.name, e));
    for (const w of warns) warnings.push({ path: file, message: locate(resourceProblem(typeUrl, r.name, w), read.where) });
  }
  for (const p of problems) errors.push({ path: file, message: locate(p, read.where) });
  return true;
}

export function validateSourceFiles(boot: XdsBootstrap, staticClusters: readonly ClusterSpec[], staticListenerNames: ReadonlySet<string>, errors: FieldError[], warnings: FieldError[]): void {
  const hasAds = boot.ads !== null;
  const staticClusterNames = new Set(staticClusters.map((c) => c.name));
  // EDS files named by static clusters and by the CDS file's clusters; each is read once.
  const edsFiles = new Set<string>();
  const noteEds = (src: ConfigSourceSpec) => {
    if (src.kind === 'file') edsFiles.add(src.path);
  };
  for (const c of staticClusters) if (c.type === 'EDS') noteEds(edsSource(c.source as Obj));
  if (boot.cds?.kind === 'file') {
    checkFile(boot.cds.path, CLUSTER_TYPE, errors, warnings, (value, name, errs, warns) => {
      if (staticClusterNames.has(name)) errs.push({ path: 'name', message: `"${name}" is a static cluster; CDS cannot replace it` });
      else if (buildDynamicCluster(value, hasAds, errs, warns, 'validate')?.type === 'EDS') noteEds(edsSource(value));
    });
  }
  if (boot.lds?.kind === 'file') {
    checkFile(boot.lds.path, LISTENER_TYPE, errors, warnings, (value, name, errs, warns) => {
      if (staticListenerNames.has(name)) errs.push({ path: 'name', message: `"${name}" is a static listener; LDS cannot replace it` });
      else buildDynamicListener(value, hasAds ? (n) => new RdsRouteTable(n) : undefined, errs, warns);
    });
  }
  for (const file of edsFiles) checkFile(file, ENDPOINT_TYPE, errors, warnings, (value, _name, errs, warns) => void buildEndpoints(value, errs, warns));
}
