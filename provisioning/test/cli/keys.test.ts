import { createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { EXIT, releasePublicKeyProblem } from '@pifleet/protocol';
import { removeDir, tempDir } from '@pifleet/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { KEY_FILES } from '../../src/core/release-keys.js';
import { cli } from '../helpers.js';

/** `pifleet keys create`: needs no target; the files, their modes, and refusing to overwrite. */

const root = tempDir('keys');
afterAll(() => removeDir(root));
let n = 0;
const fresh = () => {
  const dir = path.join(root, `w${++n}`);
  fs.mkdirSync(dir);
  return dir;
};
const mode = (file: string) => fs.statSync(file).mode & 0o777;

describe('keys create', () => {
  it.each([
    ['ed25519', [], 'ed25519', undefined],
    ['ecdsa-p256', ['--algorithm', 'ecdsa-p256'], 'ec', 'prime256v1'],
  ] as const)(
    'writes a %s pair: private 0600 in a 0700 directory, public printed, never the private key',
    async (_label, args, type, curve) => {
      const cwd = fresh();
      const old = process.umask(0o022);
      let r: Awaited<ReturnType<typeof cli>>;
      try {
        r = await cli(['keys', 'create', ...args], { cwd });
      } finally {
        process.umask(old);
      }
      expect(r.stderr).toBe('');
      expect(r.code).toBe(EXIT.ok);
      const dir = path.join(cwd, '.pifleet/keys');
      const privateFile = path.join(dir, KEY_FILES.privateKey);
      const publicFile = path.join(dir, KEY_FILES.publicKey);
      expect(mode(dir)).toBe(0o700);
      expect(mode(privateFile)).toBe(0o600);
      expect(mode(publicFile)).toBe(0o644);
      expect(fs.readdirSync(dir).sort()).toEqual([KEY_FILES.privateKey, KEY_FILES.publicKey].sort());

      const privateKey = createPrivateKey(fs.readFileSync(privateFile, 'utf8'));
      const publicPem = fs.readFileSync(publicFile, 'utf8');
      expect(privateKey.asymmetricKeyType).toBe(type);
      if (curve) expect(privateKey.asymmetricKeyDetails?.namedCurve).toBe(curve);
      // The two files are one pair: what the private key signs, the public key verifies.
      const data = Buffer.from('manifest bytes');
      const signature = sign(type === 'ec' ? 'sha256' : null, data, privateKey);
      expect(verify(type === 'ec' ? 'sha256' : null, data, createPublicKey(publicPem), signature)).toBe(true);

      expect(r.stdout).toContain(publicPem.trimEnd());
      // The snippet for the agent config, with a key the config's own check (protocol's) accepts.
      expect(r.stdout).toContain(`"update": ${JSON.stringify({ publicKeys: [publicPem] })}`);
      expect(releasePublicKeyProblem(publicPem)).toBeUndefined();
      expect(r.stdout).not.toContain('PRIVATE KEY');
    },
  );

  it('prints JSON with the public key and the paths, never the private key', async () => {
    const cwd = fresh();
    const r = await cli(['keys', 'create', '--out', 'signing', '--json'], { cwd });
    expect(r.code).toBe(EXIT.ok);
    const data = JSON.parse(r.stdout) as Record<string, string>;
    expect(data).toEqual({
      algorithm: 'ed25519',
      privateKeyFile: path.join(cwd, 'signing', KEY_FILES.privateKey),
      publicKeyFile: path.join(cwd, 'signing', KEY_FILES.publicKey),
      publicKeyPem: fs.readFileSync(path.join(cwd, 'signing', KEY_FILES.publicKey), 'utf8'),
      agentConfig: {
        update: { publicKeys: [fs.readFileSync(path.join(cwd, 'signing', KEY_FILES.publicKey), 'utf8')] },
      },
    });
    expect(r.stdout).not.toContain('PRIVATE KEY');
  });

  it.each([
    ['the private key', KEY_FILES.privateKey],
    ['the public key', KEY_FILES.publicKey],
  ])('refuses to overwrite %s (exit 65, one line and a hint) and changes nothing', async (_label, existing) => {
    const cwd = fresh();
    const dir = path.join(cwd, 'k');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, existing), 'OLD');
    const r = await cli(['keys', 'create', '--out', 'k'], { cwd });
    expect(r.code).toBe(EXIT.dataError);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(
      new RegExp(`${existing.replace(/\./g, '\\.')} exists; keys are never overwritten \\(hint: choose another --out`),
    );
    expect(fs.readdirSync(dir)).toEqual([existing]);
    expect(fs.readFileSync(path.join(dir, existing), 'utf8')).toBe('OLD');
  });

  it('refuses a second run on the same directory, keeping the first pair', async () => {
    const cwd = fresh();
    expect((await cli(['keys', 'create'], { cwd })).code).toBe(EXIT.ok);
    const file = path.join(cwd, '.pifleet/keys', KEY_FILES.privateKey);
    const first = fs.readFileSync(file, 'utf8');
    const again = await cli(['keys', 'create', '--json'], { cwd });
    expect(again.code).toBe(EXIT.dataError);
    expect(JSON.parse(again.stderr)).toMatchObject({ error: { code: 'KEY_EXISTS', exitCode: EXIT.dataError } });
    expect(fs.readFileSync(file, 'utf8')).toBe(first);
  });

  // Node's mkdir -p never settles (full CPU) under /proc, whose mkdir answers ENOENT below an existing
  // directory; a path through a file was exit 1 with Node's bare "Error: ENOTDIR".
  it.each<[string, (cwd: string) => string, string]>([
    ['through a file', (cwd) => path.join(cwd, 'a-file', 'keys'), 'ENOTDIR'],
    ...(fs.existsSync('/proc/self')
      ? [['under /proc', () => `/proc/pifleet-keys-${process.pid}/keys`, 'ENOENT'] as [string, () => string, string]]
      : []),
  ])('refuses an --out directory %s it cannot make: exit 65, one line and a hint', async (_label, out, code) => {
    const cwd = fresh();
    fs.writeFileSync(path.join(cwd, 'a-file'), 'x');
    const dir = out(cwd);
    const r = await cli(['keys', 'create', '--out', dir], { cwd });
    expect(r.code).toBe(EXIT.dataError);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      `pifleet: cannot write into ${dir} (${code}) (hint: choose another --out directory, one this user can create and write)\n`,
    );
    expect(fs.readdirSync(cwd)).toEqual(['a-file']);
  });

  it('refuses an unknown algorithm with exit 64 and writes nothing', async () => {
    const cwd = fresh();
    const r = await cli(['keys', 'create', '--algorithm', 'rsa'], { cwd });
    expect(r.code).toBe(EXIT.usage);
    expect(r.stderr).toBe('pifleet: unknown --algorithm "rsa" (hint: use one of: ed25519, ecdsa-p256)\n');
    expect(fs.readdirSync(cwd)).toEqual([]);
  });
});
