import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from '@commander-js/extra-typings';
import { AGENT_INSTALL_PATHS, EXIT, type ExitCode, type Issue, LOG_LEVELS } from '@pifleet/protocol';
import { AGENT_VERSION } from './app/agent.js';
import { createAgentRuntime } from './app/runtime.js';
import { readAndCheckConfigFile, readConfigFile } from './config/files.js';
import { type ConfigFlags, loadConfig } from './config/load.js';
import type { AgentConfig } from './config/schema.js';
import { AgentError, ConfigError } from './errors.js';
import { HardwareUnavailableError } from './hardware/errors.js';
import type { HardwarePorts } from './hardware/open.js';
import { selfUpdateLayout } from './jobs/wiring.js';
import { createLogger, type Logger } from './logger.js';
import { createSystemClock } from './ports/clock.js';
import { exitWhenFlushed } from './process-exit.js';
import {
  ProvisioningError,
  ProvisioningRejectedError,
  ProvisioningTimeoutError,
  rejectionHint,
} from './provisioning/errors.js';
import type { ProvisioningMethod } from './provisioning/flow.js';
import { needsProvisioning } from './provisioning/needs.js';
// Only types: the claim flow (keys, CSR, identity clients) and the updater (tar, zlib) are
// imported where a command needs them. `run` on a provisioned device without self-update,
// what every Pi does at every start, loads none of them (a test checks each path still loads).
import type {
  prepareProvisioning as PrepareProvisioning,
  provisionFromConfigFile as ProvisionFromConfigFile,
  ProvisioningOverrides,
} from './provisioning/provision.js';
import type { ProvisioningTransportKind } from './provisioning/session.js';
import { createSystemdNotifier } from './systemd/notify.js';
import { renderUnit } from './systemd/unit.js';

/** Where the CLI writes and what it reads; `process` only in {@link main}. */
export interface CliIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Resolves with the signal that asks `run` to stop. */
  readonly waitForStop?: () => Promise<'SIGTERM' | 'SIGINT'>;
  /** The script this process runs (`process.argv[1]`): tells an agent installed for updates (`<stateDir>/current`). */
  readonly launcher?: string;
  /**
   * The GPIO and I2C ports of `hardware: "simulated"`, for a caller that embeds the CLI on simulated
   * chips (the agent benchmark runs the deployed `run` this way, where no GPIO or I2C exists).
   * Without them a simulated config is refused, as no simulated hardware exists in the agent.
   */
  readonly hardwarePorts?: HardwarePorts;
}

class ExitWith extends AgentError {
  override name = 'ExitWith';
  readonly exitCode: ExitCode;
  constructor(exitCode: ExitCode, message: string) {
    super('EXIT', message);
    this.exitCode = exitCode;
  }
}

const issueLines = (issues: readonly Issue[]) => issues.map((i) => `  ${i.path}: ${i.message}`).join('\n');

async function checkConfig(file: string, io: CliIo, json: boolean): Promise<ExitCode> {
  // An image's config (a provisioning section, no identity yet) is checked as provisioning will
  // use it: no thing name or device certificate expected, the claim files checked instead.
  if (await needsProvisioning(file, io.env)) return checkUnprovisioned(file, io, json);
  let config: AgentConfig;
  try {
    config = await readAndCheckConfigFile(file, io.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    report(io, json, err.issues);
    return EXIT.config;
  }
  if (json) io.stdout(`${JSON.stringify({ ok: true, thingName: config.thingName })}\n`);
  else
    io.stdout(
      `${file}: ok (thing ${config.thingName}, MQTT ${config.mqtt.protocol}, ${config.sensors.length} sensors, ${config.outputs.length} outputs)\n`,
    );
  return EXIT.ok;
}

async function checkUnprovisioned(file: string, io: CliIo, json: boolean): Promise<ExitCode> {
  let setup: Awaited<ReturnType<typeof PrepareProvisioning>>;
  try {
    const { prepareProvisioning } = await import('./provisioning/provision.js');
    setup = await prepareProvisioning({ configFile: file, env: io.env });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    report(io, json, err.issues);
    return EXIT.config;
  }
  const { section } = setup;
  if (json)
    io.stdout(
      `${JSON.stringify({ ok: true, provisioned: false, templateName: section.templateName, method: section.method })}\n`,
    );
  else
    io.stdout(
      `${file}: ok, not provisioned yet (template ${section.templateName}, ${section.method}, claim certificate ${section.claimCertFile}): \`pifleet-agent run\` provisions it first\n`,
    );
  return EXIT.ok;
}

function report(io: CliIo, json: boolean, issues: readonly Issue[]) {
  if (json) io.stdout(`${JSON.stringify({ ok: false, issues })}\n`);
  else
    io.stderr(
      `invalid configuration (${issues.length} problem${issues.length === 1 ? '' : 's'}):\n${issueLines(issues)}\nhint: fix the file (or the PIFLEET_* variables) and run \`pifleet-agent check-config\` again\n`,
    );
}

async function run(file: string, flags: ConfigFlags, io: CliIo): Promise<ExitCode> {
  // Listen for SIGTERM/SIGINT from the start: a stop asked for while the agent is still starting
  // (connecting, reading the outbox) is honoured once it has started, instead of the default
  // action killing the process with nothing flushed.
  const stopAsked = (io.waitForStop ?? waitForSignal)();
  // A device started from an image with a claim certificate: provision first, then run as the
  // thing it became (the config now names it and its certificate is in place).
  if (await needsProvisioning(file, io.env, flags)) {
    const level = LOG_LEVELS.find((l) => l === flags.logLevel) ?? 'info';
    const logger = createLogger({ level });
    logger.info({ config: file }, 'not provisioned yet: provisioning by claim');
    const first = await Promise.race([
      provision({ configFile: file, env: io.env, flags }, io, logger, false).then((code) => ({ code })),
      stopAsked.then((signal) => ({ signal })),
    ]);
    if ('signal' in first) return first.signal === 'SIGINT' ? EXIT.interrupted : EXIT.ok;
    if (first.code !== EXIT.ok) return first.code;
  }
  let config: AgentConfig;
  try {
    // The same checks as check-config: a key from another pair, a directory as the outbox, … exit
    // 78 here (the unit does not restart on 78) instead of failing over and over further on.
    config = await readAndCheckConfigFile(file, io.env, flags);
  } catch (err) {
    if (err instanceof ConfigError) {
      report(io, false, err.issues);
      return EXIT.config;
    }
    throw err;
  }
  if (config.hardware === 'simulated' && !io.hardwarePorts) {
    io.stderr(
      'hardware "simulated" needs simulated ports: run the agent through the simulator, or set hardware to "real" or "none"\n',
    );
    return EXIT.config;
  }
  const logger = createLogger({
    level: config.logLevel,
    bindings: { version: AGENT_VERSION, thingName: config.thingName },
  });
  const notifier = createSystemdNotifier({ env: io.env, logger });
  const clock = createSystemClock();
  // An agent update switched in (or rolled back) ends this process gracefully; systemd starts
  // the agent `current` names (Restart=always).
  let restart: (reason: string) => void = () => undefined;
  const restartAsked = new Promise<'RESTART'>((resolve) => {
    restart = (reason) => {
      logger.warn({ reason }, 'restarting the agent');
      resolve('RESTART');
    };
  });
  const layout = selfUpdateLayout(config, io.launcher);
  const updater = layout
    ? (await import('./update/updater.js')).createUpdater({
        ...layout,
        publicKeys: config.update.publicKeys,
        healthDeadlineMs: config.update.healthDeadlineSeconds * 1000,
        clock,
        logger,
        restart,
      })
    : undefined;
  const runtime = createAgentRuntime({
    config,
    clock,
    logger,
    ...(config.hardware === 'simulated' && io.hardwarePorts ? { ports: io.hardwarePorts } : {}),
    jobs: { ...(updater ? { updater } : {}), restart },
  });
  try {
    await runtime.start();
  } catch (err) {
    if (err instanceof HardwareUnavailableError) {
      io.stderr(`${err.message}\n`);
      return err.exitCode;
    }
    // The outbox's (or job state's) directory cannot be made: a path under /proc, through a file,
    // on a read-only file system. A config problem, said in one line, not Node's stack.
    const e = err as NodeJS.ErrnoException;
    if (e?.syscall === 'mkdir' && ['ENOENT', 'ENOTDIR', 'EROFS', 'EACCES', 'EPERM'].includes(e.code ?? '')) {
      io.stderr(
        `pifleet-agent: cannot create ${e.path} (${e.code}): set outbox.path to a file in a writable directory (it is created if absent)\n`,
      );
      return e.code === 'EACCES' || e.code === 'EPERM' ? EXIT.noPermission : EXIT.config;
    }
    throw err;
  }
  await notifier.ready(`running as ${config.thingName}`);
  let watchdog: ReturnType<typeof setInterval> | undefined;
  if (notifier.watchdogIntervalMs !== undefined) {
    watchdog = setInterval(() => void notifier.watchdog(), notifier.watchdogIntervalMs);
  }
  const signal = await Promise.race([stopAsked, restartAsked]);
  logger.info({ signal }, 'stopping');
  await notifier.stopping('draining telemetry');
  if (watchdog) clearInterval(watchdog);
  updater?.stop();
  await runtime.stop(signal === 'RESTART' ? 'restart' : 'shutdown');
  logger.flush?.();
  return signal === 'SIGINT' ? EXIT.interrupted : EXIT.ok;
}

function waitForSignal(): Promise<'SIGTERM' | 'SIGINT'> {
  return new Promise((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
}

/**
 * Provisions by claim and says how it went: one line on stdout (JSON with `--json`) when it is
 * done, one line with the reason and a hint on stderr when it is not, and the exit code: 78 for a
 * config or a rejection no retry changes (the unit does not restart on it), 69 when the service
 * could not be reached in time (the unit restarts and it tries again), 77 for a file it may not write.
 */
async function provision(
  input: Parameters<typeof ProvisionFromConfigFile>[0],
  io: CliIo,
  logger: Logger,
  json: boolean,
  transport?: ProvisioningTransportKind,
): Promise<ExitCode> {
  try {
    const { provisionFromConfigFile } = await import('./provisioning/provision.js');
    const outcome = await provisionFromConfigFile(input, { logger, ...(transport ? { transport } : {}) });
    if (outcome.status === 'already-provisioned') {
      if (json) io.stdout(`${JSON.stringify({ ok: true, status: outcome.status, thingName: outcome.thingName })}\n`);
      else
        io.stdout(
          `${input.configFile}: already provisioned as ${outcome.thingName} (nothing done; --force provisions again)\n`,
        );
      return EXIT.ok;
    }
    const { identity } = outcome;
    if (json)
      io.stdout(
        `${JSON.stringify({ ok: true, status: outcome.status, thingName: identity.thingName, certificateId: identity.certificateId, parameters: outcome.parameters })}\n`,
      );
    else
      io.stdout(
        `provisioned as ${identity.thingName} (certificate ${identity.certificateId.slice(0, 12)}…); ${input.configFile} updated\n`,
      );
    return EXIT.ok;
  } catch (err) {
    if (err instanceof ConfigError) {
      report(io, json, err.issues);
      return EXIT.config;
    }
    const failure = provisionFailure(err);
    if (!failure) throw err;
    if (json)
      io.stdout(`${JSON.stringify({ ok: false, ...failure.data, reason: failure.reason, hint: failure.hint })}\n`);
    else io.stderr(`pifleet-agent: ${failure.reason}\n${failure.hint ? `hint: ${failure.hint}\n` : ''}`);
    return failure.code;
  }
}

/** A provisioning failure as the command reports it: one line, a hint, the exit code; undefined for a bug. */
function provisionFailure(
  err: unknown,
): { reason: string; hint?: string; code: ExitCode; data: Record<string, unknown> } | undefined {
  if (err instanceof ProvisioningRejectedError) {
    const { operation, statusCode, errorCode, errorMessage } = err;
    return {
      reason: `provisioning refused: ${operation} ${statusCode} ${errorCode}: ${errorMessage}`,
      hint: rejectionHint(err),
      code: EXIT.config,
      data: { operation, statusCode, errorCode, errorMessage },
    };
  }
  if (err instanceof ProvisioningError && err.code === 'PROVISIONING_CSR_UNAVAILABLE')
    return { reason: err.message, code: EXIT.config, data: { errorCode: err.code } };
  if (err instanceof ProvisioningTimeoutError)
    return {
      reason: err.message,
      hint: 'check the endpoint, the network and the claim certificate (pifleet-agent provision --log-level debug); provisioning.timeoutSeconds sets the time allowed',
      code: EXIT.unavailable,
      data: { errorCode: err.code },
    };
  const e = err as NodeJS.ErrnoException;
  if (typeof e?.code === 'string' && typeof e.path === 'string' && e.syscall !== undefined)
    return {
      reason: `cannot write ${e.path} (${e.code}) while provisioning`,
      hint: "the agent's user needs write access to the config, certFile and keyFile directories",
      code: e.code === 'EACCES' || e.code === 'EPERM' ? EXIT.noPermission : EXIT.config,
      data: { errorCode: e.code, path: e.path },
    };
  return undefined;
}

/** `--param K=V`, repeated: the pairs, in order. */
function collectParam(value: string, previous: readonly string[]): string[] {
  return [...previous, value];
}

function parseParams(pairs: readonly string[]): Record<string, string> {
  const out: Record<string, string> = Object.create(null);
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0)
      throw new ExitWith(
        EXIT.usage,
        `--param ${JSON.stringify(pair)}: use NAME=VALUE (e.g. --param SerialNumber=10000000a3b4c5d6)`,
      );
    const key = pair.slice(0, eq);
    Object.defineProperty(out, key, {
      value: pair.slice(eq + 1),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

/** The options of `print-unit`, as commander parses them. */
interface PrintUnitOptions {
  readonly config: string;
  readonly user: string;
  readonly exec?: string | undefined;
  readonly outboxDir?: string | undefined;
  readonly watchdogSec: string;
  readonly selfUpdate?: true | undefined;
}

async function printUnit(opts: PrintUnitOptions, io: CliIo): Promise<ExitCode> {
  let outboxDir = opts.outboxDir;
  if (!outboxDir) {
    const fromFile = await readConfigFile(opts.config, io.env).catch(() => undefined);
    const outboxPath = fromFile?.outbox.path ?? loadDefaults().outbox.path;
    if (opts.selfUpdate && outboxPath === ':memory:')
      throw new ExitWith(EXIT.usage, '--self-update keeps releases beside the outbox: the config has none (:memory:)');
    outboxDir = path.dirname(outboxPath);
  }
  const watchdogSec = Number(opts.watchdogSec);
  if (!Number.isInteger(watchdogSec) || watchdogSec < 5)
    throw new ExitWith(EXIT.usage, '--watchdog-sec must be an integer ≥ 5');
  if (opts.selfUpdate && opts.exec)
    throw new ExitWith(EXIT.usage, '--self-update runs <outbox dir>/current/bin/pifleet-agent.js: no --exec');
  io.stdout(
    renderUnit({
      ...(opts.exec ? { execPath: opts.exec } : {}),
      configPath: path.resolve(opts.config),
      outboxDir,
      user: opts.user,
      watchdogSec,
      // The layout `pifleet-agent run` recognises (selfUpdateLayout): the state directory is the
      // outbox's, the factory install is /opt/pifleet.
      ...(opts.selfUpdate
        ? { selfUpdate: { stateDir: path.resolve(outboxDir), factoryDir: AGENT_INSTALL_PATHS.agentDir } }
        : {}),
    }),
  );
  return EXIT.ok;
}

function loadDefaults(): AgentConfig {
  const r = loadConfig({ fileText: JSON.stringify({ thingName: 'x', endpoint: 'x', certFile: 'x', keyFile: 'x' }) });
  if (!r.ok) throw new AgentError('DEFAULTS_INVALID', 'built-in defaults do not validate');
  return r.value;
}

/** Runs the `pifleet-agent` CLI in-process and resolves with the exit code. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<ExitCode> {
  let code: ExitCode = EXIT.ok;
  const program = new Command('pifleet-agent')
    .description('pifleet device agent: sensors → batched telemetry → AWS IoT Core, Device Shadow sync')
    .version(AGENT_VERSION)
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr });
  program
    .command('run')
    .description('run the agent (as a systemd service, or in the foreground)')
    .requiredOption('-c, --config <file>', 'config file (JSON)')
    .option('--log-level <level>', 'override logLevel')
    .option('--thing-name <name>', 'override thingName')
    .option('--endpoint <host>', 'override endpoint')
    .option('--outbox <file>', 'override outbox.path')
    .action(async (o) => {
      const flags: ConfigFlags = {
        ...(o.logLevel ? { logLevel: o.logLevel } : {}),
        ...(o.thingName ? { thingName: o.thingName } : {}),
        ...(o.endpoint ? { endpoint: o.endpoint } : {}),
        ...(o.outbox ? { outboxPath: o.outbox } : {}),
      };
      code = await run(o.config, flags, io);
    });
  program
    .command('provision')
    .description(
      'provision this device by claim (fleet provisioning): get its own certificate and thing with the claim certificate, and write them and thingName into the config',
    )
    .requiredOption('-c, --config <file>', 'config file (JSON) with a provisioning section')
    .option('--claim-cert <file>', 'override provisioning.claimCertFile')
    .option('--claim-key <file>', 'override provisioning.claimKeyFile')
    .option('--template <name>', 'override provisioning.templateName')
    .option('--csr', 'make the key on the device and send a CSR (CreateCertificateFromCsr; the default)')
    .option('--create-keys', 'let AWS IoT make the key (CreateKeysAndCertificate)')
    .option(
      '--param <name=value>',
      'a template parameter (repeatable; overrides the device facts and the config)',
      collectParam,
      [],
    )
    .option('--timeout <seconds>', 'override provisioning.timeoutSeconds')
    .option('--force', 'provision again even when the config names a thing and its certificate exists')
    .option('--log-level <level>', 'override logLevel')
    .option('--endpoint <host>', 'override endpoint')
    .option('--transport <kind>', 'MQTT library: crt (the device SDK; default) or mqttjs')
    .option('--json', 'print the result as JSON')
    .action(async (o) => {
      if (o.csr && o.createKeys) throw new ExitWith(EXIT.usage, '--csr and --create-keys exclude each other');
      if (o.transport !== undefined && o.transport !== 'crt' && o.transport !== 'mqttjs')
        throw new ExitWith(EXIT.usage, '--transport must be crt or mqttjs');
      let timeoutSeconds: number | undefined;
      if (o.timeout !== undefined) {
        timeoutSeconds = Number(o.timeout);
        if (!Number.isInteger(timeoutSeconds))
          throw new ExitWith(EXIT.usage, '--timeout must be a whole number of seconds');
      }
      const method: ProvisioningMethod | undefined = o.createKeys ? 'create-keys' : o.csr ? 'csr' : undefined;
      const params = parseParams(o.param);
      const overrides: ProvisioningOverrides = {
        ...(o.claimCert ? { claimCertFile: o.claimCert } : {}),
        ...(o.claimKey ? { claimKeyFile: o.claimKey } : {}),
        ...(o.template ? { templateName: o.template } : {}),
        ...(method ? { method } : {}),
        ...(timeoutSeconds !== undefined ? { timeoutSeconds } : {}),
        ...(Object.keys(params).length > 0 ? { parameters: params } : {}),
      };
      const flags: ConfigFlags = {
        ...(o.logLevel ? { logLevel: o.logLevel } : {}),
        ...(o.endpoint ? { endpoint: o.endpoint } : {}),
      };
      const logger = createLogger({
        level: o.logLevel ?? 'info',
        destination: { write: (line: string) => io.stderr(line) },
      });
      code = await provision(
        { configFile: o.config, env: io.env, flags, overrides, ...(o.force ? { force: true } : {}) },
        io,
        logger,
        Boolean(o.json),
        o.transport as ProvisioningTransportKind | undefined,
      );
    });
  program
    .command('check-config')
    .description('validate a config file and the credential files it names; exit 78 when invalid')
    .argument('<file>', 'config file (JSON)')
    .option('--json', 'print the result as JSON')
    .action(async (file, o) => {
      code = await checkConfig(file, io, Boolean(o.json));
    });
  program
    .command('print-unit')
    .description('print a systemd unit for the agent')
    .option('-c, --config <file>', 'config file the service uses', '/etc/pifleet/agent.json')
    .option('--user <name>', 'service user', 'pifleet')
    .option(
      '--exec <path>',
      'path of pifleet-agent on the device (default: /opt/pifleet/bin/pifleet-agent.js, run by node)',
    )
    .option('--outbox-dir <dir>', 'writable directory for the outbox (default: from the config)')
    .option('--watchdog-sec <n>', 'WatchdogSec', '30')
    .option(
      '--self-update',
      'a unit for agent updates (pifleet.agent-update jobs): boot guard from /opt/pifleet, runs <outbox dir>/current',
    )
    .action(async (o) => {
      code = await printUnit(o, io);
    });

  try {
    await program.parseAsync([...argv], { from: 'user' });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    if (err instanceof ExitWith) {
      io.stderr(`${err.message}\n`);
      return err.exitCode;
    }
    io.stderr(`pifleet-agent: ${(err as Error).message}\nhint: run with --log-level debug for details\n`);
    return EXIT.unexpected;
  }
}

/** Process entry point: the only place that touches `process`. */
export async function main(): Promise<void> {
  const code = await runCli(process.argv.slice(2), {
    stdout: (t) => process.stdout.write(t),
    stderr: (t) => process.stderr.write(t),
    env: process.env,
    ...(process.argv[1] ? { launcher: process.argv[1] } : {}),
  });
  exitWhenFlushed(code);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  void main();
}
