import { readFileSync } from 'node:fs';
import { EXIT, type ExitCode, formatLocalEndpoint, isJsonObject, ownValue } from '@pifleet/protocol';
import { pino } from 'pino';
import { DataDirError } from './adapters/data-dir.js';
import { DataFileError } from './adapters/sqlite-open.js';
import { createLocalIotCore } from './app/local-core.js';
import { CaError } from './ca/local-ca.js';
import { ConfigError, LOCAL_CORE_USAGE, loadLocalCoreConfig, UsageError } from './config/local-core.js';
import { CredentialsError } from './http/credentials.js';
import { createLogger } from './logger.js';

/**
 * `pifleet-local-core`: runs the local IoT Core in the foreground. Prints one JSON line on stdout
 * when ready; logs (pino JSON) go to stderr. SIGINT/SIGTERM stop it cleanly with exit code 0.
 * The only module of @pifleet/cloud that touches `process`.
 */

const STOP_TIMEOUT_MS = 10_000;
/**
 * After a failed start everything started is stopped again and the process should end by itself;
 * should a handle still be open (the MQTT listener's failure once left the broker running and the
 * process hanging), it exits anyway after this long.
 */
const FAILED_START_EXIT_MS = 5_000;

/** The package's version (src/ and dist/ both sit one level below package.json). */
function packageVersion(): string {
  const pkg: unknown = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  const version = isJsonObject(pkg) ? ownValue(pkg, 'version') : undefined;
  return typeof version === 'string' ? version : 'unknown';
}

function exitCodeOf(err: unknown): ExitCode {
  if (err instanceof UsageError) return EXIT.usage;
  if (err instanceof DataDirError) return err.code === 'DATA_DIR_LOCKED' ? EXIT.tempFail : EXIT.config;
  if (err instanceof DataFileError) return err.code === 'DATA_FILE_PERMISSION' ? EXIT.noPermission : EXIT.config;
  if (err instanceof ConfigError || err instanceof CaError || err instanceof CredentialsError) return EXIT.config;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'EACCES' || code === 'EPERM') return EXIT.noPermission;
  if (code === 'EADDRINUSE' || code === 'EADDRNOTAVAIL') return EXIT.unavailable;
  return EXIT.unexpected;
}

export async function main(argv: readonly string[]): Promise<void> {
  let parsed: ReturnType<typeof loadLocalCoreConfig>;
  try {
    parsed = loadLocalCoreConfig(argv, process.env);
  } catch (err) {
    const problems = err instanceof ConfigError ? err.problems : [String(err)];
    process.stderr.write(`pifleet-local-core: ${problems.join('; ')}\nRun 'pifleet-local-core --help' for usage.\n`);
    process.exitCode = exitCodeOf(err);
    return;
  }
  if (parsed.help) {
    process.stdout.write(LOCAL_CORE_USAGE);
    return;
  }
  if (parsed.version) {
    process.stdout.write(`${packageVersion()}\n`);
    return;
  }
  const { config } = parsed;
  const logger = createLogger({
    level: config.logLevel,
    destination: pino.destination({ fd: 2, sync: true }),
  });

  const core = createLocalIotCore({ config, logger });
  let stopping = false;
  const shutdown = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting without waiting');
      process.exit(EXIT.interrupted);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    const timer = setTimeout(() => {
      logger.error({ timeoutMs: STOP_TIMEOUT_MS }, 'shutdown timed out');
      process.exit(EXIT.unexpected);
    }, STOP_TIMEOUT_MS);
    timer.unref();
    core.stop().then(
      () => {
        clearTimeout(timer);
        process.exitCode = EXIT.ok;
      },
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(EXIT.unexpected);
      },
    );
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);

  try {
    const info = await core.start();
    if (stopping) return;
    process.stdout.write(formatLocalEndpoint(info));
  } catch (err) {
    const exitCode = exitCodeOf(err);
    logger.fatal({ err, exitCode }, 'local IoT Core failed to start');
    process.stderr.write(`pifleet-local-core: ${(err as Error).message ?? String(err)}\n`);
    process.removeListener('SIGINT', shutdown);
    process.removeListener('SIGTERM', shutdown);
    process.exitCode = exitCode;
    setTimeout(() => {
      logger.warn({ timeoutMs: FAILED_START_EXIT_MS }, 'handles still open after a failed start: exiting');
      process.exit(exitCode);
    }, FAILED_START_EXIT_MS).unref();
  }
}

await main(process.argv.slice(2));
