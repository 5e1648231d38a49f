import { access } from 'node:fs/promises';
import path from 'node:path';
import { fromIni } from '@aws-sdk/credential-provider-ini';
import {
  describeIssues,
  LOCAL_CORE_DEFAULT_ENDPOINT,
  LOCAL_CREDENTIALS_FILE,
  LOCAL_ENDPOINT_FILE,
  LOCAL_PROFILE,
  type LocalEndpoint,
  parseLocalEndpoint,
} from '@pifleet/protocol';
import { readTextIfExists } from '../adapters/text-files.js';
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
  /**
   * The quotas the running core enforces, as its endpoint file records them: `aws` (IoT Core's,
   * API rates included) or `off`. Absent when the data directory does not say (an older core).
   */
  readonly limits?: 'aws' | 'off';
  /** The core's web console URL with its token, when the data directory records it. */
  readonly consoleUrl?: string;
}

/** Default data directory of the local IoT Core when `--local` has no value and PIFLEET_LOCAL is unset. */
export const DEFAULT_LOCAL_DATA_DIR = '.pifleet/local-core';
/**
 * `pifleet-local-core`'s default listeners, used when the data directory has no endpoint file
 * (`LOCAL_ENDPOINT_FILE` of `@pifleet/protocol`, where the running core records how to reach it).
 */
export const LOCAL_DEFAULT_ENDPOINTS = {
  http: `http://${LOCAL_CORE_DEFAULT_ENDPOINT.host}:${LOCAL_CORE_DEFAULT_ENDPOINT.httpPort}`,
  mqtt: { host: LOCAL_CORE_DEFAULT_ENDPOINT.host, port: LOCAL_CORE_DEFAULT_ENDPOINT.mqttPort },
} as const;

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

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
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
  const endpointText = await readTextIfExists(endpointFile);
  let record: Pick<LocalEndpoint, 'http' | 'mqtt' | 'region' | 'caFile' | 'credentialsFile' | 'limits'> &
    Partial<Pick<LocalEndpoint, 'console'>>;
  if (endpointText === undefined) {
    // No endpoint file: the data directory must at least be a core's (credentials present); assume its default ports.
    if (!(await exists(path.join(dataDir, LOCAL_CREDENTIALS_FILE)))) {
      throw new TargetConfigError(
        `${dataDir} is not a local IoT Core data directory (no credentials, no ${LOCAL_ENDPOINT_FILE})`,
        {
          hint: startHint,
          data: { dataDir },
        },
      );
    }
    record = {
      http: LOCAL_DEFAULT_ENDPOINTS.http,
      mqtt: { ...LOCAL_DEFAULT_ENDPOINTS.mqtt },
      region: LOCAL_CORE_DEFAULT_ENDPOINT.region,
      caFile: path.join('ca', 'ca.pem'),
      credentialsFile: LOCAL_CREDENTIALS_FILE,
    };
  } else {
    const parsed = parseLocalEndpoint(endpointText);
    if (!parsed.ok) {
      throw new TargetConfigError(
        `${endpointFile} is not a local IoT Core endpoint file: ${describeIssues(parsed.issues)}`,
        { hint: startHint, data: { dataDir } },
      );
    }
    record = parsed.value;
  }
  // The core records absolute paths; relative ones are taken in the data directory.
  const credentialsFile = path.resolve(dataDir, record.credentialsFile);
  const caFile = path.resolve(dataDir, record.caFile);

  // The AWS SDK's own reader, on this file only: the config file is pointed at it too, so
  // `~/.aws/config` cannot add to the profile. It fails alike for a missing file, profile or key.
  const readProfile = fromIni({
    profile: LOCAL_PROFILE,
    filepath: credentialsFile,
    configFilepath: credentialsFile,
    ignoreCache: true,
  });
  const credentials = await readProfile().then(
    ({ accessKeyId, secretAccessKey }) => ({ accessKeyId, secretAccessKey }),
    (err: unknown) => {
      throw new CredentialsError(`no [${LOCAL_PROFILE}] credentials in ${credentialsFile}`, {
        cause: err,
        hint: 'the local core writes them on first start; restart it on this data directory',
        data: { dataDir },
      });
    },
  );
  const caPem = await readTextIfExists(caFile);
  if (caPem === undefined) {
    throw new TargetConfigError(`the local CA certificate ${caFile} is missing`, {
      hint: startHint,
      data: { dataDir },
    });
  }
  return {
    kind: 'local',
    dataDir,
    httpEndpoint: record.http.replace(/\/+$/, ''),
    region: record.region,
    credentials,
    caPem,
    caFile,
    mqtt: { host: record.mqtt.host, port: record.mqtt.port },
    ...(record.limits ? { limits: record.limits.mode } : {}),
    ...(record.console ? { consoleUrl: record.console } : {}),
  };
}
