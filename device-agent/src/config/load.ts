import { formatPath, type Issue, type Validation } from '@pifleet/protocol';
import { hardwareSpecSchema } from '../hardware/spec.js';
import { type AgentConfig, agentConfigSchema, toHardwareSpec } from './schema.js';

/**
 * Settings that can be overridden from the environment (`PIFLEET_*`) and from command-line
 * flags. Precedence: schema defaults < config file < environment < flags.
 */
export const OVERRIDES = {
  thingName: { env: 'PIFLEET_THING_NAME', path: ['thingName'], type: 'string' },
  endpoint: { env: 'PIFLEET_ENDPOINT', path: ['endpoint'], type: 'string' },
  port: { env: 'PIFLEET_PORT', path: ['port'], type: 'int' },
  certFile: { env: 'PIFLEET_CERT_FILE', path: ['certFile'], type: 'string' },
  keyFile: { env: 'PIFLEET_KEY_FILE', path: ['keyFile'], type: 'string' },
  caFile: { env: 'PIFLEET_CA_FILE', path: ['caFile'], type: 'string' },
  mqttProtocol: { env: 'PIFLEET_MQTT_PROTOCOL', path: ['mqtt', 'protocol'], type: 'string' },
  clientId: { env: 'PIFLEET_CLIENT_ID', path: ['mqtt', 'clientId'], type: 'string' },
  logLevel: { env: 'PIFLEET_LOG_LEVEL', path: ['logLevel'], type: 'string' },
  hardware: { env: 'PIFLEET_HARDWARE', path: ['hardware'], type: 'string' },
  outboxPath: { env: 'PIFLEET_OUTBOX_PATH', path: ['outbox', 'path'], type: 'string' },
  outboxMaxBytes: { env: 'PIFLEET_OUTBOX_MAX_BYTES', path: ['outbox', 'maxBytes'], type: 'int' },
} as const satisfies Record<string, { env: string; path: readonly string[]; type: 'string' | 'int' }>;

export type OverrideKey = keyof typeof OVERRIDES;
/** Values given on the command line, by override key (strings are converted like env values). */
export type ConfigFlags = Partial<Record<OverrideKey, string | number>>;

export interface LoadConfigInput {
  /** Text of the config file (JSON). */
  readonly fileText?: string;
  /** Shown in the issue for unparsable JSON. */
  readonly fileName?: string;
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly flags?: ConfigFlags;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function setPath(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (isObject(next)) node = next;
    else {
      const created: Record<string, unknown> = {};
      node[key] = created;
      node = created;
    }
  }
  const last = path[path.length - 1];
  if (last !== undefined) node[last] = value;
}

function convert(type: 'string' | 'int', raw: string | number): { ok: true; value: unknown } | { ok: false } {
  if (type === 'string') return { ok: true, value: String(raw) };
  if (typeof raw === 'number') return { ok: true, value: raw };
  if (!/^-?\d+$/.test(raw.trim())) return { ok: false };
  return { ok: true, value: Number.parseInt(raw, 10) };
}

/**
 * Builds the agent configuration from defaults, a config file's text, the environment and flags.
 * Pure: it reads nothing itself. Returns every problem with its path (an override's source is
 * named next to it), or the frozen config.
 */
export function loadConfig(input: LoadConfigInput): Validation<AgentConfig> {
  const issues: Issue[] = [];
  let doc: Record<string, unknown> = {};
  if (input.fileText !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(input.fileText);
    } catch (err) {
      return {
        ok: false,
        issues: [{ path: '$', message: `${input.fileName ?? 'config'} is not valid JSON: ${(err as Error).message}` }],
      };
    }
    if (!isObject(parsed)) return { ok: false, issues: [{ path: '$', message: 'config must be a JSON object' }] };
    doc = structuredClone(parsed);
  }

  const origin = new Map<string, string>();
  const apply = (key: OverrideKey, raw: string | number, source: string) => {
    const o = OVERRIDES[key];
    const converted = convert(o.type, raw);
    const where = formatPath(o.path);
    if (!converted.ok) {
      issues.push({ path: where, message: `${source}: ${JSON.stringify(raw)} is not an integer` });
      return;
    }
    setPath(doc, o.path, converted.value);
    origin.set(where, source);
  };
  for (const key of Object.keys(OVERRIDES) as OverrideKey[]) {
    const raw = input.env?.[OVERRIDES[key].env];
    if (raw !== undefined && raw !== '') apply(key, raw, `from ${OVERRIDES[key].env}`);
  }
  for (const key of Object.keys(OVERRIDES) as OverrideKey[]) {
    const raw = input.flags?.[key];
    if (raw !== undefined) apply(key, raw, 'from the command line');
  }

  const result = agentConfigSchema.safeParse(doc);
  if (!result.success) {
    for (const issue of result.error.issues) {
      const path = formatPath(issue.path);
      const source = origin.get(path);
      issues.push({ path, message: source ? `${issue.message} (${source})` : issue.message });
    }
  }
  if (issues.length > 0 || !result.success) return { ok: false, issues };
  const value = result.data;
  const config = { ...value, mqtt: { ...value.mqtt, clientId: value.mqtt.clientId ?? value.thingName } } as AgentConfig;
  // Cross-item hardware rules (a GPIO line or I2C address used twice) live in the hardware spec.
  const hw = hardwareSpecSchema.safeParse(toHardwareSpec(config));
  if (!hw.success) {
    return { ok: false, issues: hw.error.issues.map((i) => ({ path: formatPath(i.path), message: i.message })) };
  }
  return { ok: true, value: deepFreeze(config) };
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
