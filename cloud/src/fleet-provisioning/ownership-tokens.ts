import { createHash, randomBytes } from 'node:crypto';
import { CloudError } from '../errors.js';

/**
 * Certificate ownership tokens: what CreateKeysAndCertificate and CreateCertificateFromCsr over
 * MQTT hand a device with its new certificate, and what RegisterThing takes back to prove the
 * device holds it ("Device provisioning MQTT API": the token "expires after one hour", and a
 * certificate not activated and attached by then is deleted). Pure bookkeeping: time comes from
 * the caller, no timers, no I/O.
 *
 * A token is 32 random bytes (base64url), not a signed blob: opaque to the device, unguessable, and
 * bound to its certificate by this table alone. Only its SHA-256 is kept, so a heap dump or a log
 * of the table gives nobody a usable token.
 *
 * In memory, not SQLite: a token lives one hour and a device whose token is lost (the core
 * restarted) does what AWS tells it to do when a token expires, asks for a new certificate. The
 * certificates such a restart leaves behind are still PENDING_ACTIVATION in the registry and are
 * swept by {@link OwnershipTokens.adoptOrphan} from the wiring's start.
 */

/** AWS: the token "expires after one hour". */
export const OWNERSHIP_TOKEN_TTL_MS = 60 * 60 * 1000;

/**
 * Tokens outstanding at once (issued, not yet used or expired). AWS documents no such bound; the
 * local core keeps one claim certificate from filling memory (and the registry) with pending
 * certificates: past it a request is throttled until tokens are used or expire.
 */
export const DEFAULT_MAX_OUTSTANDING_TOKENS = 10_000;

/** Why a token was refused: never issued (or mangled), used already, or past its hour. */
export type OwnershipTokenProblem = 'unknown' | 'reused' | 'expired';

export class OwnershipTokenError extends CloudError {
  override name = 'OwnershipTokenError';
  constructor(readonly problem: OwnershipTokenProblem) {
    super(
      `OWNERSHIP_TOKEN_${problem.toUpperCase()}`,
      problem === 'unknown'
        ? 'The certificate ownership token is not valid.'
        : problem === 'reused'
          ? 'The certificate ownership token has already been used.'
          : 'The certificate ownership token has expired.',
      { data: { problem } },
    );
  }
}

/** What a consumed token proves. */
export interface OwnedCertificate {
  /** The certificate the token was issued with. */
  readonly certificateId: string;
  /** The certificate of the connection that asked for it (the claim certificate). */
  readonly claimCertificateId: string | undefined;
}

export type ConsumeResult =
  | ({ readonly ok: true } & OwnedCertificate)
  | { readonly ok: false; readonly error: OwnershipTokenError };

/**
 * The interface RegisterThing (`$aws/provisioning-templates/{name}/provision/json`) is built on:
 * a token is good once, within its hour, for the certificate it was issued with.
 */
export interface OwnershipTokenConsumer {
  consumeOwnershipToken(token: string): ConsumeResult;
}

export interface OwnershipTokens extends OwnershipTokenConsumer {
  /**
   * A new token for a certificate just created; undefined when the maximum are outstanding (call
   * sweep() first: expired tokens count until it returns their certificates).
   */
  issue(certificateId: string, claimCertificateId: string | undefined): string | undefined;
  /**
   * A pending certificate with no token (left by a restart): expires with the others, at `createdAt`
   * plus the hour, so the sweep deletes it.
   */
  adoptOrphan(certificateId: string, createdAt: number): void;
  /**
   * Forgets what is past its hour and returns the certificates whose token expired unused: the
   * caller deletes those still pending (AWS deletes them). Consumed tokens are kept until their
   * hour ends only to tell `reused` from `unknown`.
   */
  sweep(): string[];
  /** Tokens issued and not yet used or expired. */
  outstanding(): number;
}

interface Entry {
  readonly certificateId: string;
  readonly claimCertificateId: string | undefined;
  readonly expiresAt: number;
  used: boolean;
}

const digest = (token: string) => createHash('sha256').update(token).digest('base64url');

/** base64url of 32 bytes: 43 characters. Anything else is not one of ours and is not hashed. */
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/;

export function createOwnershipTokens(options: {
  /** Milliseconds since the epoch. */
  readonly now: () => number;
  readonly ttlMs?: number;
  readonly maxOutstanding?: number;
  /** Token bytes; default crypto randomBytes (tests inject collisions). */
  readonly random?: (size: number) => Buffer;
}): OwnershipTokens {
  const ttl = options.ttlMs ?? OWNERSHIP_TOKEN_TTL_MS;
  const max = options.maxOutstanding ?? DEFAULT_MAX_OUTSTANDING_TOKENS;
  const random = options.random ?? randomBytes;
  /** By token digest; insertion order is issue order, so expiry order too (one ttl for all). */
  const entries = new Map<string, Entry>();
  /** Certificates without a token (from before a restart), with their expiry. */
  const orphans = new Map<string, number>();
  let live = 0;

  function expire(now: number): string[] {
    const expired: string[] = [];
    for (const [key, entry] of entries) {
      if (entry.expiresAt > now) break;
      entries.delete(key);
      if (!entry.used) {
        live--;
        expired.push(entry.certificateId);
      }
    }
    for (const [certificateId, expiresAt] of orphans) {
      if (expiresAt > now) continue;
      orphans.delete(certificateId);
      expired.push(certificateId);
    }
    return expired;
  }

  return {
    issue(certificateId, claimCertificateId) {
      // Expired tokens still count until sweep() hands their certificates to the caller to delete.
      if (live >= max) return undefined;
      let token: string;
      let key: string;
      do {
        token = random(32).toString('base64url');
        key = digest(token);
      } while (entries.has(key));
      entries.set(key, { certificateId, claimCertificateId, expiresAt: options.now() + ttl, used: false });
      live++;
      return token;
    },

    adoptOrphan(certificateId, createdAt) {
      orphans.set(certificateId, createdAt + ttl);
    },

    consumeOwnershipToken(token) {
      const now = options.now();
      const key = typeof token === 'string' && TOKEN_PATTERN.test(token) ? digest(token) : undefined;
      const entry = key === undefined ? undefined : entries.get(key);
      if (entry === undefined) return { ok: false, error: new OwnershipTokenError('unknown') };
      // Expired before reused: a token past its hour says so whether or not it was used.
      if (entry.expiresAt <= now) return { ok: false, error: new OwnershipTokenError('expired') };
      if (entry.used) return { ok: false, error: new OwnershipTokenError('reused') };
      entry.used = true;
      live--;
      return { ok: true, certificateId: entry.certificateId, claimCertificateId: entry.claimCertificateId };
    },

    sweep() {
      return expire(options.now());
    },

    outstanding() {
      return live;
    },
  };
}
