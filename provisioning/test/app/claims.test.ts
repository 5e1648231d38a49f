import fs from 'node:fs';
import path from 'node:path';
import {
  CreateProvisioningTemplateCommand,
  DescribeProvisioningTemplateCommand,
  DescribeThingGroupCommand,
  type IoTClient,
} from '@aws-sdk/client-iot';
import { EXIT, pifleetClaimTemplateBody } from '@pifleet/protocol';
import type { RunningCoreProcess } from '@pifleet/testkit';
import { describe, expect, it } from 'vitest';
import { createAwsIotRegistry } from '../../src/adapters/aws-iot-registry.js';
import { createAwsIotTemplates } from '../../src/adapters/aws-iot-templates.js';
import { readBundle, writeBundleFile } from '../../src/adapters/bundle-files.js';
import { readClaimBundle } from '../../src/adapters/claim-bundle-files.js';
import { systemClock } from '../../src/adapters/system-clock.js';
import { createClaims } from '../../src/app/claims.js';
import { AMAZON_ROOT_CA_1_PEM } from '../../src/core/amazon-root-ca.js';
import { CLAIM_BUNDLE_FILES } from '../../src/core/claim-bundle.js';
import { ApiRateLimiter } from '../../src/core/rate-limiter.js';
import { ConflictError, UsageError } from '../../src/errors.js';
import { createLogger } from '../../src/logger.js';
import { localCoreWithIotForFile } from '../helpers.js';

/**
 * `createClaims` with the real SDK adapters against the local core, as the AWS target runs it
 * (the target kind is the procedure's input: the role is required and the CA is Amazon's), which
 * the CLI tests cannot reach without AWS.
 */

let core: RunningCoreProcess;
let iot: IoTClient;
const { cwd } = localCoreWithIotForFile((started, client) => {
  core = started;
  iot = client;
});

const ROLE = 'arn:aws:iam::123456789012:role/pifleet-provisioning';

function claims() {
  const common = { client: iot, limiter: new ApiRateLimiter({ rates: {}, clock: systemClock }), clock: systemClock };
  return createClaims({
    registry: createAwsIotRegistry(common),
    templates: createAwsIotTemplates(common),
    target: { kind: 'aws', caPem: AMAZON_ROOT_CA_1_PEM, mqtt: core.info.mqtt },
    files: { readBundle, readClaimBundle, writeBundleFile },
    log: createLogger({ level: 'silent', destination: { write: () => undefined } }),
  });
}

const failureOf = (work: Promise<unknown>) =>
  work.then(
    () => undefined,
    (err: unknown) => err,
  );

const exists = (send: Promise<unknown>) =>
  send.then(
    () => true,
    (err: { name?: string }) => (err.name === 'ResourceNotFoundException' ? false : Promise.reject(err)),
  );

describe('claims create against AWS', () => {
  it('needs a role to create the template, and refuses before creating anything (64)', async () => {
    const bundleDir = path.join(cwd(), 'b');
    fs.mkdirSync(bundleDir);
    const err = await failureOf(
      claims().create({ templateName: 'aws-no-role', thingGroup: 'aws-no-role-group', bundleDir, force: false }),
    );
    expect(err).toBeInstanceOf(UsageError);
    expect(err).toMatchObject({
      exitCode: EXIT.usage,
      message: 'creating template aws-no-role in AWS needs --role-arn',
    });
    expect((err as UsageError).hint).toContain('ProvisioningRoleArn');
    expect(await exists(iot.send(new DescribeThingGroupCommand({ thingGroupName: 'aws-no-role-group' })))).toBe(false);
    expect(fs.readdirSync(bundleDir)).toEqual([]);
  });

  it('creates the template with the role given, and the bundle trusts Amazon Root CA 1', async () => {
    const bundleDir = path.join(cwd(), 'b');
    const r = await claims().create({
      templateName: 'aws-role',
      thingGroup: 'aws-role-group',
      bundleDir,
      force: false,
      roleArn: ROLE,
    });
    const template = await iot.send(new DescribeProvisioningTemplateCommand({ templateName: 'aws-role' }));
    expect(template.provisioningRoleArn).toBe(ROLE);
    expect(r.templateArn).toBe(template.templateArn);
    expect(fs.readFileSync(path.join(bundleDir, CLAIM_BUNDLE_FILES.ca), 'utf8')).toBe(AMAZON_ROOT_CA_1_PEM);
  });

  it('needs no role when the template exists (made by the CDK stack)', async () => {
    await iot.send(
      new CreateProvisioningTemplateCommand({
        templateName: 'aws-cdk-made',
        templateBody: pifleetClaimTemplateBody({ thingGroup: 'cdk-group' }),
        provisioningRoleArn: ROLE,
        enabled: true,
      }),
    );
    const r = await claims().create({
      templateName: 'aws-cdk-made',
      thingGroup: 'cdk-group',
      bundleDir: path.join(cwd(), 'b'),
      force: false,
    });
    expect(r.reused).toContain('template aws-cdk-made');
    expect(r.notes).toEqual([expect.stringMatching(/^a new claim certificate was made/)]);
  });

  it('says when the existing template differs or is disabled, and keeps it', async () => {
    await iot.send(
      new CreateProvisioningTemplateCommand({
        templateName: 'aws-other',
        templateBody: pifleetClaimTemplateBody({ thingGroup: 'someone-elses' }),
        provisioningRoleArn: ROLE,
        enabled: false,
      }),
    );
    const r = await claims().create({
      templateName: 'aws-other',
      thingGroup: 'mine',
      bundleDir: path.join(cwd(), 'b'),
      force: false,
    });
    expect(r.notes).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^template aws-other exists with another body and was kept/),
        'template aws-other is disabled: devices cannot provision until it is enabled',
      ]),
    );
  });

  it('refuses a just-in-time provisioning template of that name (65), creating nothing', async () => {
    await iot.send(
      new CreateProvisioningTemplateCommand({
        templateName: 'aws-jitp',
        templateBody: JSON.stringify({
          Resources: {
            thing: { Type: 'AWS::IoT::Thing', Properties: { ThingName: { Ref: 'AWS::IoT::Certificate::CommonName' } } },
          },
        }),
        provisioningRoleArn: ROLE,
        type: 'JITP',
      }),
    );
    const bundleDir = path.join(cwd(), 'b');
    fs.mkdirSync(bundleDir);
    const err = await failureOf(
      claims().create({ templateName: 'aws-jitp', thingGroup: 'jitp-group', bundleDir, force: false, roleArn: ROLE }),
    );
    expect(err).toBeInstanceOf(ConflictError);
    expect(err).toMatchObject({ code: 'TEMPLATE_TYPE', exitCode: EXIT.dataError });
    expect(await exists(iot.send(new DescribeThingGroupCommand({ thingGroupName: 'jitp-group' })))).toBe(false);
    expect(fs.readdirSync(bundleDir)).toEqual([]);
  });
});
