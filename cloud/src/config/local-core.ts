import { parseArgs } from 'node:util';
import { LOCAL_CORE_DEFAULT_ENDPOINT } from '@pifleet/protocol';
import { PERSISTENT_SESSION_EXPIRY } from '../broker/broker.js';
import { CloudError } from '../errors.js';
import { parseHookSpecs } from '../fleet-provisioning/hook-modules.js';
import { LIMITS_MODES, type LimitsMode } from '../limits/quotas.js';

/**
 * Configuration of the local IoT Core (`pifleet-local-core`): defaults < environment < flags.
 * The loader is pure; it reports every problem at once and returns a frozen object.
 */

export interface LocalCoreConfig {
  /** Where the CA, credentials and registry live. */
  readonly dataDir: string;
  /** Address the MQTT and HTTP listeners bind; also the broker host devices connect to. */
  readonly host: string;
  /** MQTT over TLS port; 0 picks an ephemeral port. */
  readonly mqttPort: number;
  /** HTTP (control plane, later data plane) port; 0 picks an ephemeral port. */
  readonly httpPort: number;
  /**
   * MQTT over WebSocket (wss, SigV4-presigned) port; 0 picks an ephemeral port. The command line
   * defaults it to {@link LOCAL_CORE_DEFAULT_WS_PORT}; a core composed in code without it listens
   * on an ephemeral port, so suites starting cores side by side never contend for one port.
   */
  readonly wsPort?: number;
  /** The IAM policy (JSON) of WebSocket callers; '' = the console operator's (`@pifleet/protocol`). Read at start. */
  readonly wsPolicyFile: string;
  readonly region: string;
  /** The 12-digit account id ARNs carry. */
  readonly accountId: string;
  readonly logLevel: string;
  /**
   * How long the broker keeps an offline persistent session (an MQTT 3.1.1 clean-session-false
   * session, and the cap on an MQTT 5 Session Expiry Interval), in seconds: IoT Core's default
   * 1 h, adjustable from 1 s to 7 days as IoT Core's quota is.
   */
  readonly persistentSessionExpirySeconds: number;
  /** IoT Core's quotas (`aws`, the default) or none of its rates and counts (`off`). */
  readonly limits: LimitsMode;
  /** A JSON file of quota name → value (or null) changing single quotas; '' = none. Read at start. */
  readonly limitsFile: string;
  /**
   * Pre-provisioning hooks written by the operator: `NAME=FILE[,NAME=FILE…]`, each an ES module
   * whose `handler` runs for templates whose hook is the Lambda function NAME; '' = none.
   */
  readonly hooks: string;
}

export const LOCAL_CORE_DEFAULTS: LocalCoreConfig = Object.freeze({
  dataDir: '.pifleet/local-core',
  ...LOCAL_CORE_DEFAULT_ENDPOINT,
  logLevel: 'info',
  persistentSessionExpirySeconds: PERSISTENT_SESSION_EXPIRY.defaultSeconds,
  limits: 'aws',
  limitsFile: '',
  hooks: '',
  wsPolicyFile: '',
});

/** The WebSocket listener's port unless `--ws-port` or its variable says otherwise. */
export const LOCAL_CORE_DEFAULT_WS_PORT = 8443;

/** Environment variables read, by config key. */
export const LOCAL_CORE_ENV: Readonly<Record<keyof LocalCoreConfig, string>> = {
  dataDir: 'PIFLEET_DATA_DIR',
  host: 'PIFLEET_HOST',
  mqttPort: 'PIFLEET_MQTT_PORT',
  httpPort: 'PIFLEET_HTTP_PORT',
  region: 'PIFLEET_REGION',
  accountId: 'PIFLEET_ACCOUNT_ID',
  logLevel: 'PIFLEET_LOG_LEVEL',
  persistentSessionExpirySeconds: 'PIFLEET_PERSISTENT_SESSION_EXPIRY',
  limits: 'PIFLEET_LIMITS',
  limitsFile: 'PIFLEET_LIMITS_FILE',
  hooks: 'PIFLEET_HOOKS',
  wsPort: 'PIFLEET_WS_PORT',
  wsPolicyFile: 'PIFLEET_WS_POLICY',
};

export const LOCAL_CORE_USAGE = `Usage: pifleet-local-core [options]

Runs the local IoT Core in the foreground: TLS MQTT broker, local CA, registry and the
SigV4-signed IoT control-plane HTTP API. Prints one JSON line on stdout when ready; logs to stderr.

Options:
  --data-dir DIR     state directory (CA, credentials, SQLite)   [${LOCAL_CORE_DEFAULTS.dataDir}]  env ${LOCAL_CORE_ENV.dataDir}
  --host HOST        bind address and broker host                 [${LOCAL_CORE_DEFAULTS.host}]  env ${LOCAL_CORE_ENV.host}
  --mqtt-port PORT   MQTT over TLS port, 0 = ephemeral            [${LOCAL_CORE_DEFAULTS.mqttPort}]  env ${LOCAL_CORE_ENV.mqttPort}
  --http-port PORT   HTTP API port, 0 = ephemeral                 [${LOCAL_CORE_DEFAULTS.httpPort}]  env ${LOCAL_CORE_ENV.httpPort}
  --ws-port PORT     MQTT over WebSocket (wss://HOST:PORT/mqtt, SigV4-presigned), 0 = ephemeral
                                                                  [${LOCAL_CORE_DEFAULT_WS_PORT}]  env ${LOCAL_CORE_ENV.wsPort}
  --ws-policy FILE   IAM policy (JSON) of WebSocket callers, instead of the console operator's
                     (iot:Connect pifleet-console-*, the console's live topics)  env ${LOCAL_CORE_ENV.wsPolicyFile}
  --region REGION    region of ARNs and SigV4 scopes              [${LOCAL_CORE_DEFAULTS.region}]  env ${LOCAL_CORE_ENV.region}
  --account-id ID    12-digit account id of ARNs                  [${LOCAL_CORE_DEFAULTS.accountId}]  env ${LOCAL_CORE_ENV.accountId}
  --log-level LEVEL  fatal, error, warn, info, debug, trace       [${LOCAL_CORE_DEFAULTS.logLevel}]  env ${LOCAL_CORE_ENV.logLevel}
  --persistent-session-expiry SECONDS
                     how long an offline persistent session (and its queued QoS 1 messages) is kept,
                     1-${PERSISTENT_SESSION_EXPIRY.maxSeconds} (7 days)  [${LOCAL_CORE_DEFAULTS.persistentSessionExpirySeconds}]  env ${LOCAL_CORE_ENV.persistentSessionExpirySeconds}
  --limits aws|off   enforce IoT Core's quotas (rates, counts, sizes) or lift its rates and counts
                     (sizes stay: they shape what AWS accepts)  [${LOCAL_CORE_DEFAULTS.limits}]  env ${LOCAL_CORE_ENV.limits}
  --limits-file FILE JSON object of quota name -> value, or null to stop enforcing one (names in the
                     README's quotas table)  env ${LOCAL_CORE_ENV.limitsFile}
  --hooks NAME=FILE[,NAME=FILE...]
                     pre-provisioning hooks: a template whose hook is the Lambda function NAME calls
                     FILE's exported handler(event), an ES module (pifleet-provisioning-hook is built
                     in)  env ${LOCAL_CORE_ENV.hooks}
  --version          print the version and exit
  -h, --help         show this help

One core runs on a data directory at a time (it holds DIR/core.lock while it runs).
Exit codes: 0 stopped by SIGINT/SIGTERM · 64 usage · 69 a port is in use · 75 another core runs on
the data directory · 77 permission · 78 configuration (bad flag value, data directory not a
directory or not creatable, unusable CA, credentials or database file) · 1 unexpected.
`;

export class ConfigError extends CloudError {
  override name = 'ConfigError';
  readonly problems: readonly string[];

  constructor(problems: readonly string[], code = 'CONFIG_INVALID') {
    super(code, `invalid configuration: ${problems.join('; ')}`, { data: { problems } });
    this.problems = Object.freeze([...problems]);
  }
}

/** Thrown for bad command-line usage (unknown flag, missing value): exit 64, not 78. */
export class UsageError extends ConfigError {
  override name = 'UsageError';
  constructor(problems: readonly string[]) {
    super(problems, 'CONFIG_USAGE');
  }
}

const LOG_LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

export type LocalCoreArgs =
  | { readonly help: true }
  | { readonly help: false; readonly version: true }
  | { readonly help: false; readonly version: false; readonly config: LocalCoreConfig };

/** Parses flags and environment into a validated, frozen config. */
export function loadLocalCoreConfig(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>> = {},
): LocalCoreArgs {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        'data-dir': { type: 'string' },
        host: { type: 'string' },
        'mqtt-port': { type: 'string' },
        'http-port': { type: 'string' },
        'ws-port': { type: 'string' },
        'ws-policy': { type: 'string' },
        region: { type: 'string' },
        'account-id': { type: 'string' },
        'log-level': { type: 'string' },
        'persistent-session-expiry': { type: 'string' },
        limits: { type: 'string' },
        'limits-file': { type: 'string' },
        hooks: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean' },
      },
    }));
  } catch (err) {
    throw new UsageError([(err as Error).message]);
  }
  if (values.help === true) return { help: true };
  if (values.version === true) return { help: false, version: true };

  const problems: string[] = [];
  const pick = (key: keyof LocalCoreConfig, flag: string): string => {
    const fromFlag = values[flag];
    if (typeof fromFlag === 'string') return fromFlag;
    const fromEnv = env[LOCAL_CORE_ENV[key]];
    if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
    return String(key === 'wsPort' ? LOCAL_CORE_DEFAULT_WS_PORT : LOCAL_CORE_DEFAULTS[key]);
  };
  const port = (key: 'mqttPort' | 'httpPort' | 'wsPort', flag: string): number => {
    const raw = pick(key, flag);
    const n = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
    if (!Number.isInteger(n) || n < 0 || n > 65535) {
      problems.push(`--${flag}: '${raw}' is not a port number (0-65535)`);
      return 0;
    }
    return n;
  };
  const sessionExpiry = (): number => {
    const raw = pick('persistentSessionExpirySeconds', 'persistent-session-expiry');
    const n = /^\d{1,7}$/.test(raw) ? Number(raw) : Number.NaN;
    if (!(n >= 1 && n <= PERSISTENT_SESSION_EXPIRY.maxSeconds)) {
      problems.push(
        `--persistent-session-expiry: '${raw}' is not a number of seconds from 1 to ${PERSISTENT_SESSION_EXPIRY.maxSeconds} (7 days, IoT Core's maximum)`,
      );
      return PERSISTENT_SESSION_EXPIRY.defaultSeconds;
    }
    return n;
  };

  const limitsMode = (): LimitsMode => {
    const raw = pick('limits', 'limits');
    const mode = LIMITS_MODES.find((m) => m === raw);
    if (mode === undefined) {
      problems.push(`--limits: '${raw}' is not one of ${LIMITS_MODES.join(', ')}`);
      return 'aws';
    }
    return mode;
  };

  const config: LocalCoreConfig = {
    dataDir: pick('dataDir', 'data-dir'),
    host: pick('host', 'host'),
    mqttPort: port('mqttPort', 'mqtt-port'),
    httpPort: port('httpPort', 'http-port'),
    wsPort: port('wsPort', 'ws-port'),
    region: pick('region', 'region'),
    accountId: pick('accountId', 'account-id'),
    logLevel: pick('logLevel', 'log-level'),
    persistentSessionExpirySeconds: sessionExpiry(),
    limits: limitsMode(),
    limitsFile: pick('limitsFile', 'limits-file'),
    hooks: pick('hooks', 'hooks'),
    wsPolicyFile: pick('wsPolicyFile', 'ws-policy'),
  };
  const hookSpecs = parseHookSpecs(config.hooks);
  if (!hookSpecs.ok) problems.push(...hookSpecs.problems);
  if (config.dataDir.trim() === '') problems.push('--data-dir: must not be empty');
  if (!/^[A-Za-z0-9.:_-]+$/.test(config.host)) problems.push(`--host: '${config.host}' is not a host name or address`);
  if (!/^[a-z]{2}(-[a-z]+)+-\d+$/.test(config.region))
    problems.push(`--region: '${config.region}' is not a region name`);
  if (!/^\d{12}$/.test(config.accountId)) problems.push(`--account-id: '${config.accountId}' must be 12 digits`);
  if (!LOG_LEVELS.has(config.logLevel)) problems.push(`--log-level: '${config.logLevel}' is not a log level`);
  if (config.mqttPort !== 0 && config.mqttPort === config.httpPort) {
    problems.push('--mqtt-port and --http-port must differ');
  }
  for (const [other, value] of [
    ['--mqtt-port', config.mqttPort],
    ['--http-port', config.httpPort],
  ] as const) {
    if (config.wsPort !== 0 && config.wsPort === value) problems.push(`--ws-port and ${other} must differ`);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return { help: false, version: false, config: Object.freeze(config) };
}
