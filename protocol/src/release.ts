import { createHash, createPrivateKey, createPublicKey, type KeyObject, sign, verify } from 'node:crypto';
import { z } from 'zod';
import { describeIssues, validateWith } from './issues.js';
import { isJsonObject, parseJson } from './json.js';

/**
 * The agent's release format: what `pifleet release build` writes and what the agent's updater
 * checks before it installs anything.
 *
 * A release is three things:
 * - the tarball `pifleet-agent-<version>.tar.gz`: the deployable agent directory as `pnpm deploy`
 *   writes it (`bin/pifleet-agent.js`, `dist/`, `package.json`, `node_modules/`), gzip, with every
 *   entry's path relative to that directory (an optional leading `./` is allowed; nothing absolute,
 *   no `..`, no device or FIFO entries, no link pointing outside it);
 * - the manifest: JSON bytes ({@link ReleaseManifest}) naming the tarball's SHA-256 and size;
 * - a detached signature over the manifest's exact bytes (never over a re-serialisation, so no two
 *   JSON encoders have to agree), Ed25519 or ECDSA P-256 with SHA-256 (DER), made with the
 *   operator's release key; devices trust the public keys (PEM, SPKI) in their config.
 *
 * The job document carries the manifest and the signature base64-encoded beside the tarball's
 * (presigned) URL, so a device checks the signature before it downloads anything, and then the
 * downloaded bytes against the signed SHA-256 and size. A release that fails a check is refused
 * with a {@link ReleaseRejection} saying which.
 */

export const RELEASE_NAME = 'pifleet-agent';
/**
 * 2: the manifest names its {@link ReleaseTarget}. Format 1 (no target) was never shipped outside
 * this repository's development, so it is refused rather than kept parseable: a manifest that does
 * not say what it runs on cannot be checked against the device.
 */
export const RELEASE_FORMAT = 2;

/** Manifests are small (~400 bytes); anything larger is refused before it is parsed. */
export const MAX_MANIFEST_BYTES = 4_096;
/** The largest tarball a manifest may declare (an arm64 deploy of the agent is far smaller). */
export const MAX_RELEASE_BYTES = 512 * 1024 * 1024;
/** Signatures: Ed25519 is 64 bytes, a DER ECDSA P-256 signature at most 72. */
export const MAX_SIGNATURE_BYTES = 128;

export const RELEASE_ALGORITHMS = ['ed25519', 'ecdsa-p256-sha256'] as const;
export type ReleaseAlgorithm = (typeof RELEASE_ALGORITHMS)[number];

/** File names of a release's three parts, as the CLI writes and uploads them. */
export function releaseFileNames(version: string): { tarball: string; manifest: string; signature: string } {
  const tarball = `${RELEASE_NAME}-${version}.tar.gz`;
  return { tarball, manifest: `${tarball}.manifest.json`, signature: `${tarball}.manifest.sig` };
}

/**
 * Semantic Versioning 2.0.0: `MAJOR.MINOR.PATCH`, numbers without leading zeros, an optional
 * `-prerelease` of dot-separated identifiers (numeric ones without leading zeros) and `+build`.
 * Numbers are capped at 9 digits and the whole at 64 characters: a version names a directory on
 * the device (`releases/<version>/`).
 */
export function isReleaseVersion(version: string): boolean {
  if (version.length > 64) return false;
  const m = /^(\d{1,9})\.(\d{1,9})\.(\d{1,9})(?:-([0-9A-Za-z.-]+))?(?:\+([0-9A-Za-z.-]+))?$/.exec(version);
  if (!m) return false;
  const numeric = (s: string) => s === '0' || !s.startsWith('0');
  if (![m[1], m[2], m[3]].every((n) => numeric(n as string))) return false;
  const pre = m[4];
  if (pre !== undefined) {
    for (const id of pre.split('.')) {
      if (id === '' || (/^\d+$/.test(id) && !numeric(id))) return false;
    }
  }
  const build = m[5];
  if (build?.split('.').some((id) => id === '')) return false;
  return true;
}

/** `process.platform` values (Node's documented list). */
export const RELEASE_PLATFORMS = [
  'aix',
  'android',
  'darwin',
  'freebsd',
  'haiku',
  'linux',
  'openbsd',
  'sunos',
  'win32',
  'cygwin',
  'netbsd',
] as const;
/** `process.arch` values (Node's documented list). */
export const RELEASE_ARCHS = [
  'arm',
  'arm64',
  'ia32',
  'loong64',
  'mips',
  'mipsel',
  'ppc',
  'ppc64',
  'riscv64',
  's390',
  's390x',
  'x64',
] as const;

/**
 * What a release runs on: the platform, CPU architecture and Node ABI (`process.versions.modules`)
 * its native modules (better-sqlite3, epoll, i2c-bus) were built for. A module built for another
 * architecture or ABI fails to load, so an agent started from such a release would exit at every
 * start until the boot guard rolled it back; the device refuses it before downloading instead.
 */
export const releaseTargetSchema = z.strictObject({
  platform: z.enum(RELEASE_PLATFORMS, { error: `target.platform must be one of ${RELEASE_PLATFORMS.join(', ')}` }),
  arch: z.enum(RELEASE_ARCHS, { error: `target.arch must be one of ${RELEASE_ARCHS.join(', ')}` }),
  nodeAbi: z
    .number({ error: 'target.nodeAbi must be a number' })
    .int('target.nodeAbi must be an integer')
    .min(1, 'target.nodeAbi must be at least 1')
    .max(9999, 'target.nodeAbi must be at most 9999'),
});
export type ReleaseTarget = z.infer<typeof releaseTargetSchema>;

/** The target of the Node.js running this code (the device's own, or the machine that ran `pnpm deploy`). */
export function currentReleaseTarget(): ReleaseTarget {
  return parseReleaseTarget(`${process.platform}-${process.arch}`, Number(process.versions.modules));
}

/**
 * A target from `<platform>-<arch>` (`linux-arm64`, as Node's own release file names spell it) and
 * an ABI number. Throws a `TypeError` saying what is wrong.
 */
export function parseReleaseTarget(platformArch: string, nodeAbi: number): ReleaseTarget {
  const dash = platformArch.indexOf('-');
  const candidate = { platform: platformArch.slice(0, dash), arch: platformArch.slice(dash + 1), nodeAbi };
  if (dash < 0) throw new TypeError(`target must be <platform>-<arch> such as linux-arm64, got ${platformArch}`);
  const checked = validateWith(releaseTargetSchema, candidate);
  if (!checked.ok) throw new TypeError(describeIssues(checked.issues));
  return checked.value;
}

/** `linux-arm64, Node ABI 137` */
export function describeReleaseTarget(t: ReleaseTarget): string {
  return `${t.platform}-${t.arch}, Node ABI ${t.nodeAbi}`;
}

/**
 * Why a release built for `release` cannot run on `device`, or undefined when it can: platform,
 * architecture and Node ABI must all be equal (the agent's native modules are built against one ABI).
 */
export function releaseTargetMismatch(release: ReleaseTarget, device: ReleaseTarget): ReleaseRejection | undefined {
  if (release.platform === device.platform && release.arch === device.arch && release.nodeAbi === device.nodeAbi)
    return undefined;
  return {
    code: 'target-mismatch',
    message: `release is built for ${describeReleaseTarget(release)}; this device is ${describeReleaseTarget(device)}`,
  };
}

const hex = (what: string, length: number) =>
  z
    .string({ error: `${what} must be a string` })
    .regex(new RegExp(`^[0-9a-f]{${length}}$`), `${what} must be ${length} lowercase hex characters`);

export const releaseManifestSchema = z.strictObject({
  format: z.literal(RELEASE_FORMAT, { error: `format must be ${RELEASE_FORMAT}` }),
  name: z.literal(RELEASE_NAME, { error: `name must be ${RELEASE_NAME}` }),
  version: z
    .string({ error: 'version must be a string' })
    .refine(isReleaseVersion, 'version must be a semantic version such as 1.2.3 (at most 64 characters)'),
  /** What the release's native modules were built for. */
  target: releaseTargetSchema,
  /** SHA-256 of the tarball's bytes. */
  sha256: hex('sha256', 64),
  /** The tarball's size in bytes: the device downloads no more than this. */
  size: z
    .number({ error: 'size must be a number' })
    .int('size must be an integer')
    .min(1, 'size must be at least 1')
    .max(MAX_RELEASE_BYTES, `size must be at most ${MAX_RELEASE_BYTES}`),
  createdAt: z.iso.datetime({ offset: true, error: 'createdAt must be an ISO 8601 date-time' }),
  /** {@link releaseKeyId} of the key that signed the manifest. */
  keyId: hex('keyId', 16),
  algorithm: z.enum(RELEASE_ALGORITHMS, { error: `algorithm must be one of ${RELEASE_ALGORITHMS.join(', ')}` }),
});
export type ReleaseManifest = z.infer<typeof releaseManifestSchema>;

/** A signing key's id: the first 16 hex characters of SHA-256 over its public key's DER SPKI. */
export function releaseKeyId(publicKey: string | KeyObject): string {
  const key = typeof publicKey === 'string' ? createPublicKey(publicKey) : publicKey;
  const der = key.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('hex').slice(0, 16);
}

/** The algorithm of a key, or undefined for one releases may not use (RSA, other curves). */
export function releaseKeyAlgorithm(key: KeyObject): ReleaseAlgorithm | undefined {
  if (key.asymmetricKeyType === 'ed25519') return 'ed25519';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1')
    return 'ecdsa-p256-sha256';
  return undefined;
}

export interface ReleaseManifestInput {
  readonly version: string;
  readonly sha256: string;
  readonly size: number;
  /** What the deploy directory was built for. Default: {@link currentReleaseTarget}. */
  readonly target?: ReleaseTarget;
  /** Default: now. */
  readonly createdAt?: Date;
  /** The signing key's public half (PEM), or its private key (PEM): gives keyId and algorithm. */
  readonly key: string;
}

/**
 * A manifest for a tarball, validated, with the signing key's id and algorithm. Throws a
 * `TypeError` listing every problem (the CLI's own input, not a device's).
 */
export function makeReleaseManifest(input: ReleaseManifestInput): ReleaseManifest {
  const publicKey = publicKeyOf(input.key);
  const algorithm = releaseKeyAlgorithm(publicKey);
  if (!algorithm) throw new TypeError('release keys must be Ed25519 or ECDSA P-256');
  const manifest = {
    format: RELEASE_FORMAT,
    name: RELEASE_NAME,
    version: input.version,
    target: input.target ?? currentReleaseTarget(),
    sha256: input.sha256,
    size: input.size,
    createdAt: (input.createdAt ?? new Date()).toISOString(),
    keyId: releaseKeyId(publicKey),
    algorithm,
  };
  const checked = validateWith(releaseManifestSchema, manifest);
  if (!checked.ok) throw new TypeError(`invalid release manifest: ${describeIssues(checked.issues)}`);
  return checked.value;
}

/** The manifest's bytes: UTF-8 JSON, keys in schema order, a final newline. These bytes are signed. */
export function serializeReleaseManifest(manifest: ReleaseManifest): Uint8Array {
  const ordered: ReleaseManifest = {
    format: manifest.format,
    name: manifest.name,
    version: manifest.version,
    target: { platform: manifest.target.platform, arch: manifest.target.arch, nodeAbi: manifest.target.nodeAbi },
    sha256: manifest.sha256,
    size: manifest.size,
    createdAt: manifest.createdAt,
    keyId: manifest.keyId,
    algorithm: manifest.algorithm,
  };
  return new TextEncoder().encode(`${JSON.stringify(ordered, null, 2)}\n`);
}

function publicKeyOf(pem: string): KeyObject {
  return pem.includes('PRIVATE KEY') ? createPublicKey(createPrivateKey(pem)) : createPublicKey(pem);
}

/** Signs manifest bytes with a private key (PEM, PKCS#8 or SEC1): Ed25519, or ECDSA P-256 SHA-256 (DER). */
export function signReleaseManifest(manifestBytes: Uint8Array, privateKeyPem: string): Uint8Array {
  const key = createPrivateKey(privateKeyPem);
  const algorithm = releaseKeyAlgorithm(createPublicKey(key));
  if (algorithm === 'ed25519') return sign(null, manifestBytes, key);
  if (algorithm === 'ecdsa-p256-sha256') return sign('sha256', manifestBytes, { key, dsaEncoding: 'der' });
  throw new TypeError('release keys must be Ed25519 or ECDSA P-256');
}

/** Why a release is refused. `code` is stable (logs and statusDetails); `message` says it for a person. */
export interface ReleaseRejection {
  readonly code:
    | 'unsigned'
    | 'manifest-too-large'
    | 'signature-too-large'
    | 'no-trusted-keys'
    | 'untrusted-key'
    | 'bad-signature'
    | 'invalid-manifest'
    | 'version-mismatch'
    | 'target-mismatch'
    | 'size-mismatch'
    | 'sha256-mismatch';
  readonly message: string;
}

export type ReleaseManifestParse =
  | { readonly ok: true; readonly manifest: ReleaseManifest }
  | { readonly ok: false; readonly rejection: ReleaseRejection };

const invalid = (message: string): ReleaseManifestParse => ({
  ok: false,
  rejection: { code: 'invalid-manifest', message },
});

/**
 * Parses manifest bytes from outside: size first, then UTF-8 and JSON with the depth bounded
 * ({@link parseJson}), then the strict schema (an unknown key, `__proto__` included, is refused).
 */
export function parseReleaseManifest(bytes: Uint8Array): ReleaseManifestParse {
  if (bytes.byteLength > MAX_MANIFEST_BYTES) {
    return {
      ok: false,
      rejection: { code: 'manifest-too-large', message: `manifest is larger than ${MAX_MANIFEST_BYTES} bytes` },
    };
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return invalid('manifest is not UTF-8');
  }
  const parsed = parseJson(text, { maxDepth: 2 });
  if (!parsed.ok) return invalid(`manifest is not JSON: ${parsed.message}`);
  if (!isJsonObject(parsed.value)) return invalid('manifest must be a JSON object');
  if (Object.hasOwn(parsed.value, '__proto__')) return invalid('manifest: __proto__ is not a manifest field');
  const checked = validateWith(releaseManifestSchema, parsed.value);
  if (!checked.ok) return invalid(`manifest: ${describeIssues(checked.issues)}`);
  return { ok: true, manifest: checked.value };
}

export type ReleaseVerification =
  | { readonly ok: true; readonly manifest: ReleaseManifest; readonly keyId: string }
  | { readonly ok: false; readonly rejection: ReleaseRejection };

const rejected = (code: ReleaseRejection['code'], message: string): ReleaseVerification => ({
  ok: false,
  rejection: { code, message },
});

/**
 * Checks a manifest's signature against the trusted public keys (PEM), then parses it. The
 * signature is checked over the raw bytes before anything reads them as JSON; only to say why a
 * signature failed is the refused manifest's `keyId` looked at (a key the device does not trust,
 * or a bad signature by one it does). `expectedVersion` is the version the job asked for.
 */
export function verifyReleaseManifest(
  manifestBytes: Uint8Array,
  signature: Uint8Array,
  trustedPublicKeys: readonly string[],
  expectedVersion?: string,
): ReleaseVerification {
  if (signature.byteLength === 0) return rejected('unsigned', 'release is unsigned (no signature)');
  if (signature.byteLength > MAX_SIGNATURE_BYTES) {
    return rejected('signature-too-large', `signature is larger than ${MAX_SIGNATURE_BYTES} bytes`);
  }
  if (manifestBytes.byteLength > MAX_MANIFEST_BYTES) {
    return rejected('manifest-too-large', `manifest is larger than ${MAX_MANIFEST_BYTES} bytes`);
  }
  // A key that does not parse is the device's configuration error, not the release's: it throws.
  const keys = trustedPublicKeys.map((pem) => createPublicKey(pem));
  if (keys.length === 0) return rejected('no-trusted-keys', 'no release public keys are configured on this device');
  let signedBy: string | undefined;
  for (const key of keys) {
    if (verifyWith(key, manifestBytes, signature)) {
      signedBy = releaseKeyId(key);
      break;
    }
  }
  if (signedBy === undefined) {
    const trusted = keys.map((k) => releaseKeyId(k));
    const claimed = parseReleaseManifest(manifestBytes);
    if (claimed.ok && !trusted.includes(claimed.manifest.keyId)) {
      return rejected(
        'untrusted-key',
        `release is signed by key ${claimed.manifest.keyId}, which this device does not trust (trusted: ${trusted.join(', ')})`,
      );
    }
    return rejected('bad-signature', 'release signature does not verify with any trusted key');
  }
  const parsed = parseReleaseManifest(manifestBytes);
  if (!parsed.ok) return parsed;
  if (parsed.manifest.keyId !== signedBy) {
    return rejected('invalid-manifest', `manifest names key ${parsed.manifest.keyId} but was signed by ${signedBy}`);
  }
  if (expectedVersion !== undefined && parsed.manifest.version !== expectedVersion) {
    return rejected(
      'version-mismatch',
      `job asks for version ${expectedVersion} but the signed manifest is for ${parsed.manifest.version}`,
    );
  }
  return { ok: true, manifest: parsed.manifest, keyId: signedBy };
}

/** Checks a downloaded tarball's measured SHA-256 (hex) and size against its signed manifest. */
export function checkReleaseArtifact(
  manifest: ReleaseManifest,
  measured: { readonly sha256: string; readonly size: number },
): ReleaseRejection | undefined {
  if (measured.size !== manifest.size) {
    return { code: 'size-mismatch', message: `tarball is ${measured.size} bytes, the manifest says ${manifest.size}` };
  }
  if (measured.sha256 !== manifest.sha256) {
    return {
      code: 'sha256-mismatch',
      message: `tarball SHA-256 ${measured.sha256} is not the manifest's ${manifest.sha256}`,
    };
  }
  return undefined;
}

/**
 * What is wrong with a public key a device is configured to trust (for config validation), or
 * undefined when it is a PEM SPKI Ed25519 or ECDSA P-256 key.
 */
export function releasePublicKeyProblem(pem: string): string | undefined {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (err) {
    return `not a PEM public key: ${err instanceof Error ? err.message : String(err)}`;
  }
  return releaseKeyAlgorithm(key) ? undefined : 'release keys must be Ed25519 or ECDSA P-256';
}

function verifyWith(key: KeyObject, data: Uint8Array, signature: Uint8Array): boolean {
  try {
    const algorithm = releaseKeyAlgorithm(key);
    if (algorithm === 'ed25519') return verify(null, data, key, signature);
    if (algorithm === 'ecdsa-p256-sha256') return verify('sha256', data, { key, dsaEncoding: 'der' }, signature);
    return false;
  } catch {
    // A malformed signature (not DER, wrong length) is a signature that does not verify.
    return false;
  }
}
