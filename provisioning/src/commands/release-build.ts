import { createPrivateKey, createPublicKey } from 'node:crypto';
import { access, readdir, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { CommandUnknownOpts } from '@commander-js/extra-typings';
import {
  AGENT_INSTALL_PATHS,
  currentReleaseTarget,
  describeReleaseTarget,
  isJsonObject,
  isReleaseVersion,
  makeReleaseManifest,
  ownValue,
  parseJson,
  parseReleaseTarget,
  type ReleaseTarget,
  releaseFileNames,
  releaseKeyAlgorithm,
  serializeReleaseManifest,
  signReleaseManifest,
  verifyReleaseManifest,
} from '@pifleet/protocol';
import { FileExistsError, writeNewFile } from '../adapters/release-files.js';
import { packRelease } from '../adapters/release-tarball.js';
import type { Runner } from '../app/command.js';
import { isInstallBuiltModule, nativeModuleTarget } from '../core/release-target.js';
import { ConflictError, InputError, UsageError } from '../errors.js';

/** Where `release build` writes without `--out`: under the git-ignored `.pifleet/`. */
export const DEFAULT_RELEASES_DIR = '.pifleet/releases';

/** The agent's launcher inside the deployed directory (`/opt/pifleet/bin/pifleet-agent.js` on a Pi). */
const AGENT_BIN = path.relative(AGENT_INSTALL_PATHS.agentDir, AGENT_INSTALL_PATHS.agentBin);
const DEPLOY_HINT =
  'give the `pnpm deploy` output of @pifleet/device-agent (see "Installing on a Raspberry Pi" in the README)';

const exists = (file: string) =>
  access(file).then(
    () => true,
    () => false,
  );

/** The deployable agent directory: a directory holding the agent's package.json and its launcher. */
async function checkAgentDir(dir: string): Promise<void> {
  const st = await stat(dir).catch(() => undefined);
  if (!st?.isDirectory()) throw new InputError(`${dir} is not a directory`, { hint: DEPLOY_HINT });
  const pkgText = await readFile(path.join(dir, 'package.json'), 'utf8').catch(() => undefined);
  const pkg = pkgText === undefined ? undefined : parseJson(pkgText);
  const name = pkg?.ok && isJsonObject(pkg.value) ? ownValue(pkg.value, 'name') : undefined;
  if (name !== '@pifleet/device-agent') {
    throw new InputError(`${dir} is not the deployed agent (no package.json of @pifleet/device-agent)`, {
      hint: DEPLOY_HINT,
    });
  }
  if (!(await exists(path.join(dir, AGENT_BIN)))) {
    throw new InputError(`${dir} has no ${AGENT_BIN} (the agent is not built)`, { hint: DEPLOY_HINT });
  }
}

/** The operator's private signing key (PEM), refused unless releases may use it (Ed25519, ECDSA P-256). */
async function readSigningKey(file: string): Promise<string> {
  const pem = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new InputError(`cannot read the signing key ${file} (${err.code ?? err.message})`, {
      hint: 'pifleet keys create writes one (.pifleet/keys/release-signing.key.pem)',
    });
  });
  let algorithm: string | undefined;
  try {
    algorithm = releaseKeyAlgorithm(createPublicKey(createPrivateKey(pem)));
  } catch {
    throw new InputError(`${file} is not a PEM private key`, {
      hint: 'give the private key pifleet keys create wrote (release-signing.key.pem), not the public one',
    });
  }
  if (!algorithm) {
    throw new InputError(`${file} is neither an Ed25519 nor an ECDSA P-256 key`, {
      hint: 'devices verify Ed25519 and ECDSA P-256 signatures only; make a key with pifleet keys create',
    });
  }
  return pem;
}

interface BuiltModule {
  readonly file: string;
  readonly arch: ReleaseTarget['arch'] | undefined;
  readonly machine: number | undefined;
  readonly nodeAbi: number | undefined;
}

/** The native modules built for this deploy directory (`build/Release/*.node`), read from their bytes. */
async function builtModules(dir: string): Promise<BuiltModule[]> {
  const found: BuiltModule[] = [];
  // Our own walk, never through a symbolic link: `readdir(dir, { recursive: true })` follows links
  // to directories (Node 24: 490,708 entries, 11.8 s, for this workspace's node_modules/.pnpm and
  // the workspace packages linked from it; this walk: 31,581 entries, 0.6 s), and a link to `.`
  // would walk until ENAMETOOLONG. pnpm's package links are skipped; each real file is read once.
  const pending = [''];
  for (let rel = pending.pop(); rel !== undefined; rel = pending.pop()) {
    for (const entry of await readdir(path.join(dir, rel), { withFileTypes: true })) {
      const child = rel === '' ? entry.name : `${rel}/${entry.name}`;
      if (entry.isDirectory()) pending.push(child);
      else if (entry.isFile() && isInstallBuiltModule(child)) {
        found.push({ file: child, ...nativeModuleTarget(await readFile(path.join(dir, child))) });
      }
    }
  }
  return found.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
}

const hex = (n: number | undefined) => (n === undefined ? 'not ELF' : `ELF machine 0x${n.toString(16)}`);

/**
 * What the release runs on: `--target`/`--node-abi`, else what the deploy directory's native
 * modules were built for, else this machine. A flag that contradicts the modules is refused: such
 * a release would crash at every start on the devices it claims to fit.
 */
function releaseTarget(
  flags: { readonly target?: string | undefined; readonly nodeAbi?: string | undefined },
  modules: readonly BuiltModule[],
): { readonly target: ReleaseTarget; readonly source: string } {
  const machine = currentReleaseTarget();
  if (flags.nodeAbi !== undefined && !/^\d{1,4}$/.test(flags.nodeAbi)) {
    throw new UsageError(
      `--node-abi must be a number (process.versions.modules), got ${JSON.stringify(flags.nodeAbi)}`,
      {
        hint: `the Node ABI of the devices' Node, e.g. 137 for Node 24 (this machine: ${machine.nodeAbi})`,
      },
    );
  }
  const unknown = modules.find((m) => m.arch === undefined);
  if (unknown && flags.target === undefined) {
    throw new InputError(`cannot tell what ${unknown.file} was built for (${hex(unknown.machine)})`, {
      hint: "give the devices' platform and architecture with --target, e.g. --target linux-arm64",
    });
  }
  const archs = [...new Set(modules.flatMap((m) => (m.arch ? [m.arch] : [])))];
  if (archs.length > 1) {
    throw new InputError(`the native modules are built for several architectures (${archs.join(', ')})`, {
      hint: "run pnpm deploy again on (or for) the devices' architecture",
    });
  }
  const abis = [...new Set(modules.flatMap((m) => (m.nodeAbi === undefined ? [] : [m.nodeAbi])))];
  if (abis.length > 1) {
    throw new InputError(`the native modules are built for several Node ABIs (${abis.join(', ')})`, {
      hint: 'run pnpm deploy again with the Node the devices run',
    });
  }
  const [arch] = archs;
  const [abi] = abis;
  const detected = arch === undefined ? undefined : `linux-${arch}`;
  let target: ReleaseTarget;
  try {
    target = parseReleaseTarget(
      flags.target ?? detected ?? `${machine.platform}-${machine.arch}`,
      flags.nodeAbi !== undefined ? Number(flags.nodeAbi) : (abi ?? machine.nodeAbi),
    );
  } catch (err) {
    throw new UsageError(`--target/--node-abi: ${(err as Error).message}`, {
      hint: '--target <platform>-<arch> as Node spells them, e.g. linux-arm64 for a 64-bit Raspberry Pi OS',
    });
  }
  const withModule = (pred: (m: BuiltModule) => boolean) => modules.find(pred)?.file ?? '';
  if (flags.target !== undefined && detected !== undefined && `${target.platform}-${target.arch}` !== detected) {
    throw new InputError(
      `--target ${flags.target} contradicts the native modules, built for ${detected} (${withModule((m) => m.arch === arch)})`,
      { hint: "run pnpm deploy on (or for) the devices' architecture, or leave out --target" },
    );
  }
  if (flags.nodeAbi !== undefined && abi !== undefined && target.nodeAbi !== abi) {
    throw new InputError(
      `--node-abi ${flags.nodeAbi} contradicts the native modules, built for Node ABI ${abi} (${withModule((m) => m.nodeAbi === abi)})`,
      { hint: 'run pnpm deploy with the Node the devices run, or leave out --node-abi' },
    );
  }
  const source =
    flags.target !== undefined || flags.nodeAbi !== undefined
      ? 'as given'
      : modules.length > 0
        ? `from ${modules.length} native module${modules.length === 1 ? '' : 's'}${abi === undefined ? ', Node ABI of this machine' : ''}`
        : "this machine's: no native modules found";
  return { target, source };
}

/**
 * `release build`: the agent as a release — tarball, manifest (its SHA-256 and size, the version,
 * the signing key's id) and the manifest's signature (`@pifleet/protocol`'s release format).
 */
export function registerReleaseBuild(release: CommandUnknownOpts, run: Runner): void {
  run(
    release
      .command('build')
      .description('pack the deployed agent directory as a signed release: tarball, manifest, signature')
      .requiredOption('--from <dir>', 'the deployable agent directory (the `pnpm deploy` output)')
      .requiredOption('--version <version>', 'the release version (semantic version, e.g. 1.4.0)')
      .requiredOption('--key <file>', 'the private signing key (pifleet keys create)')
      .option(
        '--target <platform-arch>',
        "what the release runs on, e.g. linux-arm64 (default: what the deploy directory's native modules were built for)",
      )
      .option(
        '--node-abi <n>',
        "the devices' Node ABI, process.versions.modules (default: the native modules', else this machine's)",
      )
      .option('--out <dir>', `directory of the release files (default: ${DEFAULT_RELEASES_DIR})`)
      .option('--json', 'print JSON on stdout')
      .option('-v, --verbose', 'log details to stderr'),
    async (ctx, _args, o) => {
      if (!isReleaseVersion(o.version)) {
        throw new UsageError(`--version ${JSON.stringify(o.version)} is not a semantic version`, {
          hint: 'MAJOR.MINOR.PATCH[-prerelease][+build], e.g. 1.4.0 or 1.5.0-rc.1, at most 64 characters',
        });
      }
      const from = path.resolve(ctx.io.cwd, o.from);
      const outDir = path.resolve(ctx.io.cwd, o.out ?? DEFAULT_RELEASES_DIR);
      await checkAgentDir(from);
      const { target, source } = releaseTarget(o, await builtModules(from));
      ctx.log.info({ target, source }, 'release target');
      const privateKeyPem = await readSigningKey(path.resolve(ctx.io.cwd, o.key));
      const names = releaseFileNames(o.version);
      const files = {
        tarball: path.join(outDir, names.tarball),
        manifest: path.join(outDir, names.manifest),
        signature: path.join(outDir, names.signature),
      };
      const exists409 = (file: string) =>
        new ConflictError('RELEASE_EXISTS', `${file} exists; a release is never rebuilt under the same version`, {
          hint: 'give a new --version (devices install each version once), or another --out',
          data: { file },
        });
      for (const file of Object.values(files)) if (await exists(file)) throw exists409(file);

      const written: string[] = [];
      try {
        const packed = await packRelease(from);
        await writeNewFile(files.tarball, packed.chunks, 0o644, 0o755);
        written.push(files.tarball);
        const { sha256, size } = packed.digest();
        const manifest = makeReleaseManifest({
          version: o.version,
          sha256,
          size,
          createdAt: new Date(ctx.io.clock.now()),
          key: privateKeyPem,
          target,
        });
        const manifestBytes = serializeReleaseManifest(manifest);
        const signature = signReleaseManifest(manifestBytes, privateKeyPem);
        // What a device will check first, checked here with the key's public half before anything is published.
        const check = verifyReleaseManifest(
          manifestBytes,
          signature,
          [createPublicKey(privateKeyPem).export({ type: 'spki', format: 'pem' }).toString()],
          o.version,
        );
        if (!check.ok) throw new Error(`the release does not verify: ${check.rejection.message}`);
        await writeNewFile(files.manifest, manifestBytes, 0o644, 0o755);
        written.push(files.manifest);
        await writeNewFile(files.signature, signature, 0o644, 0o755);
        written.push(files.signature);
        ctx.log.info({ version: o.version, entries: packed.entries, size, sha256 }, 'release built');
        return {
          data: {
            version: o.version,
            ...files,
            sha256,
            size,
            entries: packed.entries,
            target,
            keyId: manifest.keyId,
            algorithm: manifest.algorithm,
          },
          text: [
            `release ${o.version}: ${packed.entries} entries, ${size} bytes, sha256 ${sha256}`,
            `signed with ${manifest.algorithm} key ${manifest.keyId}`,
            `runs on ${describeReleaseTarget(target)} (${source})`,
            ...Object.values(files),
            `next: ${ctx.hints.pifleet(
              `release upload ${Object.values(files)
                .map((f) => path.relative(ctx.io.cwd, f))
                .join(' ')} --bucket BUCKET`,
            )}`,
          ].join('\n'),
        };
      } catch (err) {
        // A release is whole or absent: what this run wrote goes, so a re-run starts clean.
        for (const file of written) await rm(file, { force: true });
        if (err instanceof FileExistsError) throw exists409(err.file);
        throw err;
      }
    },
  );
}
