import {
  CreateProvisioningTemplateCommand,
  type CreateProvisioningTemplateCommandInput,
  CreateProvisioningTemplateVersionCommand,
  DeleteConflictException,
  DeleteProvisioningTemplateCommand,
  DeleteProvisioningTemplateVersionCommand,
  DescribeProvisioningTemplateCommand,
  DescribeProvisioningTemplateVersionCommand,
  InvalidRequestException,
  type IoTClient,
  ListProvisioningTemplatesCommand,
  ListProvisioningTemplateVersionsCommand,
  ResourceAlreadyExistsException,
  ResourceNotFoundException,
  UpdateProvisioningTemplateCommand,
  VersionsLimitExceededException,
} from '@aws-sdk/client-iot';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_TEMPLATE_BODY_CHARS } from '../../src/provisioning/template-language.js';
import { type InProcessCore, removeDir, startInProcessCore, tempDir } from '../../src/testing/in-process-core.js';
import { rejection } from '../http/harness.js';
import { BULK_CSR_TEMPLATE } from './aws-examples.js';

/**
 * The provisioning-template operations through the real `@aws-sdk/client-iot` against the
 * in-process core: each operation's wire form, and each refusal with the exception the client maps
 * and its HTTP status.
 */

const ROLE = 'arn:aws:iam::123456789012:role/Provision_role';
const HOOK = 'arn:aws:lambda:us-east-1:123456789012:function:pre-provision';

/** A fleet template naming the thing from a SerialNumber parameter; `tag` makes bodies differ. */
function body(tag = 'v1'): string {
  return JSON.stringify({
    Parameters: { SerialNumber: { Type: 'String' } },
    Resources: {
      thing: {
        Type: 'AWS::IoT::Thing',
        Properties: { ThingName: { 'Fn::Join': ['-', ['pi', { Ref: 'SerialNumber' }]] }, AttributePayload: { tag } },
      },
      certificate: {
        Type: 'AWS::IoT::Certificate',
        Properties: { CertificateId: { Ref: 'AWS::IoT::Certificate::Id' } },
      },
      policy: { Type: 'AWS::IoT::Policy', Properties: { PolicyName: 'pifleet-device' } },
    },
  });
}

let dir = '';
let run: InProcessCore;
let iot: IoTClient;
let arnPrefix = '';
let n = 0;
const unique = (prefix: string) => `${prefix}-${++n}`;

beforeAll(async () => {
  dir = tempDir('provisioning-templates');
  run = await startInProcessCore(dir);
  iot = run.iot;
  arnPrefix = `arn:aws:iot:${run.info.region}:${run.core.services.account.accountId}`;
});
afterAll(async () => {
  await run?.stop();
  if (dir) removeDir(dir);
});

async function create(input: Partial<CreateProvisioningTemplateCommandInput> = {}): Promise<string> {
  const templateName = input.templateName ?? unique('tpl');
  await iot.send(
    new CreateProvisioningTemplateCommand({ templateBody: body(), provisioningRoleArn: ROLE, ...input, templateName }),
  );
  return templateName;
}

const describeTemplate = (templateName: string) => iot.send(new DescribeProvisioningTemplateCommand({ templateName }));

describe('CreateProvisioningTemplate and DescribeProvisioningTemplate', () => {
  it('stores every field and describes it back; enabled defaults to false, type to FLEET_PROVISIONING', async () => {
    const templateName = unique('full');
    const before = Math.floor(Date.now() / 1000);
    const created = await iot.send(
      new CreateProvisioningTemplateCommand({
        templateName,
        description: 'A provisioning template for widgets',
        templateBody: body(),
        enabled: true,
        provisioningRoleArn: ROLE,
        preProvisioningHook: { targetArn: HOOK, payloadVersion: '2020-04-01' },
        tags: [{ Key: 'team', Value: 'fleet' }],
      }),
    );
    expect(created).toMatchObject({
      templateArn: `${arnPrefix}:provisioningtemplate/${templateName}`,
      templateName,
      defaultVersionId: 1,
    });
    const d = await describeTemplate(templateName);
    expect(d).toMatchObject({
      templateArn: `${arnPrefix}:provisioningtemplate/${templateName}`,
      templateName,
      description: 'A provisioning template for widgets',
      defaultVersionId: 1,
      templateBody: body(),
      enabled: true,
      provisioningRoleArn: ROLE,
      preProvisioningHook: { targetArn: HOOK, payloadVersion: '2020-04-01' },
      type: 'FLEET_PROVISIONING',
    });
    expect(d.creationDate).toBeInstanceOf(Date);
    expect(Math.floor((d.creationDate?.getTime() ?? 0) / 1000)).toBeGreaterThanOrEqual(before);
    expect(d.lastModifiedDate?.getTime()).toBe(d.creationDate?.getTime());

    const minimal = await create();
    const m = await describeTemplate(minimal);
    expect(m).toMatchObject({ enabled: false, type: 'FLEET_PROVISIONING' });
    expect(m.description).toBeUndefined();
    expect(m.preProvisioningHook).toBeUndefined();
  });

  it("a hook without payloadVersion gets AWS's one version; a JITP template takes AWS's CSR example", async () => {
    const name = await create({ preProvisioningHook: { targetArn: HOOK } });
    expect((await describeTemplate(name)).preProvisioningHook).toEqual({
      targetArn: HOOK,
      payloadVersion: '2020-04-01',
    });
    const jitp = await create({ templateBody: BULK_CSR_TEMPLATE, type: 'JITP' });
    expect(await describeTemplate(jitp)).toMatchObject({ type: 'JITP', templateBody: BULK_CSR_TEMPLATE });
  });

  it('a second template of the same name: 409 ResourceAlreadyExistsException, the first kept', async () => {
    const name = await create();
    const err = await rejection(
      create({ templateName: name, templateBody: body('other') }),
      ResourceAlreadyExistsException,
      409,
    );
    expect((err as ResourceAlreadyExistsException).resourceId).toBe(name);
    expect((await describeTemplate(name)).templateBody).toBe(body());
  });

  it.each([
    ['not JSON', '{"Resources":', /not valid JSON/],
    [
      'over 10,240 characters',
      `${body().slice(0, -1)},"DeviceConfiguration":{"p":"${'x'.repeat(MAX_TEMPLATE_BODY_CHARS)}"}}`,
      /longer than 10240/,
    ],
    ['10,000 levels deep', `{"Resources":${'['.repeat(5_000)}${']'.repeat(5_000)}}`, /nested more than 64 levels/],
    ['an unknown function', body().replace('Fn::Join', 'Fn::Concat'), /unknown or unsupported function 'Fn::Concat'/],
    [
      'Fn::GetAtt',
      body().replace('{"Ref":"SerialNumber"}', '{"Fn::GetAtt":["thing","Arn"]}'),
      /Fn::GetAtt is not supported/,
    ],
    ['a CSR in a fleet provisioning template', BULK_CSR_TEMPLATE, /gives its certificate by CertificateId/],
    [
      'a condition naming itself',
      JSON.stringify({ Conditions: { A: { Condition: 'A' } }, Resources: {} }),
      /refers to itself/,
    ],
  ])(
    'a template body that is %s: 400 InvalidRequestException with the reason, nothing stored',
    async (_what, templateBody, message) => {
      const templateName = unique('bad');
      const err = await rejection(create({ templateName, templateBody }), InvalidRequestException, 400);
      expect(err.message).toMatch(message);
      await rejection(describeTemplate(templateName), ResourceNotFoundException, 404);
    },
  );

  it.each<[string, Partial<CreateProvisioningTemplateCommandInput>, RegExp]>([
    ['a name with a dot', { templateName: 'a.b' }, /'templateName' must be 1 to 36 characters/],
    ['a 37-character name', { templateName: 'a'.repeat(37) }, /'templateName' must be 1 to 36/],
    [
      'no provisioningRoleArn',
      { provisioningRoleArn: undefined as unknown as string },
      /'provisioningRoleArn' is required/,
    ],
    [
      'a role ARN under 20 characters',
      { provisioningRoleArn: 'arn:aws:iam::1:r' },
      /'provisioningRoleArn' must be 20 to 2048/,
    ],
    ['no templateBody', { templateBody: undefined as unknown as string }, /'templateBody' is required/],
    ['a description with a control character', { description: 'a\u0007b' }, /'description' must be at most 500/],
    ['a 501-character description', { description: 'd'.repeat(501) }, /'description' must be at most 500/],
    [
      'a hook payloadVersion that is not a date',
      { preProvisioningHook: { targetArn: HOOK, payloadVersion: 'v1' } },
      /payloadVersion/,
    ],
    [
      'a 33-character hook payloadVersion',
      { preProvisioningHook: { targetArn: HOOK, payloadVersion: '2'.repeat(33) } },
      /payloadVersion/,
    ],
    [
      'a hook on a JITP template',
      { type: 'JITP', templateBody: BULK_CSR_TEMPLATE, preProvisioningHook: { targetArn: HOOK } },
      /only for FLEET_PROVISIONING/,
    ],
    ['an unknown type', { type: 'BULK' as 'JITP' }, /'type' must be FLEET_PROVISIONING or JITP/],
  ])('%s: 400 InvalidRequestException', async (_what, input, message) => {
    const err = await rejection(create(input), InvalidRequestException, 400);
    expect(err.message).toMatch(message);
  });

  it('__proto__ keys in a template body are stored and described as sent', async () => {
    const templateBody = body().replace('"tag":"v1"', '"__proto__":"v1"');
    const name = await create({ templateBody });
    expect((await describeTemplate(name)).templateBody).toBe(templateBody);
    expect(({} as Record<string, unknown>).v1).toBeUndefined();
  });

  it('an unknown template: 404 ResourceNotFoundException; an invalid name: 400', async () => {
    await rejection(describeTemplate('nope'), ResourceNotFoundException, 404);
    await rejection(describeTemplate('no.pe'), InvalidRequestException, 400);
  });
});

describe('ListProvisioningTemplates', () => {
  it('pages in creation order with maxResults and nextToken', async () => {
    const listAll = async (maxResults: number) => {
      const names: string[] = [];
      let nextToken: string | undefined;
      let pages = 0;
      do {
        const page = await iot.send(new ListProvisioningTemplatesCommand({ maxResults, nextToken }));
        expect(page.templates?.length ?? 0).toBeLessThanOrEqual(maxResults);
        names.push(...(page.templates ?? []).map((t) => t.templateName ?? ''));
        nextToken = page.nextToken;
        pages += 1;
      } while (nextToken !== undefined);
      return { names, pages };
    };
    const mine = [await create({ description: 'listed', enabled: true }), await create(), await create()];
    const { names, pages } = await listAll(2);
    expect(names.filter((x) => mine.includes(x))).toEqual(mine);
    expect(pages).toBe(Math.ceil(names.length / 2));
    expect(new Set(names).size).toBe(names.length);
    expect((await listAll(250)).names).toEqual(names);

    const first = (await iot.send(new ListProvisioningTemplatesCommand({}))).templates?.find(
      (t) => t.templateName === mine[0],
    );
    expect(first).toMatchObject({
      templateArn: `${arnPrefix}:provisioningtemplate/${mine[0]}`,
      description: 'listed',
      enabled: true,
      type: 'FLEET_PROVISIONING',
    });
    expect(first?.creationDate).toBeInstanceOf(Date);
  });

  it.each([
    [{ maxResults: 0 }, /'maxResults' must be from 1 to 250/],
    [{ maxResults: 251 }, /'maxResults' must be from 1 to 250/],
    [{ nextToken: 'not-a-token' }, /The nextToken is not valid/],
  ])('%j: 400 InvalidRequestException', async (input, message) => {
    const err = await rejection(iot.send(new ListProvisioningTemplatesCommand(input)), InvalidRequestException, 400);
    expect(err.message).toMatch(message);
  });
});

describe('template versions', () => {
  const createVersion = (templateName: string, tag: string, setAsDefault?: boolean) =>
    iot.send(new CreateProvisioningTemplateVersionCommand({ templateName, templateBody: body(tag), setAsDefault }));

  it('setAsDefault chooses the body RegisterThing uses; five versions at most; the default cannot be deleted; IDs are not reused', async () => {
    const name = await create();
    expect(await createVersion(name, 'v2')).toMatchObject({
      templateArn: `${arnPrefix}:provisioningtemplate/${name}`,
      templateName: name,
      versionId: 2,
      isDefaultVersion: false,
    });
    expect((await describeTemplate(name)).defaultVersionId).toBe(1);
    expect(await createVersion(name, 'v3', true)).toMatchObject({ versionId: 3, isDefaultVersion: true });
    const d = await describeTemplate(name);
    expect(d).toMatchObject({ defaultVersionId: 3, templateBody: body('v3') });
    expect(d.lastModifiedDate?.getTime()).toBeGreaterThanOrEqual(d.creationDate?.getTime() ?? 0);

    const v2 = await iot.send(new DescribeProvisioningTemplateVersionCommand({ templateName: name, versionId: 2 }));
    expect(v2).toMatchObject({ versionId: 2, templateBody: body('v2'), isDefaultVersion: false });
    expect(v2.creationDate).toBeInstanceOf(Date);

    await createVersion(name, 'v4');
    await createVersion(name, 'v5');
    const err = await rejection(createVersion(name, 'v6'), VersionsLimitExceededException, 409);
    expect(err.message).toMatch(/5 versions/);

    await rejection(
      iot.send(new DeleteProvisioningTemplateVersionCommand({ templateName: name, versionId: 3 })),
      DeleteConflictException,
      409,
    );
    await iot.send(new DeleteProvisioningTemplateVersionCommand({ templateName: name, versionId: 2 }));
    await rejection(
      iot.send(new DescribeProvisioningTemplateVersionCommand({ templateName: name, versionId: 2 })),
      ResourceNotFoundException,
      404,
    );
    expect(await createVersion(name, 'v6')).toMatchObject({ versionId: 6, isDefaultVersion: false });

    const listed = await iot.send(new ListProvisioningTemplateVersionsCommand({ templateName: name }));
    expect(listed.versions?.map((v) => [v.versionId, v.isDefaultVersion])).toEqual([
      [1, false],
      [3, true],
      [4, false],
      [5, false],
      [6, false],
    ]);
    const paged = await iot.send(new ListProvisioningTemplateVersionsCommand({ templateName: name, maxResults: 2 }));
    expect(paged.versions?.map((v) => v.versionId)).toEqual([1, 3]);
    const rest = await iot.send(
      new ListProvisioningTemplateVersionsCommand({ templateName: name, maxResults: 2, nextToken: paged.nextToken }),
    );
    expect(rest.versions?.map((v) => v.versionId)).toEqual([4, 5]);
  });

  it('an invalid version body is refused and no version is added', async () => {
    const name = await create();
    const err = await rejection(
      iot.send(
        new CreateProvisioningTemplateVersionCommand({
          templateName: name,
          templateBody: '{"Resources":{"x":{"Type":"AWS::S3::Bucket"}}}',
        }),
      ),
      InvalidRequestException,
      400,
    );
    expect(err.message).toMatch(/AWS::IoT::Thing/);
    const listed = await iot.send(new ListProvisioningTemplateVersionsCommand({ templateName: name }));
    expect(listed.versions?.map((v) => v.versionId)).toEqual([1]);
  });

  it('versions of an unknown template or an unknown version: 404', async () => {
    await rejection(createVersion('nope', 'x'), ResourceNotFoundException, 404);
    await rejection(
      iot.send(new ListProvisioningTemplateVersionsCommand({ templateName: 'nope' })),
      ResourceNotFoundException,
      404,
    );
    const name = await create();
    await rejection(
      iot.send(new DescribeProvisioningTemplateVersionCommand({ templateName: name, versionId: 9 })),
      ResourceNotFoundException,
      404,
    );
    await rejection(
      iot.send(new DeleteProvisioningTemplateVersionCommand({ templateName: name, versionId: 9 })),
      ResourceNotFoundException,
      404,
    );
  });
});

describe('UpdateProvisioningTemplate and DeleteProvisioningTemplate', () => {
  const update = (input: ConstructorParameters<typeof UpdateProvisioningTemplateCommand>[0]) =>
    iot.send(new UpdateProvisioningTemplateCommand(input));

  it('changes description, enabled, role, default version and the hook; removes the hook', async () => {
    const name = await create();
    await iot.send(new CreateProvisioningTemplateVersionCommand({ templateName: name, templateBody: body('v2') }));
    const role2 = 'arn:aws:iam::123456789012:role/Other_role';
    await update({
      templateName: name,
      description: 'updated',
      enabled: true,
      provisioningRoleArn: role2,
      defaultVersionId: 2,
      preProvisioningHook: { targetArn: HOOK },
    });
    expect(await describeTemplate(name)).toMatchObject({
      description: 'updated',
      enabled: true,
      provisioningRoleArn: role2,
      defaultVersionId: 2,
      templateBody: body('v2'),
      preProvisioningHook: { targetArn: HOOK, payloadVersion: '2020-04-01' },
    });
    await update({ templateName: name, enabled: false });
    expect(await describeTemplate(name)).toMatchObject({
      enabled: false,
      description: 'updated',
      preProvisioningHook: { targetArn: HOOK },
    });
    await update({ templateName: name, removePreProvisioningHook: true });
    expect((await describeTemplate(name)).preProvisioningHook).toBeUndefined();
  });

  it('refusals leave the template as it was', async () => {
    const name = await create({ description: 'kept' });
    await rejection(update({ templateName: name, defaultVersionId: 7 }), ResourceNotFoundException, 404);
    await rejection(
      update({ templateName: name, preProvisioningHook: { targetArn: HOOK }, removePreProvisioningHook: true }),
      InvalidRequestException,
      400,
    );
    await rejection(
      update({ templateName: name, description: 'x', provisioningRoleArn: 'short' }),
      InvalidRequestException,
      400,
    );
    await rejection(update({ templateName: 'nope', enabled: true }), ResourceNotFoundException, 404);
    expect(await describeTemplate(name)).toMatchObject({
      description: 'kept',
      defaultVersionId: 1,
      provisioningRoleArn: ROLE,
    });
  });

  it('delete removes the template and its versions; the name can be used again', async () => {
    const name = await create();
    await iot.send(new CreateProvisioningTemplateVersionCommand({ templateName: name, templateBody: body('v2') }));
    await iot.send(new DeleteProvisioningTemplateCommand({ templateName: name }));
    await rejection(describeTemplate(name), ResourceNotFoundException, 404);
    await rejection(
      iot.send(new DeleteProvisioningTemplateCommand({ templateName: name })),
      ResourceNotFoundException,
      404,
    );
    await create({ templateName: name, templateBody: body('again') });
    const listed = await iot.send(new ListProvisioningTemplateVersionsCommand({ templateName: name }));
    expect(listed.versions?.map((v) => v.versionId)).toEqual([1]);
    expect((await describeTemplate(name)).templateBody).toBe(body('again'));
  });
});

describe('persistence', () => {
  it('templates and versions survive a restart of the core on the same data directory', async () => {
    const own = tempDir('provisioning-restart');
    try {
      const first = await startInProcessCore(own);
      let name: string;
      try {
        name = unique('kept');
        await first.iot.send(
          new CreateProvisioningTemplateCommand({
            templateName: name,
            templateBody: body(),
            provisioningRoleArn: ROLE,
            enabled: true,
          }),
        );
        await first.iot.send(
          new CreateProvisioningTemplateVersionCommand({
            templateName: name,
            templateBody: body('v2'),
            setAsDefault: true,
          }),
        );
      } finally {
        await first.stop();
      }
      const second = await startInProcessCore(own);
      try {
        expect(await second.iot.send(new DescribeProvisioningTemplateCommand({ templateName: name }))).toMatchObject({
          enabled: true,
          defaultVersionId: 2,
          templateBody: body('v2'),
        });
      } finally {
        await second.stop();
      }
    } finally {
      removeDir(own);
    }
  });
});
