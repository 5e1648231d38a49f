import { describe, expect, it } from 'vitest';
import { formatErrorLine, networkCode, toCliError } from '../../src/core/error-map.js';
import { InputError } from '../../src/errors.js';

const sdkError = (name: string, message = 'm', status?: number) =>
  Object.assign(new Error(message), { name, ...(status ? { $metadata: { httpStatusCode: status } } : {}) });

describe('toCliError', () => {
  it.each([
    [sdkError('CredentialsProviderError', 'Could not load credentials from any providers'), 77],
    [sdkError('UnrecognizedClientException'), 77],
    [sdkError('ResourceNotFoundException'), 65],
    [sdkError('InvalidRequestException'), 65],
    [sdkError('ThrottlingException'), 69],
    [sdkError('ServiceUnavailableException'), 69],
    [new Error('Region is missing'), 78],
    [Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }), 69],
    [new Error('weird'), 1],
  ])('%s → exit %i', (err, code) => {
    expect(toCliError(err, { target: 'aws' }).exitCode).toBe(code);
  });

  it('names the thing and points at things list for a missing thing', () => {
    const e = toCliError(sdkError('ResourceNotFoundException'), { target: 'aws', thingName: 'pi-9' });
    expect(formatErrorLine(e)).toBe('pifleet: thing pi-9 not found (hint: pifleet things list)');
  });

  it('tells how to start the local core when it refuses connections', () => {
    const refused = new Error('fetch failed', {
      cause: new AggregateError([Object.assign(new Error('x'), { code: 'ECONNREFUSED' })]),
    });
    const e = toCliError(refused, { target: 'local', dataDir: '/tmp/core' });
    expect(e.exitCode).toBe(69);
    expect(formatErrorLine(e)).toContain(
      'is the local core running? start it with: pifleet-local-core --data-dir /tmp/core',
    );
  });

  it('passes CliErrors through and keeps every line single', () => {
    const own = new InputError('bad\nthing', { hint: 'fix\nit' });
    expect(toCliError(own, { target: 'aws' })).toBe(own);
    expect(formatErrorLine(own)).toBe('pifleet: bad thing (hint: fix it)');
  });

  it('networkCode finds codes in causes and aggregates', () => {
    expect(networkCode({ cause: { errors: [{ code: 'ECONNREFUSED' }] } })).toBe('ECONNREFUSED');
    expect(networkCode({ code: 'NOT_A_NET_CODE1' })).toBeUndefined();
  });
});
