import { describe, expect, it } from 'vitest';
import { ProvisioningRejectedError, rejectionHint } from '../../src/provisioning/errors.js';

/** The hint under a final rejection's one line: what the operator should look at. */

const denied = (parametersSent?: Record<string, string>) => {
  const err = new ProvisioningRejectedError('RegisterThing', {
    statusCode: 403,
    errorCode: 'AccessDenied',
    errorMessage: 'The pre-provisioning hook did not allow provisioning.',
  });
  err.parametersSent = parametersSent;
  return err;
};

describe('rejectionHint', () => {
  it('names the missing SerialNumber when none was sent (a board without a Serial line)', () => {
    expect(rejectionHint(denied({ Model: 'x' }))).toMatch(
      /^no SerialNumber was sent .*provisioning\.parameters\.SerialNumber, or --param SerialNumber=/,
    );
  });

  it('shows the parameters sent otherwise, quoted', () => {
    expect(rejectionHint(denied({ SerialNumber: 'abc', Model: 'Pi "4"' }))).toBe(
      'check the template and its pre-provisioning hook; the parameters sent: SerialNumber="abc" Model="Pi \\"4\\"" (provisioning.parameters and --param override them)',
    );
  });

  it('for a refused certificate request, points at the claim', () => {
    const err = new ProvisioningRejectedError('CreateCertificateFromCsr', {
      statusCode: 400,
      errorCode: 'InvalidCSR',
      errorMessage: 'x',
    });
    expect(rejectionHint(err)).toMatch(/claim certificate, its policy and the CSR/);
    expect(err.retryable).toBe(false);
  });

  it.each([
    [429, true],
    [500, true],
    [503, true],
    [400, false],
    [403, false],
    [404, false],
  ])('statusCode %i is retryable: %s', (statusCode, retryable) => {
    const err = new ProvisioningRejectedError('RegisterThing', { statusCode, errorCode: 'X', errorMessage: '' });
    expect(err.retryable).toBe(retryable);
  });
});
