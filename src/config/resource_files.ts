/**
 * Filesystem xDS (RDS `path_config_source`, SDS files) reads resource files with the xDS server's
 * reader, which brings protobufjs, yaml and the Envoy API registry: megabytes of idle memory a
 * static sidecar that names no such file should not carry. Config loading awaits
 * `loadResourceFiles()` when the config names a file source (src/config/preload.ts); the
 * readers, which run synchronously at parse time and on file changes, then take it from here.
 */
export interface ResourceFiles {
  readonly readResourceFile: typeof import('../xds/server/resource_dir.js').readResourceFile;
  readonly redact: typeof import('./redact.js').redact;
  readonly ROUTE_TYPE: string;
  readonly SECRET_TYPE: string;
}

let loaded: ResourceFiles | null = null;
let loading: Promise<void> | null = null;

export function loadResourceFiles(): Promise<void> {
  loading ??= Promise.all([import('../xds/server/resource_dir.js'), import('./redact.js'), import('../xds/proto.js')]).then(([dir, r, proto]) => {
    loaded = { readResourceFile: dir.readResourceFile, redact: r.redact, ROUTE_TYPE: proto.ROUTE_TYPE, SECRET_TYPE: proto.SECRET_TYPE };
  });
  return loading;
}

/** The reader; throws (a bug, reported as the file's problem by callers) when nothing loaded it. */
export function resourceFiles(): ResourceFiles {
  if (!loaded) throw new Error('the resource file reader is used before it was loaded (preloadExtensions)');
  return loaded;
}
