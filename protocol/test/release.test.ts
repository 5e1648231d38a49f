import { createHash, generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  checkReleaseArtifact,
  isReleaseVersion,
  MAX_MANIFEST_BYTES,
  makeReleaseManifest,
  parseReleaseManifest,
  parseReleaseTarget,
  type ReleaseManifest,
  releaseFileNames,
  releaseKeyId,
  releasePublicKeyProblem,
  releaseTargetMismatch,
  serializeReleaseManifest,
  signReleaseManifest,
  verifyReleaseManifest,
} from '../src/release.js';

function keyPair(type: 'ed25519' | 'p256' | 'p384' | 'rsa'): { publicKey: string; privateKey: string } {
  const publicKeyEncoding = { type: 'spki', format: 'pem' } as const;
  const privateKeyEncoding = { type: 'pkcs8', format: 'pem' } as const;
  if (type === 'ed25519') return generateKeyPairSync('ed25519', { publicKeyEncoding, privateKeyEncoding });
  if (type === 'rsa') return generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding, privateKeyEncoding });
  const namedCurve = type === 'p256' ? 'prime256v1' : 'secp384r1';
  return generateKeyPairSync('ec', { namedCurve, publicKeyEncoding, privateKeyEncoding });
}

const ed = keyPair('ed25519');
const ec = keyPair('p256');
const other = keyPair('ed25519');
const tarball = new TextEncoder().encode('not really a tarball, but bytes to hash');
const sha256 = createHash('sha256').update(tarball).digest('hex');

function signed(key: { privateKey: string }, version = '1.2.3') {
  const manifest = makeReleaseManifest({
    version,
    sha256,
    size: tarball.byteLength,
    createdAt: new Date('2026-12-03T10:00:00Z'),
    key: key.privateKey,
  });
  const bytes = serializeReleaseManifest(manifest);
  return { manifest, bytes, signature: signReleaseManifest(bytes, key.privateKey) };
}

const utf8 = (s: string) => new TextEncoder().encode(s);
const manifestJson = (over: Record<string, unknown>) => {
  const base = JSON.parse(new TextDecoder().decode(signed(ed).bytes)) as Record<string, unknown>;
  return utf8(JSON.stringify({ ...base, ...over }));
};

describe('release manifest and signature', () => {
  it.each([
    ['ed25519', ed],
    ['ecdsa-p256-sha256', ec],
  ] as const)('%s: a manifest signed by a trusted key verifies, with its key id', (algorithm, key) => {
    const { manifest, bytes, signature } = signed(key);
    expect(manifest.algorithm).toBe(algorithm);
    expect(manifest.keyId).toMatch(/^[0-9a-f]{16}$/);
    expect(manifest.keyId).toBe(releaseKeyId(key.publicKey));
    const result = verifyReleaseManifest(bytes, signature, [other.publicKey, key.publicKey], '1.2.3');
    expect(result).toEqual({ ok: true, manifest, keyId: manifest.keyId });
  });

  it('the key id is SHA-256 over the DER SPKI, first 16 hex characters', () => {
    const der = Buffer.from(ed.publicKey.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64');
    expect(releaseKeyId(ed.publicKey)).toBe(createHash('sha256').update(der).digest('hex').slice(0, 16));
  });

  it('signs the exact bytes: the serialisation is stable and a changed byte fails', () => {
    const { manifest, bytes, signature } = signed(ed);
    expect(serializeReleaseManifest(manifest)).toEqual(bytes);
    const reserialized = utf8(JSON.stringify(manifest));
    expect(reserialized).not.toEqual(bytes);
    expect(verifyReleaseManifest(reserialized, signature, [ed.publicKey]).ok).toBe(false);
    const flipped = Uint8Array.from(bytes);
    flipped[bytes.indexOf(utf8('1.2.3')[0] as number)] = utf8('2')[0] as number;
    expect(verifyReleaseManifest(flipped, signature, [ed.publicKey])).toMatchObject({
      ok: false,
      rejection: { code: 'bad-signature' },
    });
  });

  it.each([
    ['unsigned', () => ({ ...signed(ed), signature: new Uint8Array() }), [ed.publicKey], 'unsigned', /unsigned/],
    [
      'bad signature',
      () => ({ ...signed(ed), signature: signed(ed).signature.map((b) => b ^ 1) }),
      [ed.publicKey],
      'bad-signature',
      /does not verify/,
    ],
    [
      'garbage signature',
      () => ({ ...signed(ec), signature: utf8('not DER') }),
      [ec.publicKey],
      'bad-signature',
      /does not verify/,
    ],
    [
      'wrong key',
      () => signed(other),
      [ed.publicKey, ec.publicKey],
      'untrusted-key',
      /signed by key [0-9a-f]{16}, which this device does not trust/,
    ],
    ['no keys configured', () => signed(ed), [], 'no-trusted-keys', /no release public keys/],
    [
      'oversized signature',
      () => ({ ...signed(ed), signature: new Uint8Array(4096) }),
      [ed.publicKey],
      'signature-too-large',
      /larger than/,
    ],
  ] as const)('%s is refused with its reason', (_name, make, keys, code, message) => {
    const { bytes, signature } = make();
    const result = verifyReleaseManifest(bytes, signature, keys);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.rejection.code).toBe(code);
    expect(result.rejection.message).toMatch(message);
  });

  it('a manifest signed for another version than the job asks for is refused', () => {
    const { bytes, signature } = signed(ed, '2.0.0');
    expect(verifyReleaseManifest(bytes, signature, [ed.publicKey], '1.2.3')).toEqual({
      ok: false,
      rejection: {
        code: 'version-mismatch',
        message: 'job asks for version 1.2.3 but the signed manifest is for 2.0.0',
      },
    });
  });

  it('a validly signed manifest naming another key id is refused', () => {
    const bytes = manifestJson({ keyId: releaseKeyId(other.publicKey) });
    const signature = signReleaseManifest(bytes, ed.privateKey);
    expect(verifyReleaseManifest(bytes, signature, [ed.publicKey])).toMatchObject({
      ok: false,
      rejection: { code: 'invalid-manifest', message: expect.stringMatching(/names key .* but was signed by/) },
    });
  });

  it('refuses keys other than Ed25519 and P-256', () => {
    expect(() => makeReleaseManifest({ version: '1.0.0', sha256, size: 1, key: keyPair('p384').privateKey })).toThrow(
      /Ed25519 or ECDSA P-256/,
    );
    expect(() => signReleaseManifest(utf8('{}'), keyPair('rsa').privateKey)).toThrow(/Ed25519 or ECDSA P-256/);
    expect(releasePublicKeyProblem(keyPair('p384').publicKey)).toMatch(/Ed25519 or ECDSA P-256/);
    expect(releasePublicKeyProblem('not a key')).toMatch(/not a PEM public key/);
    expect(releasePublicKeyProblem(ec.publicKey)).toBeUndefined();
  });

  it('names the three files of a release', () => {
    expect(releaseFileNames('1.2.3')).toEqual({
      tarball: 'pifleet-agent-1.2.3.tar.gz',
      manifest: 'pifleet-agent-1.2.3.tar.gz.manifest.json',
      signature: 'pifleet-agent-1.2.3.tar.gz.manifest.sig',
    });
  });
});

describe('parseReleaseManifest (hostile input)', () => {
  it.each([
    [
      '__proto__ key',
      utf8(`{"__proto__":{"polluted":1},${new TextDecoder().decode(manifestJson({})).slice(1)}`),
      /__proto__/,
    ],
    ['unknown key', manifestJson({ extra: 1 }), /extra/],
    ['deep JSON', utf8(`${'['.repeat(100_000)}${']'.repeat(100_000)}`), /larger than|nested/],
    ['deep but small', utf8(`{"a":${'['.repeat(50)}${']'.repeat(50)}}`), /nested/],
    ['huge size', manifestJson({ size: 2 ** 40 }), /size must be at most/],
    ['fractional size', manifestJson({ size: 1.5 }), /size must be an integer/],
    ['bad semver', manifestJson({ version: '1.02.3' }), /semantic version/],
    ['path in version', manifestJson({ version: '../../etc' }), /semantic version/],
    ['non-hex sha', manifestJson({ sha256: 'z'.repeat(64) }), /sha256 must be 64 lowercase hex/],
    ['short sha', manifestJson({ sha256: 'ab' }), /sha256 must be 64 lowercase hex/],
    ['other format', manifestJson({ format: 3 }), /format must be 2/],
    // Format 1 had no target: such a manifest cannot say what it runs on.
    ['format 1 without a target', manifestJson({ format: 1, target: undefined }), /format must be 2.*target/],
    ['no target', manifestJson({ target: undefined }), /target/],
    ['unknown platform', manifestJson({ target: { platform: 'plan9', arch: 'arm64', nodeAbi: 137 } }), /platform/],
    ['unknown arch', manifestJson({ target: { platform: 'linux', arch: 'aarch64', nodeAbi: 137 } }), /arch must be/],
    ['ABI as a string', manifestJson({ target: { platform: 'linux', arch: 'arm64', nodeAbi: '137' } }), /nodeAbi/],
    [
      'extra target key',
      manifestJson({ target: { platform: 'linux', arch: 'arm64', nodeAbi: 137, libc: 'musl' } }),
      /libc/,
    ],
    ['nested target', manifestJson({ target: { platform: { a: 1 }, arch: 'arm64', nodeAbi: 137 } }), /nested|platform/],
    ['not an object', utf8('[1,2]'), /JSON object/],
    ['not JSON', utf8('{'), /not JSON/],
    ['not UTF-8', Uint8Array.from([0x7b, 0xff, 0x7d]), /not UTF-8/],
  ])('%s is refused', (_name, bytes, message) => {
    const result = parseReleaseManifest(bytes);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.rejection.message).toMatch(message);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('refuses bytes over the cap before parsing them', () => {
    const result = parseReleaseManifest(new Uint8Array(MAX_MANIFEST_BYTES + 1).fill(0x20));
    expect(result).toMatchObject({ ok: false, rejection: { code: 'manifest-too-large' } });
  });

  it.each([
    ['1.2.3', true],
    ['0.0.0', true],
    ['1.2.3-rc.1+build.5', true],
    ['1.2.3-0.alpha', true],
    ['1.2', false],
    ['01.2.3', false],
    ['1.2.3-01', false],
    ['1.2.3-', false],
    ['1.2.3+', false],
    ['1.2.3-a..b', false],
    ['v1.2.3', false],
    ['1234567890.0.0', false],
    [`1.2.3-${'a'.repeat(60)}`, false],
  ])('isReleaseVersion(%s) = %s', (version, ok) => {
    expect(isReleaseVersion(version)).toBe(ok);
  });
});

describe('release target', () => {
  const pi = { platform: 'linux', arch: 'arm64', nodeAbi: 137 } as const;

  it('the manifest names the target it was made for (default: this machine), and it is signed', () => {
    const here = signed(ed).manifest.target;
    expect(here).toEqual({ platform: process.platform, arch: process.arch, nodeAbi: Number(process.versions.modules) });
    const manifest = makeReleaseManifest({ version: '1.2.3', sha256, size: 1, key: ed.privateKey, target: pi });
    const bytes = serializeReleaseManifest(manifest);
    expect(JSON.parse(new TextDecoder().decode(bytes))).toMatchObject({ format: 2, target: pi });
    const signature = signReleaseManifest(bytes, ed.privateKey);
    expect(verifyReleaseManifest(bytes, signature, [ed.publicKey])).toMatchObject({
      ok: true,
      manifest: { target: pi },
    });
    // The target is inside the signed bytes: a release re-labelled for another machine fails the signature.
    const relabelled = utf8(new TextDecoder().decode(bytes).replace('"arm64"', '"x64"'));
    expect(relabelled).not.toEqual(bytes);
    expect(verifyReleaseManifest(relabelled, signature, [ed.publicKey])).toMatchObject({
      ok: false,
      rejection: { code: 'bad-signature' },
    });
  });

  it.each([
    ['the same target', pi, undefined],
    [
      'another arch',
      { ...pi, arch: 'x64' },
      'release is built for linux-x64, Node ABI 137; this device is linux-arm64, Node ABI 137',
    ],
    [
      'another Node ABI',
      { ...pi, nodeAbi: 127 },
      'release is built for linux-arm64, Node ABI 127; this device is linux-arm64, Node ABI 137',
    ],
    [
      'another platform',
      { ...pi, platform: 'darwin' },
      'release is built for darwin-arm64, Node ABI 137; this device is linux-arm64, Node ABI 137',
    ],
  ] as const)('%s: %s', (_, release, message) => {
    const mismatch = releaseTargetMismatch(release, pi);
    expect(mismatch).toEqual(message === undefined ? undefined : { code: 'target-mismatch', message });
  });

  it.each([
    ['linux-arm64', 137, pi],
    ['linux-x64', 115, { platform: 'linux', arch: 'x64', nodeAbi: 115 }],
  ] as const)('parseReleaseTarget(%s, %i)', (text, abi, expected) => {
    expect(parseReleaseTarget(text, abi)).toEqual(expected);
  });

  it.each([
    ['linux', 137, /<platform>-<arch>/],
    ['linux-aarch64', 137, /arch must be one of/],
    ['raspbian-arm64', 137, /platform must be one of/],
    ['linux-arm64', 0, /nodeAbi must be at least 1/],
    ['linux-arm64', 13.7, /nodeAbi must be an integer/],
    ['linux-arm64', Number.NaN, /nodeAbi/],
  ] as const)('parseReleaseTarget(%s, %s) is refused', (text, abi, message) => {
    expect(() => parseReleaseTarget(text, abi)).toThrow(message);
  });
});

describe('checkReleaseArtifact', () => {
  const manifest: ReleaseManifest = signed(ed).manifest;
  it('accepts the bytes the manifest names, refuses another size or hash', () => {
    expect(checkReleaseArtifact(manifest, { sha256, size: tarball.byteLength })).toBeUndefined();
    expect(checkReleaseArtifact(manifest, { sha256, size: 3 })?.code).toBe('size-mismatch');
    expect(checkReleaseArtifact(manifest, { sha256: '0'.repeat(64), size: tarball.byteLength })?.code).toBe(
      'sha256-mismatch',
    );
  });
});
