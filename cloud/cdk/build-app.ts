import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { App } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { type BundleName, bundleHandlers, handlerEntry, LAMBDA_NAMES, PROVISIONING_HOOK_BUNDLE } from './bundle.js';
import { DeploymentError } from './errors.js';
import { PROVISIONING_ROLE_POLICIES } from './fleet-provisioning.js';
import { PifleetStack } from './pifleet-stack.js';

/**
 * The CDK app: bundles the handlers once, then builds the stack from them. Settings come from
 * CDK context (`cdk.json`, or `-c key=value` on the command line):
 *
 * | context key               | default   | meaning                                                        |
 * |---------------------------|-----------|----------------------------------------------------------------|
 * | `pifleet:stackName`       | `Pifleet` | CloudFormation stack name                                      |
 * | `pifleet:retentionDays`   | 90        | days readings live before DynamoDB's TTL deletes them          |
 * | `pifleet:iotDataEndpoint` | looked up | the account's `…-ats.iot.<region>.amazonaws.com`, to skip the deploy-time lookup |
 * | `pifleet:logLevel`        | `info`    | pino level of every function                                   |
 * | `pifleet:fleetProvisioning` | `true`  | `false`: no provisioning template, hook, provisioning role or claimed thing group |
 * | `pifleet:provisioningTemplateName` | `pifleet-claim` | the template devices register through |
 * | `pifleet:claimedThingGroup` | `pifleet-claimed` | the thing group provisioned devices land in |
 * | `pifleet:allowedSerials`  | none      | serials the hook admits, comma-separated (none: every well-formed serial) |
 * | `pifleet:provisioningRolePolicy` | `scoped` | `managed`: AWSIoTThingsRegistration on the provisioning role instead of its scoped grants |
 * | `pifleet:alarmEmail`      | none      | an address subscribed to the alarm topic (SNS asks it to confirm) |
 * | `pifleet:silentAfterMinutes` | 15     | minutes after which a quiet thing counts as silent (the silent-devices alarm) |
 *
 * Fleet provisioning is on unless turned off: idle, its template, role and function cost nothing,
 * and no device can use the template before `pifleet claims create` makes a claim certificate.
 */
export const DEFAULT_STACK_NAME = 'Pifleet';

export interface BuildAppOptions {
  /** Cloud assembly directory (default: the CLI's, from `CDK_OUTDIR`, else `cdk.out`). */
  readonly outdir?: string;
  /** Extra context, as `-c` would give it (tests). */
  readonly context?: Record<string, string>;
}

export interface BuiltApp {
  readonly app: App;
  readonly stack: PifleetStack;
  readonly bundleBytes: Readonly<Partial<Record<BundleName, number>>>;
  /** Removes the temporary bundle directory; call after `app.synth()` (the assets are copied into the assembly by then). */
  dispose(): void;
}

export async function buildPifleetApp(options: BuildAppOptions = {}): Promise<BuiltApp> {
  const app = new App({
    analyticsReporting: false,
    ...(options.outdir === undefined ? {} : { outdir: options.outdir }),
    ...(options.context === undefined ? {} : { context: options.context }),
  });
  const setting = (key: string): string | undefined => {
    const value: unknown = app.node.tryGetContext(`pifleet:${key}`);
    return value === undefined || value === null || value === '' ? undefined : String(value);
  };
  const retention = setting('retentionDays');
  const retentionDays = retention === undefined ? undefined : Number(retention);
  if (retentionDays !== undefined && !(Number.isFinite(retentionDays) && retentionDays > 0)) {
    throw new DeploymentError('BAD_SETTING', 'context pifleet:retentionDays must be a positive number', {
      data: { retentionDays: retention },
    });
  }
  const iotDataEndpoint = setting('iotDataEndpoint');
  const logLevel = setting('logLevel');
  const fleetProvisioning = setting('fleetProvisioning') ?? 'true';
  if (fleetProvisioning !== 'true' && fleetProvisioning !== 'false') {
    throw new DeploymentError('BAD_SETTING', 'context pifleet:fleetProvisioning must be true or false', {
      data: { fleetProvisioning },
    });
  }
  const withProvisioning = fleetProvisioning === 'true';
  const allowed = setting('allowedSerials');
  const allowedSerials = allowed?.split(/[\s,]+/).filter((s) => s !== '');
  const templateName = setting('provisioningTemplateName');
  const rolePolicy = setting('provisioningRolePolicy');
  const provisioningRolePolicy = PROVISIONING_ROLE_POLICIES.find((p) => p === rolePolicy);
  if (rolePolicy !== undefined && provisioningRolePolicy === undefined) {
    throw new DeploymentError('BAD_SETTING', 'context pifleet:provisioningRolePolicy must be scoped or managed', {
      data: { provisioningRolePolicy: rolePolicy },
    });
  }
  const thingGroupName = setting('claimedThingGroup');
  const alarmEmail = setting('alarmEmail');
  const silentAfter = setting('silentAfterMinutes');
  const silentAfterMinutes = silentAfter === undefined ? undefined : Number(silentAfter);

  const bundleDir = mkdtempSync(path.join(os.tmpdir(), 'pifleet-cdk-bundles-'));
  const dispose = () => rmSync(bundleDir, { recursive: true, force: true });
  try {
    // The command handler is being written beside this app; until its source exists, deploy without it.
    const names: BundleName[] = LAMBDA_NAMES.filter((name) => name !== 'command' || existsSync(handlerEntry(name)));
    if (withProvisioning) names.push(PROVISIONING_HOOK_BUNDLE);
    const bundles = await bundleHandlers({ names, outDir: bundleDir });
    const hookDir = bundles.dirs[PROVISIONING_HOOK_BUNDLE];
    const stack = new PifleetStack(app, 'Pifleet', {
      stackName: setting('stackName') ?? DEFAULT_STACK_NAME,
      description: `pifleet: IoT rules, handlers, telemetry table, raw archive, command/query API, device policy${
        withProvisioning ? ', fleet provisioning by claim' : ''
      }`,
      handlerCode: (name) => {
        const dir = bundles.dirs[name];
        return dir === undefined ? undefined : lambda.Code.fromAsset(dir);
      },
      ...(retentionDays === undefined ? {} : { retentionDays }),
      ...(iotDataEndpoint === undefined ? {} : { iotDataEndpoint }),
      ...(logLevel === undefined ? {} : { logLevel }),
      ...(alarmEmail === undefined ? {} : { alarmEmail }),
      ...(silentAfterMinutes === undefined ? {} : { silentAfterMinutes }),
      ...(hookDir === undefined
        ? {}
        : {
            fleetProvisioning: {
              hookCode: lambda.Code.fromAsset(hookDir),
              ...(templateName === undefined ? {} : { templateName }),
              ...(thingGroupName === undefined ? {} : { thingGroupName }),
              ...(allowedSerials === undefined ? {} : { allowedSerials }),
              ...(provisioningRolePolicy === undefined ? {} : { provisioningRolePolicy }),
            },
          }),
    });
    return { app, stack, bundleBytes: bundles.bytes, dispose };
  } catch (err) {
    dispose();
    throw err;
  }
}
