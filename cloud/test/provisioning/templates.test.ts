import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DataFileError } from '../../src/adapters/sqlite-open.js';
import { ApiError } from '../../src/http/errors.js';
import {
  createProvisioningTemplates,
  evaluateCheckedTemplate,
  openLocalProvisioningTemplates,
  openSqliteProvisioningStore,
  PROVISIONING_TEMPLATE_LIMITS,
  PROVISIONING_TEMPLATES_FILE,
  type ProvisioningTemplates,
} from '../../src/provisioning/index.js';
import { removeDir, tempDir } from '../../src/testing/in-process-core.js';

/**
 * The templates service below the HTTP routes: what the device-side RegisterThing gets from
 * getTemplateForProvisioning, and the account's template limit (256 templates through HTTP would
 * only slow the control-plane suite down).
 */

const ROLE = 'arn:aws:iam::123456789012:role/Provision_role';
const HOOK = 'arn:aws:lambda:us-east-1:123456789012:function:pre-provision';
const CERT_ID = 'c'.repeat(64);

const body = (prefix: string) =>
  JSON.stringify({
    Parameters: { SerialNumber: { Type: 'String' } },
    Resources: {
      thing: { Type: 'AWS::IoT::Thing', Properties: { ThingName: { 'Fn::Sub': `${prefix}-\${SerialNumber}` } } },
      certificate: {
        Type: 'AWS::IoT::Certificate',
        Properties: { CertificateId: { Ref: 'AWS::IoT::Certificate::Id' } },
      },
    },
    DeviceConfiguration: { greeting: { 'Fn::Sub': 'hello ${SerialNumber}' } },
  });

let clock = 1_700_000_000_000;
const closers: (() => void)[] = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

function memoryService(): ProvisioningTemplates {
  const store = openSqliteProvisioningStore({ path: ':memory:' });
  closers.push(() => store.close());
  return createProvisioningTemplates({ store, region: 'us-east-1', accountId: '123456789012', now: () => clock });
}

describe('getTemplateForProvisioning', () => {
  it('gives the default version, checked, with enabled, type, role and hook; its plan names the thing', () => {
    const templates = memoryService();
    templates.create({
      templateName: 'claims',
      templateBody: body('v1'),
      provisioningRoleArn: ROLE,
      enabled: true,
      preProvisioningHook: { targetArn: HOOK },
    });
    templates.createVersion('claims', body('v2'), false);
    const t = templates.getTemplateForProvisioning('claims');
    expect(t).toMatchObject({
      templateName: 'claims',
      templateArn: 'arn:aws:iot:us-east-1:123456789012:provisioningtemplate/claims',
      enabled: true,
      type: 'FLEET_PROVISIONING',
      provisioningRoleArn: ROLE,
      preProvisioningHook: { targetArn: HOOK, payloadVersion: '2020-04-01' },
      defaultVersionId: 1,
      templateBody: body('v1'),
    });
    if (!t) throw new Error('no template');
    const result = evaluateCheckedTemplate(t.template, { SerialNumber: '0001' }, { certificateId: CERT_ID });
    expect(result).toMatchObject({
      ok: true,
      plan: {
        thing: { thingName: 'v1-0001' },
        certificate: { source: { kind: 'certificateId', certificateId: CERT_ID }, status: 'ACTIVE' },
        deviceConfiguration: { greeting: 'hello 0001' },
      },
    });

    templates.update('claims', { defaultVersionId: 2, enabled: false, removePreProvisioningHook: true });
    const moved = templates.getTemplateForProvisioning('claims');
    expect(moved).toMatchObject({ defaultVersionId: 2, enabled: false, templateBody: body('v2') });
    expect(moved).not.toHaveProperty('preProvisioningHook');
  });

  it('undefined for a name that is not a template or cannot be one', () => {
    const templates = memoryService();
    expect(templates.getTemplateForProvisioning('missing')).toBeUndefined();
    expect(templates.getTemplateForProvisioning('../x')).toBeUndefined();
    expect(templates.getTemplateForProvisioning('__proto__')).toBeUndefined();
  });

  it("openLocalProvisioningTemplates keeps them in the data directory's file", () => {
    const dir = tempDir('provisioning-local');
    try {
      const first = openLocalProvisioningTemplates({
        dataDir: dir,
        region: 'eu-west-1',
        accountId: '000000000000',
        now: () => clock,
      });
      first.templates.create({ templateName: 'kept', templateBody: body('k'), provisioningRoleArn: ROLE });
      first.close();
      const second = openLocalProvisioningTemplates({
        dataDir: dir,
        region: 'eu-west-1',
        accountId: '000000000000',
        now: () => clock,
      });
      expect(second.templates.getTemplateForProvisioning('kept')?.templateArn).toBe(
        'arn:aws:iot:eu-west-1:000000000000:provisioningtemplate/kept',
      );
      expect(second.routes.routes.map((r) => r.operation)).toHaveLength(9);
      second.close();
    } finally {
      removeDir(dir);
    }
  });
});

describe('the data file', () => {
  it('a file that is not a database fails with its path and the fix, and is left as it was', () => {
    const dir = tempDir('provisioning-corrupt');
    try {
      const file = join(dir, PROVISIONING_TEMPLATES_FILE);
      writeFileSync(file, 'not a database '.repeat(100));
      let err: unknown;
      try {
        openLocalProvisioningTemplates({
          dataDir: dir,
          region: 'us-east-1',
          accountId: '123456789012',
          now: () => clock,
        });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(DataFileError);
      expect(err).toMatchObject({ code: 'DATA_FILE_CORRUPT' });
      expect((err as Error).message).toContain(file);
      expect((err as Error).message).toContain('start again with an empty provisioning templates store');
      expect(readFileSync(file, 'utf8')).toContain('not a database');
    } finally {
      removeDir(dir);
    }
  });
});

describe('limits', () => {
  it(`an account holds ${PROVISIONING_TEMPLATE_LIMITS.maxTemplates} templates: the next is 410 LimitExceededException`, () => {
    const templates = memoryService();
    for (let i = 0; i < PROVISIONING_TEMPLATE_LIMITS.maxTemplates; i++) {
      templates.create({ templateName: `t${i}`, templateBody: body('x'), provisioningRoleArn: ROLE });
    }
    let err: unknown;
    try {
      templates.create({ templateName: 'one-more', templateBody: body('x'), provisioningRoleArn: ROLE });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ errorType: 'LimitExceededException', status: 410 });
    templates.delete('t0');
    templates.create({ templateName: 'one-more', templateBody: body('x'), provisioningRoleArn: ROLE });
  });

  it('lastModifiedDate follows the clock on update and on a new version; creationDate does not', () => {
    const templates = memoryService();
    templates.create({ templateName: 'dated', templateBody: body('x'), provisioningRoleArn: ROLE });
    clock += 5_000;
    templates.update('dated', { description: 'later' });
    expect(templates.describe('dated')).toMatchObject({ creationDate: clock - 5_000, lastModifiedDate: clock });
    clock += 5_000;
    templates.createVersion('dated', body('y'), false);
    expect(templates.describe('dated').lastModifiedDate).toBe(clock);
  });
});
