import { verifySigV4 } from '@pifleet/cloud';
import { describe, expect, it } from 'vitest';
import { signRequest } from '../../src/fleet/command-load.js';

/** The command load signs with the AWS SDK's signer; the local core's verifier is the server side. */

const credentials = { accessKeyId: 'AKIDFLEETTEST', secretAccessKey: 'c2VjcmV0LWtleQ' };
const now = new Date('2026-01-02T03:04:05Z');

async function verified(
  req: { method: string; url: URL; body: string },
  options: { secret?: string; credentials?: typeof credentials & { sessionToken?: string }; at?: number } = {},
) {
  const headers = await signRequest(
    { ...req, now },
    { region: 'us-east-1', credentials: options.credentials ?? credentials },
  );
  return verifySigV4(
    {
      method: req.method,
      rawPath: req.url.pathname,
      rawQuery: req.url.search.slice(1),
      rawHeaders: Object.entries(headers).flat(),
      body: Buffer.from(req.body),
    },
    {
      region: 'us-east-1',
      services: ['execute-api'],
      secretFor: (id) => (id === credentials.accessKeyId ? (options.secret ?? credentials.secretAccessKey) : undefined),
      now: () => options.at ?? now.getTime(),
    },
  );
}

describe('signRequest', () => {
  const desired = {
    method: 'PUT',
    url: new URL('http://127.0.0.1:8880/api/things/fleet-1/desired'),
    body: JSON.stringify({ desired: { outputs: { relay: true } } }),
  };

  it('produces a SigV4 signature the local core verifies, and only with the right secret', async () => {
    expect(await verified(desired)).toMatchObject({ ok: true, service: 'execute-api' });
    expect((await verified(desired, { secret: 'another-secret' })).ok).toBe(false);
  });

  it('signs the body: a changed body no longer verifies', async () => {
    const headers = await signRequest({ ...desired, now }, { region: 'us-east-1', credentials });
    const result = verifySigV4(
      {
        method: 'PUT',
        rawPath: desired.url.pathname,
        rawQuery: '',
        rawHeaders: Object.entries(headers).flat(),
        body: Buffer.from(desired.body.replace('true', 'fals')),
      },
      {
        region: 'us-east-1',
        services: ['execute-api'],
        secretFor: () => credentials.secretAccessKey,
        now: () => now.getTime(),
      },
    );
    expect(result.ok).toBe(false);
  });

  it('signs the query string of a read-back page and a path with encoded characters', async () => {
    // As the read-back builds it: the thing name percent-encoded once (`:` is `%3A`).
    const url = new URL(`http://127.0.0.1:8880/api/things/${encodeURIComponent('site:fleet-1')}/telemetry`);
    expect(url.pathname).toContain('%3A');
    url.searchParams.set('from', '1700000000000');
    url.searchParams.set('to', '1700000060000');
    url.searchParams.set('limit', '1000');
    url.searchParams.set('nextToken', 'eyJrIjoiYS9iIn0=');
    expect(await verified({ method: 'GET', url, body: '' })).toMatchObject({ ok: true });
  });

  it('signs the session token of temporary credentials (for API Gateway; the local core issues none)', async () => {
    const temporary = { ...credentials, sessionToken: 'FwoGZXIvYXdzEXAMPLE' };
    const headers = await signRequest({ ...desired, now }, { region: 'us-east-1', credentials: temporary });
    expect(headers['x-amz-security-token']).toBe(temporary.sessionToken);
    expect(headers.authorization).toMatch(/SignedHeaders=[^,]*x-amz-security-token/);
    expect(await verified(desired, { credentials: temporary })).toMatchObject({
      ok: false,
      errorType: 'UnrecognizedClientException',
    });
  });

  it('dates the signature: a request replayed 20 minutes later is refused', async () => {
    expect((await verified(desired, { at: now.getTime() + 20 * 60_000 })).ok).toBe(false);
  });
});
