import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { CredentialsError, TargetConfigError } from '../errors.js';

/**
 * Where the CLI points: AWS IoT Core (default credential chain and region), or the local IoT Core
 * named by `--local[=DATA_DIR]` or `PIFLEET_LOCAL=DATA_DIR`, whose data directory records its
 * HTTP endpoint, credentials, region and CA.
 */
export type Target = AwsTarget | LocalTarget;

export interface AwsTarget {
  readonly kind: 'aws';
  /** From `--region`, AWS_REGION or AWS_DEFAULT_REGION; otherwise the SDK's own lookup (profile config). */
  readonly region?: string;
  /** Explicit credentials from the given environment; otherwise the SDK's default chain. */
  readonly credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  readonly profile?: string;
}

export interface LocalTarget {
  readonly kind: 'local';
  readonly dataDir: string;
  /** Control-plane (and data-plane) HTTP endpoint, e.g. `http://127.0.0.1:8443`. */
  readonly httpEndpoint: string;
  readonly region: string;
  readonly credentials: { accessKeyId: string; secretAccessKey: string };
  readonly caPem: string;
  readonly caFile: string;
  /** MQTT listener, when the data directory records it (used when DescribeEndpoint has no port). */
  readonly mqtt?: { host: string; port: number };
}

/** Default data directory of the local IoT Core when `--local` has no value and PIFLEET_LOCAL is unset. */
export const DEFAULT_LOCAL_DATA_DIR = '.pifleet/local-core';
/**
 * The file in the data directory where the running local core records how to reach it: its ready
 * line (`{"ready":true,"mqtt":{host,port},"http":…,"caFile","credentialsFile","region"}`). Without
 * it the core's default listeners are assumed ({@link LOCAL_DEFAULT_ENDPOINTS}).
 */
export const LOCAL_ENDPOINT_FILE = 'endpoint.json';
/** `pifleet-local-core`'s default listeners, used when the data directory has no endpoint file. */
export const LOCAL_DEFAULT_ENDPOINTS = {
  http: 'http://127.0.0.1:8880',
  mqtt: { host: '127.0.0.1', port: 8883 },
} as const;
export const LOCAL_PROFILE = 'pifleet-local';

export interface ResolveTargetInput {
  /** `--local` given: `true` (or `''`) without a value, or the directory. */
  readonly local?: string | boolean;
  readonly region?: string;
  readonly profile?: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
  /** How to start the local core in a hint (`pifleet-local-core`, or `node cloud/bin/…` in a checkout). */
  readonly localCoreCommand?: string;
}

/** Parses the `[profile]` section of an AWS shared-credentials file. */
export function parseSharedCredentials(
  text: string,
  profile: string,
): { accessKeyId: string; secretAccessKey: string } | undefined {
  let current: string | undefined;
  const values = new Map<string, string>();
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const section = /^\[\s*([^\]]+?)\s*\]$/.exec(line);
    if (section) {
      current = section[1];
      continue;
    }
    if (current !== profile) continue;
    const eq = line.indexOf('=');
    if (eq > 0) values.set(line.slice(0, eq).trim().toLowerCase(), line.slice(eq + 1).trim());
  }
  const accessKeyId = values.get('aws_access_key_id');
  const secretAccessKey = values.get('aws_secret_access_key');
  return accessKeyId && secretAccessKey ? { accessKeyId, secretAccessKey } : undefined;
}

interface EndpointRecord {
  http?: unknown;
  mqtt?: { host?: unknown; port?: unknown };
  region?: unknown;
  caFile?: unknown;
  credentialsFile?: unknown;
}

async function readText(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export async function resolveTarget(input: ResolveTargetInput): Promise<Target> {
  const envLocal = input.env.PIFLEET_LOCAL;
  const wantsLocal = input.local !== undefined && input.local !== false;
  if (!wantsLocal && (envLocal === undefined || envLocal === '')) {
    const region = input.region ?? input.env.AWS_REGION ?? input.env.AWS_DEFAULT_REGION;
    const id = input.env.AWS_ACCESS_KEY_ID;
    const secret = input.env.AWS_SECRET_ACCESS_KEY;
    const token = input.env.AWS_SESSION_TOKEN;
    const profile = input.profile ?? input.env.AWS_PROFILE;
    return {
      kind: 'aws',
      ...(region ? { region } : {}),
      ...(id && secret
        ? { credentials: { accessKeyId: id, secretAccessKey: secret, ...(token ? { sessionToken: token } : {}) } }
        : {}),
      ...(profile ? { profile } : {}),
    };
  }
  const given =
    typeof input.local === 'string' && input.local !== '' ? input.local : envLocal || DEFAULT_LOCAL_DATA_DIR;
  const dataDir = path.resolve(input.cwd, given);
  const startHint = `start it with: ${input.localCoreCommand ?? 'pifleet-local-core'} --data-dir ${dataDir}`;

  const endpointFile = path.join(dataDir, LOCAL_ENDPOINT_FILE);
  const endpointText = await readText(endpointFile);
  let record: EndpointRecord;
  if (endpointText === undefined) {
    // No endpoint file: the data directory must at least be a core's (credentials present); assume its default ports.
    if ((await readText(path.join(dataDir, 'credentials'))) === undefined) {
      throw new TargetConfigError(
        `${dataDir} is not a local IoT Core data directory (no credentials, no ${LOCAL_ENDPOINT_FILE})`,
        {
          hint: startHint,
          data: { dataDir },
        },
      );
    }
    record = { http: LOCAL_DEFAULT_ENDPOINTS.http, mqtt: { ...LOCAL_DEFAULT_ENDPOINTS.mqtt } };
  } else {
    try {
      record = JSON.parse(endpointText) as EndpointRecord;
    } catch (err) {
      throw new TargetConfigError(`${endpointFile} is not valid JSON`, { cause: err, hint: startHint });
    }
  }
  if (typeof record.http !== 'string' || !/^https?:\/\//.test(record.http)) {
    throw new TargetConfigError(`${endpointFile} has no http endpoint`, { hint: startHint });
  }
  const region = typeof record.region === 'string' && record.region !== '' ? record.region : 'us-east-1';
  const resolveIn = (f: unknown, fallback: string) =>
    path.resolve(dataDir, typeof f === 'string' && f !== '' ? f : fallback);
  const credentialsFile = resolveIn(record.credentialsFile, 'credentials');
  const caFile = resolveIn(record.caFile, path.join('ca', 'ca.pem'));

  const credentialsText = await readText(credentialsFile);
  const credentials =
    credentialsText === undefined ? undefined : parseSharedCredentials(credentialsText, LOCAL_PROFILE);
  if (!credentials) {
    throw new CredentialsError(`no [${LOCAL_PROFILE}] credentials in ${credentialsFile}`, {
      hint: 'the local core writes them on first start; restart it on this data directory',
      data: { dataDir },
    });
  }
  const caPem = await readText(caFile);
  if (caPem === undefined) {
    throw new TargetConfigError(`the local CA certificate ${caFile} is missing`, {
      hint: startHint,
      data: { dataDir },
    });
  }
  const mqtt =
    record.mqtt && typeof record.mqtt.host === 'string' && typeof record.mqtt.port === 'number'
      ? { host: record.mqtt.host, port: record.mqtt.port }
      : undefined;
  return {
    kind: 'local',
    dataDir,
    httpEndpoint: record.http.replace(/\/+$/, ''),
    region,
    credentials,
    caPem,
    caFile,
    ...(mqtt ? { mqtt } : {}),
  };
}
