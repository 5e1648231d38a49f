import { isIP } from 'node:net';
import { formatPath, type Issue, parseJson, type Validation } from '@pifleet/protocol';
import { hardwareSpecSchema } from '../hardware/spec.js';
import { applyConfigOverlay, type OverlayMerge } from './overlay.js';
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
  telemetryEncoding: { env: 'PIFLEET_TELEMETRY_ENCODING', path: ['telemetry', 'encoding'], type: 'string' },
  outboxPath: { env: 'PIFLEET_OUTBOX_PATH', path: ['outbox', 'path'], type: 'string' },
  outboxMaxBytes: { env: 'PIFLEET_OUTBOX_MAX_BYTES', path: ['outbox', 'maxBytes'], type: 'int' },
  healthIntervalSeconds: { env: 'PIFLEET_HEALTH_INTERVAL_SECONDS', path: ['health', 'intervalSeconds'], type: 'int' },
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
  /**
   * Text of the config overlay (`config-overlay.json` in the state directory: what config jobs
   * applied), merged after the file and before env and flags. An overlay that does not parse, or
   * names what the config does not have, is ignored (listed in the result), never an error.
   */
  readonly overlayText?: string;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * How deeply a config file may nest (each object or array is a level). The deepest place in a
 * valid config is a channel of an ADS1115 sensor (`sensors[0].channels[0]`, level 5); everything
 * after parsing (the clone, the schema, the freeze) recurses, and V8's `structuredClone`
 * overflows its stack at ~1,900 levels.
 */
export const MAX_CONFIG_DEPTH = 16;

/**
 * The path to the first value nested deeper than `limit` (the root object is level 1), found with
 * an explicit stack so that a document of any depth is walked without recursion.
 */
export function pathBeyondDepth(value: unknown, limit: number): (string | number)[] | undefined {
  const stack: { value: unknown; path: (string | number)[] }[] = [{ value, path: [] }];
  for (let top = stack.pop(); top !== undefined; top = stack.pop()) {
    const v = top.value;
    if (typeof v !== 'object' || v === null) continue;
    if (top.path.length >= limit) return top.path;
    const entries: [string | number, unknown][] = Array.isArray(v)
      ? v.map((item, i) => [i, item])
      : Object.keys(v).map((k) => [k, (v as Record<string, unknown>)[k]]);
    for (const [key, child] of entries) stack.push({ value: child, path: [...top.path, key] });
  }
  return undefined;
}

/**
 * Why an endpoint is not a host name (AWS IoT's `xxxxxxxx-ats.iot.<region>.amazonaws.com`, a
 * name of the local IoT Core, or an IP address), with the value to use instead; undefined when it is one.
 */
export function endpointProblem(endpoint: string): string | undefined {
  if (isIP(endpoint) !== 0) return undefined;
  const url = /^[a-z][a-z0-9+.-]*:\/\//i.test(endpoint) ? safeUrl(endpoint) : undefined;
  if (url) {
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const port = url.port ? ` and port ${url.port}` : '';
    return `${JSON.stringify(endpoint)} is a URL; endpoint is a host name: use ${JSON.stringify(host)}${port}`;
  }
  if (/\s/.test(endpoint))
    return `${JSON.stringify(endpoint)} contains spaces; endpoint is a host name such as xxxxxxxx-ats.iot.eu-west-1.amazonaws.com`;
  const hostPort = /^([^:/]+):(\d+)$/.exec(endpoint);
  if (hostPort) {
    return `${JSON.stringify(endpoint)} includes a port; set endpoint to ${JSON.stringify(hostPort[1])} and port to ${hostPort[2]}`;
  }
  const name = endpoint.endsWith('.') ? endpoint.slice(0, -1) : endpoint;
  const label = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
  if (name.length > 253 || !name.split('.').every((l) => label.test(l))) {
    return `${JSON.stringify(endpoint)} is not a valid host name (letters, digits, hyphens and dots; no "/" or ":"): use the endpoint \`aws iot describe-endpoint --endpoint-type iot:Data-ATS\` prints, or the local IoT Core's host`;
  }
  return undefined;
}

function safeUrl(text: string): URL | undefined {
  try {
    return new URL(text);
  } catch {
    return undefined;
  }
}

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

interface Merged {
  readonly doc: Record<string, unknown>;
  readonly overlay: OverlayMerge | undefined;
  /** Where an overridden path's value came from (`from PIFLEET_PORT`, `from the command line`). */
  readonly origin: ReadonlyMap<string, string>;
  readonly issues: readonly Issue[];
}

/** The config file's document with the environment and flags applied, not yet validated. */
function merge(input: LoadConfigInput): Merged | { readonly fatal: readonly Issue[] } {
  const issues: Issue[] = [];
  let doc: Record<string, unknown> = {};
  if (input.fileText !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(input.fileText);
    } catch (err) {
      return {
        fatal: [{ path: '$', message: `${input.fileName ?? 'config'} is not valid JSON: ${(err as Error).message}` }],
      };
    }
    if (!isObject(parsed)) return { fatal: [{ path: '$', message: 'config must be a JSON object' }] };
    // Before anything recurses into it (the clone below, the schema, the freeze).
    const deep = pathBeyondDepth(parsed, MAX_CONFIG_DEPTH);
    if (deep) {
      return {
        fatal: [
          {
            path: formatPath(deep),
            message: `${input.fileName ?? 'config'} nests more than ${MAX_CONFIG_DEPTH} levels deep here (a valid config needs 5): is this the agent's config file?`,
          },
        ],
      };
    }
    doc = structuredClone(parsed);
  }
  const overlay = input.overlayText === undefined ? undefined : mergeOverlay(doc, input.overlayText);

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
  return { doc, overlay, origin, issues };
}

function mergeOverlay(doc: Record<string, unknown>, text: string): OverlayMerge {
  const parsed = parseJson(text, { maxDepth: MAX_CONFIG_DEPTH });
  if (!parsed.ok)
    return { applied: [], ignored: [{ path: '$', message: `config overlay ignored: ${parsed.message}` }] };
  return applyConfigOverlay(doc, parsed.value);
}

/**
 * The file paths a config names (after the environment and flags), whatever else is wrong with
 * it: `check-config` checks those files even when the config does not validate, so that every
 * problem is reported at once.
 */
export function configFilePaths(input: LoadConfigInput): {
  readonly certFile?: string;
  readonly keyFile?: string;
  readonly caFile?: string;
  readonly outboxPath?: string;
} {
  const merged = merge(input);
  if ('fatal' in merged) return {};
  const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);
  const { doc } = merged;
  const outbox = isObject(doc.outbox) ? doc.outbox : {};
  const paths = {
    certFile: str(doc.certFile),
    keyFile: str(doc.keyFile),
    caFile: str(doc.caFile),
    outboxPath: str(outbox.path),
  };
  return Object.fromEntries(Object.entries(paths).filter(([, v]) => v !== undefined));
}

/**
 * Builds the agent configuration from defaults, a config file's text, the environment and flags.
 * Pure: it reads nothing itself. Returns every problem with its path (an override's source is
 * named next to it), or the frozen config.
 */
export function loadConfig(input: LoadConfigInput): Validation<AgentConfig> & { readonly overlay?: OverlayMerge } {
  const merged = merge(input);
  if ('fatal' in merged) return { ok: false, issues: merged.fatal };
  const { doc, origin } = merged;
  const issues: Issue[] = [...merged.issues];
  const withSource = (path: string, message: string) => {
    const source = origin.get(path);
    return { path, message: source ? `${message} (${source})` : message };
  };

  const result = agentConfigSchema.safeParse(doc);
  if (!result.success) {
    for (const issue of result.error.issues) issues.push(withSource(formatPath(issue.path), issue.message));
  }
  // Checked beside the schema's issues, so that a URL as endpoint is reported with the rest.
  if (typeof doc.endpoint === 'string' && doc.endpoint !== '') {
    const problem = endpointProblem(doc.endpoint);
    if (problem) issues.push(withSource('endpoint', problem));
  }
  if (issues.length > 0 || !result.success) return { ok: false, issues };
  const value = result.data;
  const config = { ...value, mqtt: { ...value.mqtt, clientId: value.mqtt.clientId ?? value.thingName } } as AgentConfig;
  // Cross-item hardware rules (a GPIO line or I2C address used twice) live in the hardware spec.
  const hw = hardwareSpecSchema.safeParse(toHardwareSpec(config));
  if (!hw.success) {
    return { ok: false, issues: hw.error.issues.map((i) => ({ path: formatPath(i.path), message: i.message })) };
  }
  return { ok: true, value: deepFreeze(config), ...(merged.overlay ? { overlay: merged.overlay } : {}) };
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
