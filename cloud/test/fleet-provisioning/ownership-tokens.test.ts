import { describe, expect, it } from 'vitest';
import {
  createOwnershipTokens,
  OWNERSHIP_TOKEN_TTL_MS,
  OwnershipTokenError,
} from '../../src/fleet-provisioning/ownership-tokens.js';

/** The token table with a clock the test moves. */
function bed(options: { maxOutstanding?: number } = {}) {
  let now = 1_700_000_000_000;
  const tokens = createOwnershipTokens({ now: () => now, ...options });
  return {
    tokens,
    advance(ms: number) {
      now += ms;
    },
  };
}

const problemOf = (result: ReturnType<ReturnType<typeof createOwnershipTokens>['consumeOwnershipToken']>) =>
  result.ok ? undefined : result.error.problem;

describe('certificate ownership tokens', () => {
  it('are opaque, unguessable strings bound to their certificate and the claim certificate that asked', () => {
    const { tokens } = bed();
    const a = tokens.issue('cert-a', 'claim') as string;
    const b = tokens.issue('cert-b', undefined) as string;
    expect(a).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(a).not.toBe(b);
    expect(a).not.toContain('cert-a');
    expect(tokens.consumeOwnershipToken(b)).toEqual({
      ok: true,
      certificateId: 'cert-b',
      claimCertificateId: undefined,
    });
    expect(tokens.consumeOwnershipToken(a)).toEqual({ ok: true, certificateId: 'cert-a', claimCertificateId: 'claim' });
  });

  it('are good once: a second use is refused as reused', () => {
    const { tokens } = bed();
    const token = tokens.issue('cert', 'claim') as string;
    expect(tokens.consumeOwnershipToken(token).ok).toBe(true);
    const again = tokens.consumeOwnershipToken(token);
    expect(problemOf(again)).toBe('reused');
    expect(again.ok ? undefined : again.error).toBeInstanceOf(OwnershipTokenError);
    expect(again.ok ? '' : again.error.message).toBe('The certificate ownership token has already been used.');
  });

  it('expire after one hour (AWS: "expires after one hour"), to the millisecond', () => {
    const { tokens, advance } = bed();
    const early = tokens.issue('early', undefined) as string;
    const late = tokens.issue('late', undefined) as string;
    advance(OWNERSHIP_TOKEN_TTL_MS - 1);
    expect(tokens.consumeOwnershipToken(early).ok).toBe(true);
    advance(1);
    expect(problemOf(tokens.consumeOwnershipToken(late))).toBe('expired');
    // A used token past its hour says expired too, and is forgotten by the sweep.
    expect(problemOf(tokens.consumeOwnershipToken(early))).toBe('expired');
    expect(tokens.sweep()).toEqual(['late']);
    expect(problemOf(tokens.consumeOwnershipToken(early))).toBe('unknown');
  });

  it.each([
    ['a made-up token of the right shape', 'A'.repeat(43)],
    ['an empty string', ''],
    ['a token one character short', 'A'.repeat(42)],
    ['a huge string', 'x'.repeat(100_000)],
    ['__proto__', '__proto__'],
    ['a number', 42 as unknown as string],
    ['null', null as unknown as string],
  ])('refuse %s as unknown', (_label, token) => {
    const { tokens } = bed();
    tokens.issue('cert', undefined);
    expect(problemOf(tokens.consumeOwnershipToken(token))).toBe('unknown');
  });

  it('hand the sweep the certificates whose token expired unused, once, and not the used ones', () => {
    const { tokens, advance } = bed();
    const used = tokens.issue('used', undefined) as string;
    tokens.issue('unused', undefined);
    advance(10 * 60_000);
    tokens.issue('later', undefined);
    tokens.consumeOwnershipToken(used);
    expect(tokens.sweep()).toEqual([]);
    advance(OWNERSHIP_TOKEN_TTL_MS - 10 * 60_000);
    expect(tokens.sweep()).toEqual(['unused']);
    expect(tokens.sweep()).toEqual([]);
    advance(10 * 60_000);
    expect(tokens.sweep()).toEqual(['later']);
    expect(tokens.outstanding()).toBe(0);
  });

  it('expire certificates a restart left without a token an hour after they were made', () => {
    const { tokens, advance } = bed();
    tokens.adoptOrphan('orphan', 1_700_000_000_000 - 30 * 60_000);
    expect(tokens.sweep()).toEqual([]);
    advance(30 * 60_000);
    expect(tokens.sweep()).toEqual(['orphan']);
  });

  it('stop issuing past the outstanding bound until tokens are used or swept', () => {
    const { tokens, advance } = bed({ maxOutstanding: 2 });
    const first = tokens.issue('a', undefined) as string;
    tokens.issue('b', undefined);
    expect(tokens.issue('c', undefined)).toBeUndefined();
    tokens.consumeOwnershipToken(first);
    expect(tokens.issue('c', undefined)).toBeTypeOf('string');
    advance(OWNERSHIP_TOKEN_TTL_MS);
    // Expired but not yet swept: still counted, so no certificate is left without its deletion.
    expect(tokens.issue('d', undefined)).toBeUndefined();
    expect(tokens.sweep().sort()).toEqual(['b', 'c']);
    expect(tokens.issue('d', undefined)).toBeTypeOf('string');
  });

  it('never hand out the same token twice, even when the random source repeats', () => {
    let calls = 0;
    const tokens = createOwnershipTokens({
      now: () => 0,
      // The first two draws are equal; the table draws again rather than overwrite.
      random: (size) => Buffer.alloc(size, calls++ < 2 ? 7 : calls),
    });
    const a = tokens.issue('a', undefined);
    const b = tokens.issue('b', undefined);
    expect(a).not.toBe(b);
    expect(calls).toBe(3);
  });
});
