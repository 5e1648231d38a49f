import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';

/**
 * A client of the stack's command/query API (API Gateway in AWS, the local core's `/api` routes),
 * signed with SigV4 for `execute-api` by the AWS SDK's own signer (`@smithy/signature-v4`). The
 * fleet runner and `pifleet console` call the API through it.
 */

export interface ApiCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
}

/** Where the API is and how to sign for it. */
export interface CommandApiTarget {
  /** API base including the stage, e.g. `http://127.0.0.1:8880/api` or an API Gateway URL. */
  readonly baseUrl: string;
  readonly region: string;
  /** Fixed credentials, or a provider (the AWS SDK's credential chain refreshes them). */
  readonly credentials: ApiCredentials | (() => Promise<ApiCredentials>);
}

/**
 * Signs a request for API Gateway (`execute-api`); returns the headers to send, `authorization`
 * among them.
 */
export async function signApiRequest(
  req: { method: string; url: URL; body: string; now: Date },
  target: Pick<CommandApiTarget, 'region' | 'credentials'>,
): Promise<Record<string, string>> {
  const signer = new SignatureV4({
    service: 'execute-api',
    region: target.region,
    credentials: target.credentials,
    // What the AWS SDK itself hands its signer on Node: SHA-256 / HMAC-SHA-256 over node:crypto.
    sha256: Hash.bind(null, 'sha256'),
  });
  const query: Record<string, string | string[]> = {};
  for (const [key, value] of req.url.searchParams) {
    const before = query[key];
    query[key] = before === undefined ? value : [...(Array.isArray(before) ? before : [before]), value];
  }
  const signed = await signer.sign(
    {
      method: req.method,
      protocol: req.url.protocol,
      hostname: req.url.hostname,
      ...(req.url.port === '' ? {} : { port: Number(req.url.port) }),
      // Already percent-encoded once by URL; the signer encodes it again, as SigV4 wants for every
      // service but S3 (and as API Gateway and the local core verify it).
      path: req.url.pathname,
      query,
      headers: { host: req.url.host, 'content-type': 'application/json' },
      body: req.body,
    },
    { signingDate: req.now },
  );
  return signed.headers;
}

/** An answer of the API: its status and its body as text. */
export interface ApiAnswer {
  readonly status: number;
  readonly text: string;
}

export interface CommandApiClient {
  /** One signed request; `path` is under the base URL (e.g. `/things/pi-01/latest`). */
  request(
    method: 'GET' | 'PUT',
    path: string,
    options?: { query?: Record<string, string>; body?: string },
  ): Promise<ApiAnswer>;
}

/** Gives up on an answer that has not come in this long. */
const REQUEST_TIMEOUT_MS = 15_000;

export function createCommandApiClient(target: CommandApiTarget): CommandApiClient {
  const base = target.baseUrl.replace(/\/+$/, '');
  return {
    async request(method, path, options = {}) {
      const url = new URL(`${base}${path}`);
      for (const [k, v] of Object.entries(options.query ?? {})) url.searchParams.set(k, v);
      const body = options.body ?? '';
      const headers = await signApiRequest({ method, url, body, now: new Date() }, target);
      const res = await fetch(url, {
        method,
        headers,
        ...(method === 'GET' ? {} : { body }),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      return { status: res.status, text: await res.text() };
    },
  };
}
