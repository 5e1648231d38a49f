import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { build } from 'esbuild';
import { DeploymentError } from './errors.js';

/**
 * Bundles the Lambda handlers with esbuild, locally and offline (no Docker, no download): one
 * directory per function holding `index.mjs` (ESM, every dependency inlined, the AWS SDK too, so
 * the function runs the SDK version the tests ran, not the one the runtime ships: `nodejs24.x`
 * includes an SDK v3 pinned at the runtime's release, which the bundle never loads) and its
 * source map. The CDK app turns each directory into a `Code.fromAsset`; the asset hash is the
 * hash of the bundle, so an unchanged handler is not uploaded again.
 */

/** The stack's handler functions, by name (each has the telemetry table in its environment). */
export const LAMBDA_NAMES = ['ingest', 'presence', 'query', 'command', 'silent-devices'] as const;
export type LambdaName = (typeof LAMBDA_NAMES)[number];

/**
 * The pre-provisioning hook, bundled as the handlers are but deployed only with fleet provisioning
 * (`fleet-provisioning.ts`): it needs no table, so it is kept out of {@link LAMBDA_NAMES}.
 */
export const PROVISIONING_HOOK_BUNDLE = 'provisioning-hook';

/** Everything {@link bundleHandlers} can bundle: a file `src/handlers/<name>.ts` each. */
export type BundleName = LambdaName | typeof PROVISIONING_HOOK_BUNDLE;

/** The `handler` setting of every function: `index.mjs`, export `handler`. */
export const LAMBDA_HANDLER = 'index.handler';

/**
 * The runtime of every function: Node.js 24 (`nodejs24.x`, on Amazon Linux 2023; Lambda deprecates
 * it on 30 April 2028, `nodejs22.x` on 30 April 2027). A concrete version, not `NODEJS_LATEST`,
 * so a CDK upgrade never moves the functions to a Node the handlers were not tested on. From
 * Node.js 24, Lambda refuses at init a handler declared with a third (callback) parameter
 * (`Runtime.CallbackHandlerDeprecated`); ours take the event only and return a promise.
 */
export const LAMBDA_RUNTIME = lambda.Runtime.NODEJS_24_X;

/**
 * esbuild's target for a Lambda Node.js runtime (`nodejs24.x` → `node24`), so the bundle is
 * lowered for the Node that runs it and the two can never name different versions.
 */
export function esbuildTargetOf(runtime: lambda.Runtime): string {
  const match = /^nodejs(\d+)\.x$/.exec(runtime.name);
  if (match === null) {
    throw new DeploymentError('BAD_SETTING', `not a Node.js Lambda runtime: ${runtime.name}`, {
      data: { runtime: runtime.name },
    });
  }
  return `node${match[1]}`;
}

const cloudRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Source file of each function; each exports a lazily built AWS `handler`. */
export function handlerEntry(name: BundleName): string {
  return path.join(cloudRoot, 'src', 'handlers', `${name}.ts`);
}

/**
 * Bundled CommonJS dependencies (pino, parts of the SDK) call `require` for Node built-ins; an
 * ES module has no `require`, so the bundle defines one.
 */
const REQUIRE_SHIM =
  "import { createRequire as __pifleetCreateRequire } from 'node:module';\n" +
  'const require = __pifleetCreateRequire(import.meta.url);';

export interface BundleOptions {
  readonly names: readonly BundleName[];
  /** Output root; each function gets `<outDir>/<name>/index.mjs`. */
  readonly outDir: string;
  /** Minify (default true): smaller uploads and faster cold starts; names are kept for stack traces. */
  readonly minify?: boolean;
}

export interface BundleResult {
  /** Directory of each function's bundle. */
  readonly dirs: Readonly<Partial<Record<BundleName, string>>>;
  /** Size of each `index.mjs`, bytes. */
  readonly bytes: Readonly<Partial<Record<BundleName, number>>>;
}

/** Bundles the named handlers; throws {@link DeploymentError} naming a missing entry or the esbuild errors. */
export async function bundleHandlers(options: BundleOptions): Promise<BundleResult> {
  const missing = options.names.filter((name) => !existsSync(handlerEntry(name)));
  if (missing.length > 0) {
    throw new DeploymentError('HANDLER_MISSING', `handler source missing: ${missing.join(', ')}`, {
      data: { missing, entries: missing.map(handlerEntry) },
    });
  }
  const dirs: Partial<Record<BundleName, string>> = {};
  const bytes: Partial<Record<BundleName, number>> = {};
  // One esbuild run per function (not one run with several entry points): esbuild would otherwise
  // only write each entry's own file, but separate runs keep every directory self-contained.
  await Promise.all(
    options.names.map(async (name) => {
      const dir = path.join(options.outDir, name);
      let result: Awaited<ReturnType<typeof build>>;
      try {
        result = await build({
          entryPoints: [handlerEntry(name)],
          outfile: path.join(dir, 'index.mjs'),
          bundle: true,
          platform: 'node',
          target: esbuildTargetOf(LAMBDA_RUNTIME),
          format: 'esm',
          conditions: ['@pifleet/source'],
          mainFields: ['module', 'main'],
          minify: options.minify ?? true,
          keepNames: true,
          sourcemap: 'linked',
          sourcesContent: false,
          legalComments: 'none',
          banner: { js: REQUIRE_SHIM },
          metafile: true,
          logLevel: 'silent',
        });
      } catch (err) {
        throw new DeploymentError('BUNDLE_FAILED', `esbuild could not bundle the ${name} handler`, {
          cause: err,
          data: { name, entry: handlerEntry(name) },
        });
      }
      dirs[name] = dir;
      const output = Object.entries(result.metafile?.outputs ?? {}).find(([file]) => file.endsWith('index.mjs'));
      bytes[name] = output?.[1].bytes ?? 0;
    }),
  );
  return { dirs, bytes };
}
