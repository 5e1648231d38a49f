import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { CLAIM_CLIENT_ID_PREFIX, type Issue, isJsonObject, setOwn } from '@pifleet/protocol';
import { checkCredentials } from '../config/files.js';
import { type ConfigFlags, loadConfig } from '../config/load.js';
import type { AgentConfig, ProvisioningConfig } from '../config/schema.js';
import { ConfigError } from '../errors.js';
import { type Logger, silentLogger } from '../logger.js';
import { type Clock, createSystemClock } from '../ports/clock.js';
import { ProvisioningRejectedError } from './errors.js';
import { type DeviceFacts, type FactSources, PI_FACT_SOURCES, readDeviceFacts } from './facts.js';
import { type ProvisionedIdentity, type ProvisioningMethod, provisionIdentity } from './flow.js';
import { type DeviceKeyMaker, makeEcDeviceKey } from './keys.js';
import { documentOf, namesThing } from './needs.js';
import { type IdentitySessionFactory, type ProvisioningTransportKind, SESSION_FACTORIES } from './session.js';
import { ensureDirectories, type StoreStep, storeIdentity } from './store.js';

/** What the command line may set in the `provisioning` section (flags win over the file). */
export interface ProvisioningOverrides {
  readonly templateName?: string;
  readonly claimCertFile?: string;
  readonly claimKeyFile?: string;
  readonly method?: ProvisioningMethod;
  /** Merged over the section's `parameters` (and those over the device's facts). */
  readonly parameters?: Readonly<Record<string, string>>;
  readonly timeoutSeconds?: number;
}

export interface ProvisionDeps {
  readonly logger?: Logger;
  readonly clock?: Clock;
  readonly random?: () => number;
  /** Which MQTT library carries the claim connection (default `crt`, the agent's). */
  readonly transport?: ProvisioningTransportKind;
  /** Opens the claim session; overrides `transport` (tests). */
  readonly openSession?: IdentitySessionFactory;
  readonly facts?: FactSources;
  readonly makeKey?: DeviceKeyMaker;
  /** Called after each write of the identity (tests stop there to see what a crash leaves). */
  readonly afterStore?: (step: StoreStep) => Promise<void> | void;
  /** Time allowed for one request (default 15 s: RegisterThing waits for the hook, which has 5 s). */
  readonly requestTimeoutMs?: number;
}

export interface ProvisionInput {
  readonly configFile: string;
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** The agent's usual overrides (endpoint, port, certFile, …), as for `run`. */
  readonly flags?: ConfigFlags;
  readonly overrides?: ProvisioningOverrides;
  /** Provision even when the config says the device is provisioned already. */
  readonly force?: boolean;
}

export type ProvisionOutcome =
  | {
      readonly status: 'provisioned';
      readonly identity: ProvisionedIdentity;
      readonly parameters: Readonly<Record<string, string>>;
    }
  | { readonly status: 'already-provisioned'; readonly thingName: string };

export { needsProvisioning } from './needs.js';

/** The placeholder that lets the agent's loader check a config that has no thing name yet. */
const UNPROVISIONED = 'pifleet-unprovisioned';

const errno = (err: unknown) => (err as NodeJS.ErrnoException).code;

async function readConfigText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError([{ path: '$', message: `cannot read ${file}: ${errno(err)}` }], { cause: err });
  }
}

/** The document with the command line's provisioning settings in its `provisioning` section. */
function withOverrides(doc: Record<string, unknown>, o: ProvisioningOverrides): Record<string, unknown> {
  const hasAny = Object.values(o).some((v) => v !== undefined);
  if (!hasAny) return doc;
  const section: Record<string, unknown> = isJsonObject(doc.provisioning) ? { ...doc.provisioning } : {};
  if (o.templateName !== undefined) section.templateName = o.templateName;
  if (o.claimCertFile !== undefined) section.claimCertFile = o.claimCertFile;
  if (o.claimKeyFile !== undefined) section.claimKeyFile = o.claimKeyFile;
  if (o.method !== undefined) section.method = o.method;
  if (o.timeoutSeconds !== undefined) section.timeoutSeconds = o.timeoutSeconds;
  if (o.parameters !== undefined) {
    const params: Record<string, unknown> = isJsonObject(section.parameters) ? { ...section.parameters } : {};
    for (const [k, v] of Object.entries(o.parameters)) setOwn(params, k, v);
    section.parameters = params;
  }
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(doc)) setOwn(out, key, doc[key]);
  out.provisioning = section;
  return out;
}

/** Whether the directory a file goes in can take it (it is created when missing). */
async function writableDirProblem(file: string, key: string): Promise<Issue | undefined> {
  let dir = path.dirname(path.resolve(file));
  for (;;) {
    const st = await stat(dir).catch(() => undefined);
    if (st) {
      if (!st.isDirectory()) return { path: key, message: `${dir} is not a directory, so ${file} cannot be written` };
      return access(dir, constants.W_OK | constants.X_OK).then(
        () => undefined,
        () => ({
          path: key,
          message: `${dir} is not writable by this user, so ${file} cannot be written: give the agent's user write access (the systemd unit's ReadWritePaths)`,
        }),
      );
    }
    const parent = path.dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/** Template parameters: the device's facts, then the config's (the command line's `--param` are merged into those). */
function parametersFor(facts: DeviceFacts, config: Readonly<Record<string, string>> | undefined) {
  const out: Record<string, string> = Object.create(null);
  for (const [k, v] of Object.entries(facts)) if (typeof v === 'string') setOwn(out, k, v);
  for (const [k, v] of Object.entries(config ?? {})) setOwn(out, k, v);
  return out;
}

/** A config checked for provisioning: what {@link provisionFromConfigFile} goes on with. */
export interface ProvisioningSetup {
  readonly config: AgentConfig;
  readonly section: ProvisioningConfig;
  /** The config file's text as read (what is rewritten with the thing name). */
  readonly configText: string;
  /** The thing name the config (or environment, or flags) gives, when it gives one. */
  readonly thingName: string | undefined;
  /** Whether the device has an identity already: a thing name and a certificate at certFile. */
  readonly provisioned: boolean;
}

/**
 * Reads and checks a config for provisioning, everything before anything is asked of the service:
 * the config itself (a thing name may be missing), its `provisioning` section with the command
 * line's overrides, the claim certificate and key (present, parsed, a pair, issued by caFile's CA
 * when it holds that CA), and that the device's files can be written where the config says.
 * Throws a `ConfigError` listing every problem. `check-config` shows the same for an image's config.
 */
export async function prepareProvisioning(input: ProvisionInput): Promise<ProvisioningSetup> {
  const env = input.env ?? {};
  const flags = input.flags ?? {};
  const configText = await readConfigText(input.configFile);
  const doc = documentOf(configText);
  const named = doc ? namesThing(doc, env, flags) : true;
  const fileText = doc ? JSON.stringify(withOverrides(doc, input.overrides ?? {})) : configText;
  const loaded = loadConfig({
    fileText,
    fileName: input.configFile,
    env,
    flags: named ? flags : { ...flags, thingName: UNPROVISIONED },
  });
  if (!loaded.ok) throw new ConfigError(loaded.issues);
  const config: AgentConfig = loaded.value;
  const section = config.provisioning;
  if (!section) {
    throw new ConfigError([
      {
        path: 'provisioning',
        message:
          'the config has no provisioning section: add one (templateName, claimCertFile, claimKeyFile) or give --template, --claim-cert and --claim-key',
      },
    ]);
  }
  const hasCertificate = await stat(config.certFile).then(
    () => true,
    () => false,
  );
  const setup = {
    config,
    section,
    configText,
    thingName: named ? config.thingName : undefined,
    provisioned: named && hasCertificate,
  };
  if (setup.provisioned && !input.force) return setup;

  const claim = await checkCredentials({
    certFile: section.claimCertFile,
    keyFile: section.claimKeyFile,
    caFile: config.caFile,
  });
  const rename: Record<string, string> = {
    certFile: 'provisioning.claimCertFile',
    keyFile: 'provisioning.claimKeyFile',
  };
  const issues: Issue[] = claim.ok ? [] : claim.issues.map((i) => ({ ...i, path: rename[i.path] ?? i.path }));
  for (const [file, key] of [
    [config.certFile, 'certFile'],
    [config.keyFile, 'keyFile'],
    [input.configFile, '$'],
  ] as const) {
    const problem = await writableDirProblem(file, key);
    if (problem) issues.push(problem);
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return setup;
}

/**
 * `pifleet-agent provision`, and `run`'s first start: checks the config ({@link prepareProvisioning}),
 * reads the device's facts, connects with the claim certificate, provisions
 * ({@link provisionIdentity}) and stores the new identity ({@link storeIdentity}). Throws a
 * `ConfigError` for the config, and the flow's errors; a failure before the store leaves every file
 * as it was (a device provisioned before keeps running as before).
 */
export async function provisionFromConfigFile(
  input: ProvisionInput,
  deps: ProvisionDeps = {},
): Promise<ProvisionOutcome> {
  const clock = deps.clock ?? createSystemClock();
  const log = (deps.logger ?? silentLogger()).child({ component: 'provisioning' });
  const { config, section, configText, thingName, provisioned } = await prepareProvisioning(input);
  if (provisioned && !input.force && thingName !== undefined) return { status: 'already-provisioned', thingName };

  const facts = await readDeviceFacts(deps.facts ?? PI_FACT_SOURCES);
  const parameters = parametersFor(facts, section.parameters);
  if (parameters.SerialNumber === undefined)
    log.warn(
      { cpuinfo: (deps.facts ?? PI_FACT_SOURCES).cpuinfo },
      'no SerialNumber: not a Pi, or its cpuinfo has no Serial line; set provisioning.parameters.SerialNumber',
    );
  log.info({ templateName: section.templateName, method: section.method, parameters }, 'provisioning');

  await ensureDirectories([config.certFile, config.keyFile]);
  const timeoutMs = section.timeoutSeconds * 1000;
  const deadline = clock.now() + timeoutMs;
  const random = deps.random ?? Math.random;
  const serial = parameters.SerialNumber;
  // The claim policy lets only this prefix connect; the serial makes the id the device's own.
  const clientId = `${CLAIM_CLIENT_ID_PREFIX}${serial && /^[0-9a-f]{16}$/.test(serial) ? serial : randomBytes(8).toString('hex')}`;
  const open = deps.openSession ?? SESSION_FACTORIES[deps.transport ?? 'crt'];
  const session = await open({
    mqtt: {
      protocol: config.mqtt.protocol,
      endpoint: config.endpoint,
      port: config.port,
      clientId,
      certFile: section.claimCertFile,
      keyFile: section.claimKeyFile,
      caFile: config.caFile,
      keepAliveS: config.mqtt.keepAliveS,
      reconnectMinMs: config.mqtt.reconnectMinMs,
      reconnectMaxMs: Math.min(config.mqtt.reconnectMaxMs, 30_000),
      clock,
      random,
      logger: deps.logger ?? silentLogger(),
    },
    requestTimeoutMs: deps.requestTimeoutMs ?? 15_000,
    clock,
    deadline,
    timeoutMs,
  });
  let identity: ProvisionedIdentity;
  try {
    identity = await provisionIdentity(
      {
        identity: session.identity,
        makeKey: deps.makeKey ?? makeEcDeviceKey,
        clock,
        random,
        log,
        deadline,
        timeoutMs,
      },
      { method: section.method, templateName: section.templateName, parameters },
    );
  } catch (err) {
    if (err instanceof ProvisioningRejectedError && err.operation === 'RegisterThing') err.parametersSent = parameters;
    throw err;
  } finally {
    await session.close().catch((err: unknown) => log.warn({ err }, 'claim connection did not close cleanly'));
  }
  await storeIdentity(
    { configFile: input.configFile, configText, certFile: config.certFile, keyFile: config.keyFile },
    identity,
    deps.afterStore,
  );
  log.info({ thingName: identity.thingName, certificateId: identity.certificateId }, 'provisioned');
  return { status: 'provisioned', identity, parameters };
}
