import 'reflect-metadata';
import { spawn, spawnSync } from 'node:child_process';
import { webcrypto } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import * as x509 from '@peculiar/x509';
import { AGENT_INSTALL_PATHS } from '@pifleet/protocol';
import { REPO, removeDir, tempDir } from '@pifleet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

/**
 * The Pi install path as the README writes it: build `protocol` and `device-agent` to dist/, run
 * the README's `pnpm deploy` line (production dependencies only, from the lockfile and the store,
 * offline), then run the deployed `pifleet-agent` with plain node: no tsx, no workspace, no cloud code.
 */

/**
 * A device's credentials as a bundle has them: a CA, a certificate it signed and that
 * certificate's key (check-config parses them and checks that they belong together).
 */
async function deviceCredentials(): Promise<{ caPem: string; certPem: string; keyPem: string }> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
  const gen = () => webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']) as Promise<webcrypto.CryptoKeyPair>;
  const [caKeys, deviceKeys] = await Promise.all([gen(), gen()]);
  const notBefore = new Date(Date.now() - 60_000);
  const notAfter = new Date(Date.now() + 86_400_000);
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=pifleet deploy test CA',
    notBefore,
    notAfter,
    keys: caKeys,
    signingAlgorithm: alg,
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true)],
  });
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: '02',
    subject: 'CN=pi-deploy-test',
    issuer: ca.subject,
    notBefore,
    notAfter,
    signingKey: caKeys.privateKey,
    publicKey: deviceKeys.publicKey,
    signingAlgorithm: alg,
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', deviceKeys.privateKey);
  return {
    caPem: ca.toString('pem'),
    certPem: cert.toString('pem'),
    keyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY'),
  };
}

/** The README's "Installing on a Raspberry Pi" section. */
function readmePiSection(): string {
  const readme = readFileSync(path.join(REPO, 'README.md'), 'utf8');
  const start = readme.indexOf('**Installing on a Raspberry Pi.**');
  const end = readme.indexOf('\n## ', start);
  if (start < 0 || end < 0) throw new Error('README has no "Installing on a Raspberry Pi" section');
  return readme.slice(start, end);
}

/**
 * The PATH systemd 252 (Raspberry Pi OS Bookworm) gives a system service; Debian's sudo
 * `secure_path` has the same order. The unit's `/usr/bin/env node` searches it.
 */
const SERVICE_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/** The README's Pi section with runs of whitespace (line breaks inside `code`) as one space. */
const flat = (text: string) => text.replace(/\s+/g, ' ');

/** The README's deploy command line, as words, with its output directory. */
function readmeDeployCommand(): { words: string[]; outDir: string } {
  const line = readmePiSection()
    .split('\n')
    .find((l) => l.startsWith('npx ') && / deploy /.test(l));
  if (!line) throw new Error('README shows no pnpm deploy command');
  const words = line.split(/\s+/).filter((w) => w !== '');
  return { words, outDir: words[words.length - 1] as string };
}
const tsc = path.join(REPO, 'node_modules/typescript/bin/tsc');
let dir: string;
let out: string;
let deploy: ReturnType<typeof spawnSync>;

/** Packages that must never reach a device. */
const FORBIDDEN = [
  '@pifleet+cloud',
  '@pifleet+provisioning',
  '@pifleet+simulator',
  'aws-cdk-lib',
  'aws-cdk',
  'constructs',
  '@aws-sdk+client-iot',
  '@aws-sdk+client-iot-data-plane',
  '@aws-sdk+client-dynamodb',
  'aedes',
  'mqtt',
  'tsx',
  'typescript',
  'vitest',
  'esbuild',
  '@biomejs+biome',
];

function node(args: string[], cwd: string) {
  return spawnSync(process.execPath, args, {
    cwd,
    encoding: 'utf8',
    timeout: 20_000,
    // Only what a Pi's service has: no NODE_OPTIONS (vitest's loaders), no workspace conditions.
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir },
  });
}

beforeAll(async () => {
  dir = tempDir('deploy');
  out = path.join(dir, 'pifleet-agent');
  // protocol first: the agent's build type-checks against protocol's dist/ declarations, so building
  // both at once can read a stale dist/ (tsc with each package's tsconfig.build.json, to dist/).
  for (const pkg of ['protocol', 'device-agent']) {
    await new Promise<void>((resolve, reject) => {
      const child = spawn(process.execPath, [tsc, '-p', path.join(REPO, pkg, 'tsconfig.build.json')], {
        cwd: path.join(REPO, pkg),
      });
      let log = '';
      child.stdout.on('data', (b: Buffer) => (log += b.toString()));
      child.stderr.on('data', (b: Buffer) => (log += b.toString()));
      child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`build of ${pkg} failed:\n${log}`))));
    });
  }
  // A newcomer's machine: the install filled the store, but pnpm's metadata cache is empty (a
  // frozen-lockfile install never downloads package metadata). `deploy --legacy --offline`
  // failed here with ERR_PNPM_NO_OFFLINE_META; CI passed only on a machine with a warm cache.
  const { words } = readmeDeployCommand();
  const [command, ...args] = words.slice(0, -1);
  deploy = spawnSync(command as string, [...args, out], {
    cwd: REPO,
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, npm_config_cache_dir: path.join(dir, 'pnpm-cache') },
  });
}, 180_000);

afterAll(() => {
  if (dir) removeDir(dir);
});

describe('Pi install path (pnpm deploy of @pifleet/device-agent)', () => {
  it('the README deploys offline from the lockfile, into the directory it copies to the Pi', () => {
    const { words, outDir } = readmeDeployCommand();
    expect(words).toContain('--offline');
    expect(words).toContain('--prod');
    expect(words).not.toContain('--legacy');
    expect(readmePiSection()).toContain(`scp -r ${outDir} `);
  });

  it('deploys the agent with its built code and production dependencies (cold metadata cache)', () => {
    expect(deploy.status, `${deploy.stdout}${deploy.stderr}`).toBe(0);
    expect(existsSync(path.join(out, 'dist/main.js'))).toBe(true);
    expect(existsSync(path.join(out, 'bin/pifleet-agent.js'))).toBe(true);
    expect(existsSync(path.join(out, 'src'))).toBe(false);
    expect(existsSync(path.join(out, 'node_modules/@pifleet/protocol/dist/index.js'))).toBe(true);
    const pkg = JSON.parse(readFileSync(path.join(out, 'package.json'), 'utf8')) as { name: string };
    expect(pkg.name).toBe('@pifleet/device-agent');
  });

  it('carries no cloud, CDK, control-plane SDK or development tooling', () => {
    const store = readdirSync(path.join(out, 'node_modules/.pnpm'));
    const names = store.map((entry) => entry.replace(/@(?:\d|file\+).*$/, ''));
    for (const bad of FORBIDDEN) expect(names, bad).not.toContain(bad);
    expect(readdirSync(path.join(out, 'node_modules/@pifleet'))).toEqual(['protocol']);
    // What it does carry: the device SDK, SQLite and the GPIO/I2C modules (native, rebuilt on the Pi).
    for (const good of [
      'aws-iot-device-sdk-v2',
      'aws-crt',
      'better-sqlite3',
      'onoff',
      'i2c-bus',
      'pino',
      'zod',
      // Provisioning by claim makes the device's key and its CSR on the Pi.
      '@peculiar+x509',
      'reflect-metadata',
    ]) {
      expect(names, good).toContain(good);
    }
  });

  it('starts pifleet-agent from the deployed directory with node alone', () => {
    const help = node(['bin/pifleet-agent.js', '--help'], out);
    expect(help.status, help.stderr).toBe(0);
    expect(help.stdout).toMatch(/check-config/);
    const version = node(['bin/pifleet-agent.js', '--version'], out);
    expect(version.stdout.trim()).toBe('0.1.0');

    const unit = node(['bin/pifleet-agent.js', 'print-unit', '--exec', `${out}/bin/pifleet-agent.js`], out);
    expect(unit.status, unit.stderr).toBe(0);
    expect(unit.stdout).toMatch(/RestartPreventExitStatus=78/);
    expect(unit.stdout.split('\n')).toContain(
      `ExecStart=/usr/bin/env node ${out}/bin/pifleet-agent.js run --config /etc/pifleet/agent.json`,
    );
  });

  it('makes a device key and its CSR from the deployed directory (provisioning by claim on a Pi)', () => {
    const script = [
      "const m = await import('@pifleet/device-agent');",
      "const k = await m.makeEcDeviceKey({ commonName: '10000000abcdef01' });",
      "console.log(k.csrPem.split('\\n')[0] + ' ' + k.privateKeyPem.split('\\n')[0]);",
    ].join('\n');
    const r = node(['--input-type=module', '-e', script], out);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('-----BEGIN CERTIFICATE REQUEST----- -----BEGIN EC PRIVATE KEY-----');
  });

  it('the mqtt.js transport, left out of the install, says what it needs instead of failing to load', () => {
    // The package loads without mqtt (it is an optional peer); only building that transport needs it.
    const script = [
      "const m = await import('@pifleet/device-agent');",
      "const t = m.createMqttJsTransport({ endpoint: '127.0.0.1', port: 1, clientId: 'x', certFile: 'c', keyFile: 'k' });",
      "t.on('connectFailed', (e) => { console.log(e.error.code + ': ' + e.error.message); t.stop(); process.exit(0); });",
      't.start();',
    ].join('\n');
    const r = node(['--input-type=module', '-e', script], out);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^MQTTJS_MISSING: the mqtt\.js transport needs the `mqtt` package/);
  });

  it('print-unit by default runs the agent and config where the README installs them', () => {
    const { agentDir, agentBin, configDir, configFile, stateDir } = AGENT_INSTALL_PATHS;
    const unit = node(['bin/pifleet-agent.js', 'print-unit'], out);
    expect(unit.status, unit.stderr).toBe(0);
    const lines = unit.stdout.split('\n');
    expect(lines).toContain(`ExecStart=/usr/bin/env node ${agentBin} run --config ${configFile}`);
    expect(lines.filter((l) => /^(ReadWrite|ReadOnly)Paths=/.test(l))).toEqual([
      `ReadWritePaths=${stateDir}`,
      `ReadOnlyPaths=${configDir}`,
    ]);
    // The deployed tree has the launcher where the unit looks for it, relative to the agent directory.
    expect(existsSync(path.join(out, path.relative(agentDir, agentBin)))).toBe(true);
    // …and the README moves the deployed tree, the bundle and the state directory to those paths.
    const section = readmePiSection();
    expect(section).toContain(`sudo mv ~/pifleet-agent ${agentDir} `);
    expect(section).toContain(`--install-dir ${configDir}`);
    expect(section).toContain(`sudo install -d -o pifleet -g pifleet -m 0700 ${configDir} ${stateDir}`);
    expect(section).toContain(`check-config ${configFile}`);
  });

  it('check-config accepts a bundle config and rejects a bad one with exit 78', async () => {
    const bundle = path.join(dir, 'bundle');
    rmSync(bundle, { recursive: true, force: true });
    mkdirSync(bundle, { recursive: true });
    const credentials = await deviceCredentials();
    writeFileSync(path.join(bundle, 'certificate.pem.crt'), credentials.certPem);
    writeFileSync(path.join(bundle, 'private.pem.key'), credentials.keyPem, { mode: 0o600 });
    writeFileSync(path.join(bundle, 'ca.pem'), credentials.caPem);
    const config = {
      thingName: 'pi-deploy-test',
      endpoint: 'example-ats.iot.eu-west-1.amazonaws.com',
      certFile: path.join(bundle, 'certificate.pem.crt'),
      keyFile: path.join(bundle, 'private.pem.key'),
      caFile: path.join(bundle, 'ca.pem'),
      sensors: [{ id: 'env', driver: 'bme280', address: '0x76', intervalMs: 5000 }],
    };
    writeFileSync(path.join(bundle, 'agent.json'), JSON.stringify(config));
    const ok = node(['bin/pifleet-agent.js', 'check-config', path.join(bundle, 'agent.json')], out);
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/ok \(thing pi-deploy-test, MQTT 5, 1 sensors/);

    writeFileSync(path.join(bundle, 'bad.json'), JSON.stringify({ ...config, port: 0, sensors: [{ id: 'x' }] }));
    const bad = node(['bin/pifleet-agent.js', 'check-config', path.join(bundle, 'bad.json')], out);
    expect(bad.status).toBe(78);
    expect(bad.stderr).toMatch(/port/);
  });

  it('runs the unit’s ExecStart as systemd would: env finds node on the service PATH, the script needs no executable bit', () => {
    // A copy without the executable bit (a new file: the deployed ones may be hard links into the store).
    const script = path.join(out, 'bin', 'pifleet-agent-0644.js');
    copyFileSync(path.join(out, 'bin/pifleet-agent.js'), script);
    chmodSync(script, 0o644);
    expect(statSync(script).mode & 0o111).toBe(0);
    const missing = path.join(dir, 'not-installed', 'agent.json');
    const unit = node(['bin/pifleet-agent.js', 'print-unit', '--exec', script, '--config', missing], out);
    expect(unit.status, unit.stderr).toBe(0);
    const execStart = unit.stdout.split('\n').find((l) => l.startsWith('ExecStart='));
    expect(execStart).toBe(`ExecStart=/usr/bin/env node ${script} run --config ${missing}`);
    const [program, ...args] = (execStart as string).slice('ExecStart='.length).split(' ');
    // The node under test first, as a Pi has its Node 24 in /usr/local/bin or /usr/bin.
    const started = spawnSync(program as string, args, {
      cwd: '/',
      encoding: 'utf8',
      timeout: 20_000,
      env: { PATH: [path.dirname(process.execPath), ...SERVICE_PATH].join(':') },
    });
    // The agent itself answered: the missing config is a configuration error, which the unit does not restart.
    expect(started.status, started.stderr).toBe(78);
    expect(started.stderr).toContain(`cannot read ${missing}`);
  });

  it.runIf(existsSync('/usr/bin/systemd-path'))('SERVICE_PATH is the PATH this systemd gives a service', () => {
    const found = spawnSync('/usr/bin/systemd-path', ['search-binaries-default'], { encoding: 'utf8' });
    expect(found.stdout.trim()).toBe(SERVICE_PATH.join(':'));
  });

  it('the README installs Node 24 where the unit’s /usr/bin/env node finds it, and quotes the unit’s ExecStart', () => {
    const section = readmePiSection();
    const { agentBin, configFile } = AGENT_INSTALL_PATHS;
    expect(flat(section)).toContain(`\`ExecStart=/usr/bin/env node ${agentBin} run --config ${configFile}\``);
    // NodeSource's package: /usr/bin/node.
    expect(section).toContain('https://deb.nodesource.com/setup_24.x');
    expect(SERVICE_PATH).toContain('/usr/bin');
    // The tarball: links in a directory the service searches before /usr/bin (Debian's own nodejs is Node 18).
    const link = /sudo ln -sf \/opt\/node-\$V-linux-arm64\/bin\/\{node,npm,npx\} (\/\S+)\/$/m.exec(section);
    expect(link, 'README links the tarball’s node somewhere').not.toBeNull();
    const linkDir = link?.[1] as string;
    expect(SERVICE_PATH).toContain(linkDir);
    expect(SERVICE_PATH.indexOf(linkDir)).toBeLessThan(SERVICE_PATH.indexOf('/usr/bin'));
    // Every command runs node as the service does, from PATH: never by an absolute path.
    const commands = section.split('\n').filter((l) => /^(sudo |node |npx |curl |V=)/.test(l));
    expect(commands.filter((l) => /(^|\s)\/\S*\/node\s/.test(l))).toEqual([]);
    // …and the README checks, as the service user, which node that is before the agent is installed.
    const nodeCheck = commands.findIndex((l) => /^sudo -u pifleet node --version\s/.test(l));
    const checkConfig = commands.findIndex((l) => l.includes(`check-config ${configFile}`));
    expect(nodeCheck).toBeGreaterThanOrEqual(0);
    expect(nodeCheck).toBeLessThan(checkConfig);
    // The checks that tell the 64-bit OS from the 32-bit one (a 32-bit OS on a Pi 4/5 still has an aarch64 kernel).
    for (const check of ['getconf LONG_BIT', 'dpkg --print-architecture']) expect(section).toContain(check);
  });
});
