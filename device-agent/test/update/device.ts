import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { makeReleaseManifest, serializeReleaseManifest, signReleaseManifest } from '@pifleet/protocol';
import { create as createTar } from 'tar';
import type { UpdateJob } from '../../src/update/index.js';

/**
 * A device on disk for the updater's process tests: a factory install, a state directory, the
 * trusted keys, and a fake systemd that runs the boot guard and then `current/bin/pifleet-agent.js`,
 * and starts them again whenever the agent exits, as the unit's `ExecStartPre=` and `Restart=always`
 * do. Releases are tiny agent directories built here (fixtures/agent.ts does the updater's part).
 */

const here = path.dirname(fileURLToPath(import.meta.url));
const tsx = createRequire(import.meta.url).resolve('tsx');
const fixtureAgent = pathToFileURL(path.join(here, 'fixtures/agent.ts')).href;
const fixtureGuard = path.join(here, 'fixtures/guard.ts');
const productionGuard = path.join(here, '../../src/update/boot-guard.ts');

export type Behaviour = 'healthy' | 'never-healthy' | 'crash';

export interface KeyPair {
  readonly publicKey: string;
  readonly privateKey: string;
}

export function ed25519(): KeyPair {
  return generateKeyPairSync('ed25519', {
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
}

/** Writes an agent directory: a launcher that runs the fixture agent with this version and behaviour. */
export function writeAgentDir(dir: string, version: string, behaviour: Behaviour): void {
  mkdirSync(path.join(dir, 'bin'), { recursive: true });
  mkdirSync(path.join(dir, 'node_modules/.pnpm/dep@1.0.0'), { recursive: true });
  writeFileSync(
    path.join(dir, 'package.json'),
    JSON.stringify({ name: '@pifleet/device-agent', version, type: 'module' }),
  );
  writeFileSync(path.join(dir, 'node_modules/.pnpm/dep@1.0.0/index.js'), 'export default 1;\n');
  // pnpm deploy output links packages inside node_modules: relative links that stay in the release.
  symlinkSync('.pnpm/dep@1.0.0', path.join(dir, 'node_modules/dep'));
  const crash =
    behaviour === 'crash'
      ? `process.stdout.write(JSON.stringify({ type: 'crash', version: ${JSON.stringify(version)} }) + '\\n');\nprocess.exit(1);\n`
      : '';
  writeFileSync(
    path.join(dir, 'bin/pifleet-agent.js'),
    `// test agent ${version} (${behaviour})
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
${crash}const { runTestAgent } = await import(${JSON.stringify(fixtureAgent)});
await runTestAgent({
  version: ${JSON.stringify(version)},
  behaviour: ${JSON.stringify(behaviour)},
  releaseDir: realpathSync(fileURLToPath(new URL('..', import.meta.url))),
});
`,
  );
}

/** A release tarball (gzip, entries `./…` as `tar -C dir .` writes them). */
export async function buildTarball(
  root: string,
  version: string,
  behaviour: Behaviour,
  extra?: { readonly name: string; readonly bytes: Buffer },
): Promise<Buffer> {
  const dir = path.join(root, `build-${version}-${behaviour}${extra ? `-${extra.name}` : ''}`);
  writeAgentDir(dir, version, behaviour);
  if (extra) writeFileSync(path.join(dir, extra.name), extra.bytes);
  const file = `${dir}.tar.gz`;
  await createTar({ gzip: true, cwd: dir, file, portable: true }, ['.']);
  return readFileSync(file);
}

export interface SignedRelease {
  readonly tarball: Buffer;
  readonly manifest: Uint8Array;
  readonly signature: Uint8Array;
}

export function signRelease(tarball: Buffer, version: string, key: KeyPair): SignedRelease {
  const manifest = serializeReleaseManifest(
    makeReleaseManifest({
      version,
      sha256: createHash('sha256').update(tarball).digest('hex'),
      size: tarball.byteLength,
      key: key.privateKey,
    }),
  );
  return { tarball, manifest, signature: signReleaseManifest(manifest, key.privateKey) };
}

export function jobFor(jobId: string, version: string, url: string, release: SignedRelease): UpdateJob {
  return {
    jobId,
    document: {
      version,
      release: {
        url,
        manifest: Buffer.from(release.manifest).toString('base64'),
        signature: Buffer.from(release.signature).toString('base64'),
      },
    },
  };
}

/** An artifact server on 127.0.0.1 that honours Range, and can break a response half-way once. */
export interface ReleaseServer {
  readonly url: (name: string) => string;
  put(name: string, bytes: Buffer): void;
  /** The next GET of `name` sends half of the body and then destroys the connection. */
  interruptOnce(name: string): void;
  readonly requests: { name: string; range: string | undefined }[];
  close(): Promise<void>;
}

export async function startReleaseServer(): Promise<ReleaseServer> {
  const files = new Map<string, Buffer>();
  const interrupt = new Set<string>();
  const requests: { name: string; range: string | undefined }[] = [];
  const server: Server = createServer((req, res) => {
    const name = decodeURIComponent((req.url ?? '/').slice(1).split('?')[0] ?? '');
    const range = req.headers.range;
    requests.push({ name, range });
    const body = files.get(name);
    if (!body) {
      res.writeHead(404).end();
      return;
    }
    if (interrupt.delete(name)) {
      // Half the body, then the connection ends (FIN after the bytes, so they all arrive): the
      // client sees a response cut short, as when a link drops.
      res.writeHead(200, { 'content-length': body.byteLength });
      res.write(body.subarray(0, Math.floor(body.byteLength / 2)), () => res.socket?.end());
      return;
    }
    const m = range ? /^bytes=(\d+)-$/.exec(range) : null;
    if (m) {
      const start = Number(m[1]);
      if (start >= body.byteLength) {
        res.writeHead(416, { 'content-range': `bytes */${body.byteLength}` }).end();
        return;
      }
      res.writeHead(206, {
        'content-length': body.byteLength - start,
        'content-range': `bytes ${start}-${body.byteLength - 1}/${body.byteLength}`,
      });
      res.end(body.subarray(start));
      return;
    }
    res.writeHead(200, { 'content-length': body.byteLength }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: (name) => `http://127.0.0.1:${port}/${encodeURIComponent(name)}?X-Amz-Signature=test`,
    put: (name, bytes) => files.set(name, bytes),
    interruptOnce: (name) => interrupt.add(name),
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface Device {
  readonly dir: string;
  readonly stateDir: string;
  readonly factoryDir: string;
  readonly currentLink: string;
}

/** A device with the factory install (agent 1.0.0, healthy) and the trusted keys; no `current` yet. */
export function createDevice(dir: string, trusted: readonly string[]): Device {
  const stateDir = path.join(dir, 'state');
  const factoryDir = path.join(dir, 'factory');
  mkdirSync(stateDir, { recursive: true });
  writeAgentDir(factoryDir, '1.0.0', 'healthy');
  writeFileSync(path.join(dir, 'keys.json'), JSON.stringify(trusted));
  return { dir, stateDir, factoryDir, currentLink: path.join(stateDir, 'current') };
}

export function giveJob(device: Device, job: UpdateJob): void {
  writeFileSync(path.join(device.dir, 'job.json'), JSON.stringify(job));
}

export interface DeviceEvent {
  readonly type: string;
  readonly version?: string;
  readonly [key: string]: unknown;
}

export interface DeviceRun {
  readonly events: DeviceEvent[];
  /** Agent starts (each after a guard run). */
  readonly starts: number;
  readonly guardLog: string;
  /** The version of the agent that was running (idle) when the run ended. */
  readonly running: string | undefined;
  readonly outcome: DeviceEvent | undefined;
}

export interface RunOptions {
  /** A step point at which a process SIGKILLs itself once. */
  readonly fault?: string;
  readonly healthDeadlineMs?: number;
  /** Run src/update/boot-guard.ts (the production entry) instead of the fixture with the fault hook. */
  readonly productionGuard?: boolean;
  readonly maxStarts?: number;
  readonly timeoutMs?: number;
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode);
    else child.once('exit', (code) => resolve(code));
  });
}

/**
 * The fake systemd: guard, agent, restart on exit, until an agent is idle after the job's outcome
 * was reported (or, with no job, at all); then SIGTERM. Bounded by starts and time.
 */
export async function runDevice(device: Device, options: RunOptions = {}): Promise<DeviceRun> {
  const env = {
    ...process.env,
    UPDATE_TEST_DIR: device.dir,
    UPDATE_TEST_DEADLINE_MS: String(options.healthDeadlineMs ?? 30_000),
    UPDATE_TEST_FAULT: options.fault ?? '',
  };
  const node = (script: string, args: string[] = []) =>
    spawn(process.execPath, ['--conditions=@pifleet/source', '--import', tsx, script, ...args], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  const events: DeviceEvent[] = [];
  let guardLog = '';
  let running: string | undefined;
  const deadline = Date.now() + (options.timeoutMs ?? 100_000);
  const maxStarts = options.maxStarts ?? 12;
  const hasJob = (() => {
    try {
      readFileSync(path.join(device.dir, 'job.json'));
      return true;
    } catch {
      return false;
    }
  })();
  for (let start = 1; start <= maxStarts; start++) {
    const guard = options.productionGuard
      ? node(productionGuard, ['--state-dir', device.stateDir, '--factory-dir', device.factoryDir])
      : node(fixtureGuard);
    guard.stderr?.on('data', (d: Buffer) => {
      guardLog += d.toString();
    });
    await exited(guard);
    const agent = node(path.join(device.currentLink, 'bin/pifleet-agent.js'));
    let stderr = '';
    agent.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => agent.kill('SIGKILL'), Math.max(0, deadline - Date.now()));
    let done = false;
    const lines = createInterface({ input: agent.stdout as NodeJS.ReadableStream });
    lines.on('line', (line) => {
      let event: DeviceEvent;
      try {
        event = JSON.parse(line) as DeviceEvent;
      } catch {
        return;
      }
      events.push(event);
      if (event.type === 'idle' && (!hasJob || events.some((e) => e.type === 'outcome'))) {
        running = event.version;
        done = true;
        agent.kill('SIGTERM');
      }
    });
    const code = await exited(agent);
    clearTimeout(timer);
    if (done)
      return { events, starts: start, guardLog, running, outcome: events.findLast((e) => e.type === 'outcome') };
    if (Date.now() >= deadline) throw new Error(`device run timed out; events: ${JSON.stringify(events)}`);
    events.push({ type: 'exit', code, stderr: stderr.slice(-500) });
  }
  throw new Error(`no idle agent after ${maxStarts} starts; events: ${JSON.stringify(events)}\n${guardLog}`);
}
