import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildPifleetApp, DEFAULT_STACK_NAME } from '../../cdk/build-app.js';
import { bundleHandlers, LAMBDA_NAMES, type LambdaName } from '../../cdk/bundle.js';
import { createTelemetryTable } from '../../src/adapters/dynamodb-telemetry-store.js';
import { startDynalite } from '../../src/testing/dynalite.js';
import { batchOf, readingsFrom } from '../../src/testing/telemetry-store-suite.js';
import { type Resources, render } from './template-helpers.js';

/**
 * The real app, once: esbuild bundles every handler, the stack takes the bundles as assets, and
 * the cloud assembly is written to a temp dir, as `cdk synth` does (offline, no account). Then
 * each bundled function is loaded by a plain `node` outside the workspace, to show the bundle
 * needs nothing else and builds its dependencies only when invoked.
 */
const run = promisify(execFile);
const cloudRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const outdir = mkdtempSync(path.join(os.tmpdir(), 'pifleet-cdk-app-'));
let template: { Resources: Resources; Outputs: Record<string, unknown> };
let manifest: { artifacts: Record<string, { type: string; properties?: Record<string, unknown> }> };
let bundleBytes: Partial<Record<LambdaName, number>>;

beforeAll(async () => {
  const built = await buildPifleetApp({
    outdir,
    context: { 'pifleet:retentionDays': '30', 'pifleet:stackName': 'pifleet-test', 'pifleet:logLevel': 'debug' },
  });
  try {
    built.app.synth();
  } finally {
    built.dispose();
  }
  bundleBytes = built.bundleBytes;
  template = JSON.parse(readFileSync(path.join(outdir, `${built.stack.artifactId}.template.json`), 'utf8'));
  manifest = JSON.parse(readFileSync(path.join(outdir, 'manifest.json'), 'utf8'));
}, 180_000);

afterAll(() => rmSync(outdir, { recursive: true, force: true }));

/** The assembly directory holding a function's code asset. */
function assetDirOf(functionDescription: RegExp): string {
  const fn = Object.values(template.Resources).find(
    (r) => r.Type === 'AWS::Lambda::Function' && functionDescription.test(String(r.Properties?.Description)),
  );
  const code = (fn?.Properties?.Code ?? {}) as { S3Key?: unknown };
  const key = String(render(code.S3Key));
  const hash = key.replace(/\.zip$/, '');
  return path.join(outdir, `asset.${hash}`);
}

const descriptions: Record<LambdaName, RegExp> = {
  ingest: /^pifleet: telemetry batches/,
  presence: /^pifleet: IoT lifecycle events/,
  query: /^pifleet: telemetry history/,
  command: /^pifleet: desired state/,
  'silent-devices': /^pifleet: every 5 minutes/,
};

describe('the CDK app (cdk/app.ts)', () => {
  it('synthesizes one environment-agnostic stack under the configured name', () => {
    const stacks = Object.values(manifest.artifacts).filter((a) => a.type === 'aws:cloudformation:stack');
    expect(stacks).toHaveLength(1);
    expect(stacks[0]?.properties?.stackName).toBe('pifleet-test');
    expect(JSON.stringify(stacks[0])).toContain('aws://unknown-account/unknown-region');
    expect(DEFAULT_STACK_NAME).toBe('Pifleet');
    // Version reporting off: no AWS::CDK::Metadata resource.
    expect(Object.values(template.Resources).filter((r) => r.Type === 'AWS::CDK::Metadata')).toEqual([]);
  });

  it('deploys every function on Node.js 24, the four handlers on arm64', () => {
    const fns = Object.values(template.Resources).filter((r) => r.Type === 'AWS::Lambda::Function');
    expect(fns.map((r) => r.Properties?.Runtime)).toEqual(fns.map(() => 'nodejs24.x'));
    for (const name of LAMBDA_NAMES) {
      const fn = fns.find((r) => descriptions[name].test(String(r.Properties?.Description)));
      expect(fn?.Properties?.Architectures, name).toEqual(['arm64']);
    }
  });

  it('passes context settings to the functions', () => {
    const env = (name: LambdaName) => {
      const fn = Object.values(template.Resources).find(
        (r) => r.Type === 'AWS::Lambda::Function' && descriptions[name].test(String(r.Properties?.Description)),
      );
      return ((fn?.Properties?.Environment ?? {}) as { Variables?: Record<string, unknown> }).Variables;
    };
    expect(env('ingest')).toMatchObject({
      RETENTION_DAYS: '30',
      LOG_LEVEL: 'debug',
      NODE_OPTIONS: '--enable-source-maps',
    });
    expect(env('query')?.LOG_LEVEL).toBe('debug');
  });

  it.each(LAMBDA_NAMES)('%s: the asset is a minified ESM bundle with a source map', (name) => {
    const dir = assetDirOf(descriptions[name]);
    const size = statSync(path.join(dir, 'index.mjs')).size;
    expect(size).toBe(bundleBytes[name]);
    expect(size).toBeGreaterThan(50_000); // the SDK is inside
    expect(size).toBeLessThan(3_000_000);
    expect(existsSync(path.join(dir, 'index.mjs.map'))).toBe(true);
  });

  it.each(LAMBDA_NAMES)(
    '%s: the bundle loads in plain node outside the workspace, and builds its dependencies only when invoked',
    async (name) => {
      const dir = assetDirOf(descriptions[name]);
      // arity: Lambda's Node.js 24 runtime refuses a handler with a third (callback) parameter at init.
      const script = `
      const m = await import(${JSON.stringify(path.join(dir, 'index.mjs'))});
      const out = { type: typeof m.handler, arity: m.handler.length };
      try { await m.handler({ requestContext: { requestId: 'r', http: { method: 'GET' }, stage: '$default' }, rawPath: '/' }); out.result = 'resolved'; }
      catch (err) { out.error = { name: err.name, code: err.code }; }
      console.log(JSON.stringify(out));`;
      // No TABLE_NAME: the handler must fail on its first invocation with its config error, not at import.
      const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], {
        cwd: dir,
        env: { PATH: process.env.PATH ?? '' },
        timeout: 30_000,
      });
      expect(JSON.parse(stdout)).toEqual({
        type: 'function',
        arity: 1,
        error: { name: 'HandlerConfigError', code: 'HANDLER_CONFIG' },
      });
    },
  );

  it('the bundled ingest handler prints one EMF line per invocation (Powertools inside the bundle)', async () => {
    const dynalite = await startDynalite();
    try {
      const client = dynalite.client();
      await createTelemetryTable(client, 'pifleet-emf');
      const sealedAt = Date.now() - 1_000;
      const batch = batchOf('pi-01', 1, readingsFrom(sealedAt - 10_000, 3), undefined, sealedAt);
      const script = `
      const m = await import(${JSON.stringify(path.join(assetDirOf(descriptions.ingest), 'index.mjs'))});
      const batch = ${JSON.stringify(batch)};
      await m.handler(batch);
      await m.handler(batch);
      await m.handler({ v: 1 }).catch((err) => process.stdout.write(JSON.stringify({ rejected: err.code }) + '\\n'));`;
      const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], {
        cwd: assetDirOf(descriptions.ingest),
        env: {
          PATH: process.env.PATH ?? '',
          TABLE_NAME: 'pifleet-emf',
          LOG_LEVEL: 'silent',
          AWS_REGION: 'us-east-1',
          AWS_ACCESS_KEY_ID: 'local',
          AWS_SECRET_ACCESS_KEY: 'local',
          AWS_ENDPOINT_URL_DYNAMODB: dynalite.endpoint,
        },
        timeout: 30_000,
      });
      const lines = stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      const emf = lines.filter((l) => '_aws' in l);
      expect(emf.map((l) => (l._aws as { CloudWatchMetrics: unknown }).CloudWatchMetrics)).toEqual([
        [expect.objectContaining({ Namespace: 'pifleet', Dimensions: [['service']] })],
        [expect.objectContaining({ Namespace: 'pifleet', Dimensions: [['service']] })],
        [expect.objectContaining({ Namespace: 'pifleet', Dimensions: [['service']] })],
      ]);
      const [stored, duplicate, poison] = emf.map(({ _aws, ...values }) => values);
      expect(stored).toEqual({ service: 'ingest', BatchesStored: 1, ReadingsStored: 3, IngestLag: expect.any(Number) });
      expect(stored?.IngestLag).toBeGreaterThanOrEqual(1_000);
      expect(stored?.IngestLag).toBeLessThan(60_000);
      expect(duplicate).toEqual({ service: 'ingest', BatchesDeduplicated: 1 });
      expect(poison).toEqual({ service: 'ingest', PoisonBatches: 1 });
      expect(lines.at(-1)).toEqual({ rejected: 'POISON_BATCH' });
    } finally {
      await dynalite.stop();
    }
  });

  it('refuses a bad retention setting before bundling anything', async () => {
    await expect(buildPifleetApp({ outdir, context: { 'pifleet:retentionDays': 'soon' } })).rejects.toMatchObject({
      name: 'DeploymentError',
      code: 'BAD_SETTING',
    });
  });

  it('bundling names the handler whose source is missing', async () => {
    const out = mkdtempSync(path.join(os.tmpdir(), 'pifleet-cdk-missing-'));
    try {
      await expect(bundleHandlers({ names: ['nope' as LambdaName], outDir: out })).rejects.toMatchObject({
        code: 'HANDLER_MISSING',
        data: { missing: ['nope'] },
      });
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('cdk.json runs this app offline, with telemetry, notices and version reporting off', () => {
    const cdkJson = JSON.parse(readFileSync(path.join(cloudRoot, 'cdk.json'), 'utf8')) as Record<string, unknown>;
    expect(cdkJson.app).toBe('npx tsx --conditions=@pifleet/source cdk/app.ts');
    expect(existsSync(path.join(cloudRoot, 'cdk', 'app.ts'))).toBe(true);
    expect(cdkJson).toMatchObject({ versionReporting: false, notices: false, context: { 'cli-telemetry': false } });
  });
});
