import type { IoTClient } from '@aws-sdk/client-iot';
import type { IotPolicyDocument } from '@pifleet/protocol';
import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';
import type { LocalCoreInfo } from '../../src/app/local-core.js';
import type { LocalCredentials } from '../../src/http/credentials.js';
import { type ProvisionedThing, provisionThing as provisionWith } from '../../src/testing/provision.js';
import { http } from '../http/plain-request.js';

export interface ApiResult {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Record<string, unknown>;
}

/**
 * A client for the command/query API: real HTTP, requests signed with AWS's own SigV4 signer
 * (@smithy/signature-v4, what every AWS SDK uses) for the `execute-api` service.
 */
export function apiClient(info: LocalCoreInfo, credentials: LocalCredentials, service = 'execute-api') {
  const url = new URL(info.http);
  const signer = new SignatureV4({ service, region: info.region, credentials, sha256: Hash.bind(null, 'sha256') });

  return async function call(
    method: string,
    path: string,
    options: { body?: unknown; rawBody?: string; query?: Record<string, string>; sign?: boolean } = {},
  ): Promise<ApiResult> {
    // rawBody: text sent as is (for bodies JSON.stringify cannot produce, such as 10,000 levels deep).
    const body = options.rawBody ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
    const host = `${url.hostname}:${url.port}`;
    const unsigned = {
      method,
      protocol: 'http:',
      hostname: url.hostname,
      port: Number(url.port),
      path,
      query: options.query ?? {},
      headers: {
        host,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      } as Record<string, string>,
      ...(body === undefined ? {} : { body }),
    };
    const signed = options.sign === false ? unsigned : await signer.sign(unsigned);
    const qs = new URLSearchParams(options.query ?? {}).toString();
    const reply = await http(info.http, method, qs === '' ? path : `${path}?${qs}`, signed.headers, body);
    return { status: reply.status, headers: reply.headers, body: reply.text === '' ? {} : reply.json() };
  };
}

export type { ProvisionedThing } from '../../src/testing/provision.js';

/** Creates a thing, an active certificate and a policy (or attaches one made before) through the real IoT control-plane client. */
export function provisionThing(
  iot: IoTClient,
  thingName: string,
  policy: { name: string; document: IotPolicyDocument; create: boolean },
): Promise<ProvisionedThing> {
  return provisionWith({ iot }, thingName, {
    policyName: policy.name,
    policy: policy.document,
    createPolicy: policy.create,
  });
}
