import { parseArgs } from 'node:util';
// Not config/index.js: the main thread never needs protobufjs for a static config (~17 MB of RSS).
import { decodeBootstrapOffThread } from './config/load.js';
import { loadAllExtensions, preloadExtensions } from './config/preload.js';
import { ConfigError, StraitError, type FieldError } from './errors.js';
import { ENGINE_NAMES, type EngineName } from './io/index.js';
import { H2_ENGINE_NAMES, setH2Engine, type H2EngineName } from './protocols/http2/engine.js';
import { log, setLogLevel } from './log.js';
import { Server, VERSION } from './server.js';
import { buildStaticConfig } from './static_config.js';

const USAGE = `usage: strait --config FILE [options]
       strait xds-server --dir DIR --port P   (an embedded xDS control plane; see --help there)
       strait intercept enable|disable|status|cleanup [options]   (traffic capture; see --help there)

  -c, --config FILE            Envoy v3 Bootstrap (YAML or JSON)
      --config-yaml TEXT       Bootstrap given inline (instead of --config)
      --mode serve|validate    validate: check the config and exit (0 = valid)
      --io-engine native|node  data path: the C++ addon (default) or net.Socket
      --h2-engine native|node  h2c both ways: the addon's nghttp2 session (default; plaintext
                               on the native io engine) or node:http2 (env STRAIT_H2_ENGINE)
      --concurrency N          worker count (1 for now)
  -l, --log-level LEVEL        trace|debug|info|warn|error|critical|off (default info)
      --drain-time-s N         drain time on SIGTERM / graceful drain (default 5)
      --admin-address-path F  write the bound admin address to F
      --restart-epoch N        hot restart: N > 0 takes over listeners and idle connections
                               from the process running epoch N-1 (same --base-id)
      --base-id N              separates hot-restart channels of several Strait instances (default 0)
      --parent-shutdown-time-s N  the previous epoch exits after this long at most (default 60)
      --xds-snapshot FILE      where the last accepted xDS configuration is kept and read back
                               when the control plane is down at start-up (env STRAIT_XDS_SNAPSHOT;
                               default: strait-xds-<node id>.json in the OS temp directory)
  -h, --help                   this text
      --version                print the version
`;

const LEVELS: Record<string, string> = { trace: 'trace', debug: 'debug', info: 'info', warn: 'warn', warning: 'warn', error: 'error', critical: 'fatal', off: 'silent' };

function fail(message: string): never {
  process.stderr.write(`strait: ${message}\n`);
  process.exit(1);
}

function intArg(v: string | undefined, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) fail(`--${name} needs a non-negative integer, got "${v}"`);
  return n;
}

export async function main(argv: string[]): Promise<void> {
  if (argv[0] === 'xds-server') {
    // Loaded only when asked for: the control plane brings gRPC and the resource registry.
    const { xdsServerMain } = await import('./xds/server/cli.js');
    return xdsServerMain(argv.slice(1), fail);
  }
  if (argv[0] === 'intercept') {
    // Loaded only when asked for: interception needs no config and no server.
    const { interceptMain } = await import('./intercept/cli.js');
    process.exitCode = await interceptMain(argv.slice(1));
    return;
  }
  let args;
  try {
    args = parseArgs({
      args: argv,
      options: {
        config: { type: 'string', short: 'c' },
        'config-yaml': { type: 'string' },
        mode: { type: 'string', default: 'serve' },
        'io-engine': { type: 'string', default: process.env.STRAIT_IO_ENGINE ?? 'native' },
        'h2-engine': { type: 'string', default: process.env.STRAIT_H2_ENGINE ?? 'native' },
        concurrency: { type: 'string' },
        'log-level': { type: 'string', short: 'l', default: 'info' },
        'drain-time-s': { type: 'string' },
        'admin-address-path': { type: 'string' },
        'restart-epoch': { type: 'string' },
        'parent-shutdown-time-s': { type: 'string' },
        'base-id': { type: 'string' },
        'xds-snapshot': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean' },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (err) {
    fail(`${(err as Error).message}\n\n${USAGE}`);
  }
  const o = args.values;
  if (o.help) {
    process.stdout.write(USAGE);
    return;
  }
  if (o.version) {
    process.stdout.write(`strait ${VERSION}\n`);
    return;
  }
  const level = LEVELS[o['log-level']!];
  if (!level) fail(`--log-level must be one of ${Object.keys(LEVELS).join(', ')}`);
  setLogLevel(level);
  const engine = o['io-engine'] as EngineName;
  if (!ENGINE_NAMES.includes(engine)) fail(`--io-engine must be one of ${ENGINE_NAMES.join(', ')}`);
  const h2Engine = o['h2-engine'] as H2EngineName;
  if (!H2_ENGINE_NAMES.includes(h2Engine)) fail(`--h2-engine (or STRAIT_H2_ENGINE) must be one of ${H2_ENGINE_NAMES.join(', ')}, got "${h2Engine}"`);
  setH2Engine(h2Engine);
  if (o.mode !== 'serve' && o.mode !== 'validate') fail('--mode must be serve or validate');
  if (intArg(o.concurrency, 'concurrency', 1) > 1) fail('--concurrency above 1 is not supported yet');
  const restartEpoch = intArg(o['restart-epoch'], 'restart-epoch', 0);
  const baseId = intArg(o['base-id'], 'base-id', 0);
  const parentShutdownMs = intArg(o['parent-shutdown-time-s'], 'parent-shutdown-time-s', 60) * 1000;
  const drainTimeMs = intArg(o['drain-time-s'], 'drain-time-s', 5) * 1000;
  if (!o.config && !o['config-yaml']) fail(`--config is required\n\n${USAGE}`);

  let server: Server;
  try {
    const source = o.config ?? '--config-yaml';
    // Decode errors and semantic errors are reported together: every problem, then fail.
    const input = o.config ? { file: o.config } : { text: o['config-yaml']!, source };
    const { bootstrap, redacted, warnings, errors } = await decodeBootstrapOffThread(input, { keepErrors: true });
    // Only the filters the config names get loaded (idle memory); parsing below is synchronous.
    await preloadExtensions(bootstrap);
    const config = buildStaticConfig(bootstrap as Record<string, unknown>, source, warnings, errors, o.mode === 'validate' ? 'validate' : 'serve');
    if (o.mode === 'validate') {
      const warned: FieldError[] = [...config.warnings];
      const d = config.dynamic;
      if (d && (d.lds?.kind === 'file' || d.cds?.kind === 'file' || config.clusters.some((c) => c.type === 'EDS'))) {
        // The files present here are checked as the running proxy would apply them; they may
        // name any extension, as a control plane may.
        const [{ validateSourceFiles }] = await Promise.all([import('./xds/validate_files.js'), loadAllExtensions()]);
        const errs: FieldError[] = [];
        validateSourceFiles(d, config.clusters, new Set(config.listeners.map((l) => l.name)), errs, warned);
        if (errs.length) throw new ConfigError(errs, source);
      }
      for (const w of warned) process.stderr.write(`warning: ${w.path}: ${w.message}\n`);
      process.stdout.write(`configuration '${source}' OK\n`);
      return;
    }
    server = new Server(config, bootstrap as Record<string, unknown>, {
      engine,
      drainTimeMs,
      adminAddressPath: o['admin-address-path'],
      commandLine: argv,
      redactedBootstrap: redacted as Record<string, unknown>,
      restartEpoch,
      baseId,
      parentShutdownMs,
      xdsSnapshotPath: o['xds-snapshot'] ?? process.env.STRAIT_XDS_SNAPSHOT,
    });
  } catch (err) {
    if (err instanceof ConfigError || err instanceof StraitError) fail(err.message);
    throw err;
  }

  let signalled = false;
  const onSignal = (sig: string) => {
    if (signalled) {
      log.warn({ signal: sig }, 'second signal: exiting now');
      process.exit(1);
    }
    signalled = true;
    void server.shutdown().then(() => process.exit(0));
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));

  try {
    await server.start();
  } catch (err) {
    // Nothing half-started survives: exit non-zero and let the supervisor see why.
    fail(err instanceof StraitError ? err.message : String((err as Error)?.stack ?? err));
  }
  log.info({ version: VERSION, engine }, 'strait is LIVE');
}
