import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BUNDLE_FILES, fleetThingNames, resolveTarget, runCli, splitEndpoint } from '@pifleet/provisioning';
import { SimulatorError } from '../../errors.js';
import { readBackViaQueryApi } from '../api-readback.js';
import type { CommandApiTarget } from '../command-load.js';
import type { FleetOptions } from '../options.js';
import type { FleetIdentity } from '../provision.js';
import type { FleetResult, PhaseResult } from '../result.js';
import { provisioningSummary } from '../summary.js';
import { type RunContext, type RunOutcome, runPhase } from './phase.js';
import type { PhaseTarget } from './phase-target.js';

/**
 * `--target aws`: provisions with the `pifleet` CLI's fleet path (AWS's control-plane rate
 * limits, retries, a journal), runs one phase against the account's IoT endpoint, reads back
 * through the query API, and deletes the things with the CLI.
 */
export async function runOnAws(ctx: RunContext): Promise<RunOutcome> {
  const { options: o, say, thingPrefix } = ctx;
  const api = await commandApi(o);
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'pifleet-fleet-aws-'));
  const bundles = path.join(workDir, 'bundles');
  const cli = pifleetCli(o, workDir);
  const phases: PhaseResult[] = [];
  let provisioning: FleetResult['provisioning'];
  let cleanup: FleetResult['cleanup'] = { removed: 0, failed: 0, kept: o.keep };
  let created = false;
  try {
    say(`provisioning ${o.devices} things in ${o.region} (pifleet fleet create)`, true);
    const t0 = Date.now();
    const made = await cli([
      'fleet',
      'create',
      '--prefix',
      thingPrefix,
      '--count',
      String(o.devices),
      '--out',
      bundles,
      '--concurrency',
      '16',
    ]);
    // Even a failed create may have made some things: the delete below runs either way.
    created = true;
    if (made.code !== 0) {
      throw new SimulatorError(
        'FLEET_AWS',
        `provisioning failed (exit ${made.code}): ${made.text.trim().split('\n').slice(-3).join(' / ')}`,
      );
    }
    provisioning = provisioningSummary(
      (Date.now() - t0) / 1000,
      o.devices,
      'RSA-2048 (CreateKeysAndCertificate)',
      bundles,
    );
    const { target, identities } = fromBundles(o, api, bundles, fleetThingNames(thingPrefix, o.devices));
    phases.push(await runPhase(target, identities, ctx));
  } finally {
    if (created && !o.keep) {
      say(`deleting the ${o.devices} things (pifleet fleet delete)`, true);
      const gone = await cli(['fleet', 'delete', '--prefix', thingPrefix, '--out', bundles, '--concurrency', '16']);
      cleanup = { removed: gone.code === 0 ? o.devices : 0, failed: gone.code === 0 ? 0 : o.devices, kept: false };
    }
    if (!o.keep) rmSync(workDir, { recursive: true, force: true });
  }
  return { phases, provisioning, cleanup };
}

/** The command and query API, signed with the credentials the provisioning CLI would use (region, profile, env). */
async function commandApi(o: FleetOptions): Promise<CommandApiTarget> {
  const region = o.region as string;
  const resolved = await resolveTarget({
    region,
    ...(o.profile ? { profile: o.profile } : {}),
    env: { ...process.env, PIFLEET_LOCAL: undefined },
    cwd: process.cwd(),
  });
  if (!resolved.credentials) {
    throw new SimulatorError(
      'FLEET_AWS',
      'the aws target signs command and query API calls: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN)',
    );
  }
  return { baseUrl: o.apiUrl as string, region, credentials: resolved.credentials };
}

/** Runs the `pifleet` CLI in process against the run's region and profile; its output is kept for errors. */
function pifleetCli(o: FleetOptions, cwd: string) {
  const global = ['--region', o.region as string, ...(o.profile ? ['--profile', o.profile] : [])];
  return async (argv: readonly string[]) => {
    const out: string[] = [];
    const sink = { write: (c: string) => out.push(c) };
    const code = await runCli([...argv, ...global], { stdout: sink, stderr: sink, env: process.env, cwd });
    return { code, text: out.join('') };
  };
}

/**
 * The devices' identities from the bundles `pifleet fleet create` wrote, and the phase target: the
 * endpoint and CA the bundles name (or the `--mqtt-endpoint` / `--ca-file` overrides).
 */
function fromBundles(
  o: FleetOptions,
  api: CommandApiTarget,
  bundles: string,
  thingNames: readonly string[],
): { target: PhaseTarget; identities: FleetIdentity[] } {
  const identities = thingNames.map((thingName) => ({
    thingName,
    certFile: path.join(bundles, thingName, BUNDLE_FILES.certificate),
    keyFile: path.join(bundles, thingName, BUNDLE_FILES.privateKey),
    certificateId: '',
    certificateArn: '',
  }));
  const first = thingNames[0] as string;
  const config = JSON.parse(readFileSync(path.join(bundles, first, BUNDLE_FILES.agentConfig), 'utf8')) as {
    endpoint: string;
    port: number;
  };
  const override = o.mqttEndpoint ? splitEndpoint(o.mqttEndpoint) : undefined;
  const from = Date.now() - 60_000;
  const target: PhaseTarget = {
    name: 'aws',
    endpoint: override?.host ?? config.endpoint,
    port: override?.port ?? config.port,
    caFile: o.caFile ?? path.join(bundles, first, BUNDLE_FILES.ca),
    shadow: true,
    command: api,
    readBackApi: () => readBackViaQueryApi(api, thingNames, { from, to: Date.now() + 60_000 }),
    faults: o.faults,
  };
  return { target, identities };
}
