import { z } from 'zod';
import { type Validation, validateWith } from './issues.js';
import { parseJson } from './json.js';

/**
 * How tools find a running local IoT Core: its data directory. The core writes its ready line to
 * {@link LOCAL_ENDPOINT_FILE} there when it starts (and removes it when it stops), and keeps its
 * key pair in the AWS shared-credentials file {@link LOCAL_CREDENTIALS_FILE} under the profile
 * {@link LOCAL_PROFILE}, so any AWS SDK or the AWS CLI can sign requests to it. The core is the only
 * writer; the `pifleet` CLI's `--local`, the fleet runner and the tests read them.
 */

/** The ready line of the running core, in its data directory. */
export const LOCAL_ENDPOINT_FILE = 'endpoint.json';
/** The shared-credentials file (INI) of the core's key pair, in its data directory. */
export const LOCAL_CREDENTIALS_FILE = 'credentials';
/** The profile of the core's key pair in {@link LOCAL_CREDENTIALS_FILE}. */
export const LOCAL_PROFILE = 'pifleet-local';

/**
 * Where a local core listens unless told otherwise (`pifleet-local-core --mqtt-port/--http-port`),
 * and the account it stands in for; `pifleet --local DIR` assumes them for a data directory whose
 * core has not written its endpoint file.
 */
export const LOCAL_CORE_DEFAULT_ENDPOINT = Object.freeze({
  host: '127.0.0.1',
  mqttPort: 8883,
  httpPort: 8880,
  region: 'us-east-1',
  accountId: '000000000000',
});

/** The ready line the core prints and writes to {@link LOCAL_ENDPOINT_FILE}. */
export const localEndpointSchema = z
  .object({
    ready: z.literal(true),
    /** The TLS MQTT listener devices connect to. */
    mqtt: z.object({ host: z.string().min(1), port: z.number().int().min(1).max(65_535) }).readonly(),
    /** Base URL of the HTTP API, e.g. `http://127.0.0.1:8880` (the SDK clients' `endpoint`). */
    http: z.url({ protocol: /^https?$/ }),
    /** The CA certificate devices and TLS clients must trust (an absolute path). */
    caFile: z.string().min(1),
    /** AWS shared-credentials file with the {@link LOCAL_PROFILE} profile (an absolute path). */
    credentialsFile: z.string().min(1),
    region: z.string().min(1),
    accountId: z.string().regex(/^\d{12}$/, 'must be 12 digits'),
    /**
     * MQTT over WebSocket (`wss://host:port/mqtt`), the upgrade presigned with SigV4 (service
     * `iotdevicegateway`) as AWS IoT Core's: operators' and consoles' connections, authorized by the
     * core's operator policy. Absent from older cores.
     */
    ws: z.url({ protocol: /^wss$/ }).optional(),
    /** The web console's URL with its per-start token (`{http}/console/?token=…`): open it on this machine. */
    console: z.url({ protocol: /^https?$/ }),
    /**
     * The quotas the core enforces: `aws` (IoT Core's defaults) or `off` (no rates or counts), and
     * the single values a limits file changed (null = not enforced). Absent from older cores.
     */
    limits: z
      .object({
        mode: z.enum(['aws', 'off']),
        changed: z.record(z.string(), z.number().nullable()),
      })
      .readonly()
      .optional(),
  })
  .readonly();

export type LocalEndpoint = z.infer<typeof localEndpointSchema>;

/** Parses the text of {@link LOCAL_ENDPOINT_FILE}: the endpoint, or every problem with its path. */
export function parseLocalEndpoint(text: string): Validation<LocalEndpoint> {
  const json = parseJson(text);
  if (!json.ok) return { ok: false, issues: [{ path: '$', message: `not valid JSON (${json.message})` }] };
  return validateWith(localEndpointSchema, json.value);
}

/** The text of {@link LOCAL_ENDPOINT_FILE} (and of the core's ready line): one JSON line. */
export function formatLocalEndpoint(endpoint: LocalEndpoint): string {
  return `${JSON.stringify(endpoint)}\n`;
}
