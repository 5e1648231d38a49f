import { App, Duration, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { CfnFunction } from 'aws-cdk-lib/aws-lambda';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { describe, expect, it } from 'vitest';
import type { LambdaName } from '../../cdk/bundle.js';
import { PifleetStack, type PifleetStackProps } from '../../cdk/pifleet-stack.js';
import { TopicRules } from '../../cdk/topic-rules.js';
import { RULES, type RuleDefinition, TELEMETRY_ARCHIVE } from '../../src/rules/definitions.js';
import { allow, idsOfType, type Resources, refId, render, roleGrants, sortGrants } from './template-helpers.js';

/**
 * The archive in AWS: the archive rule's Firehose action, the delivery stream (buffering, GZIP,
 * dynamic partitioning by thing and day into the layout of src/rules/archive-layout.ts, error
 * prefix), and the IAM of both sides, each statement pinned.
 */

const stubCode = (name: LambdaName) => lambda.Code.fromInline(`exports.handler = async () => ${JSON.stringify(name)};`);

function synth(props: Partial<PifleetStackProps> = {}) {
  const app = new App({ analyticsReporting: false });
  const stack = new PifleetStack(app, 'Test', { handlerCode: stubCode, ...props });
  const resources = Template.fromStack(stack).toJSON().Resources as Resources;
  const bucketId = stack.getLogicalId(stack.archiveBucket.node.defaultChild as CfnFunction);
  return { stack, resources, bucketId };
}

const ARN = (service: string, rest: string) =>
  `arn:\${AWS::Partition}:${service}:\${AWS::Region}:\${AWS::AccountId}:${rest}`;

const { stack, resources, bucketId } = synth();
const streamIds = idsOfType(resources, 'AWS::KinesisFirehose::DeliveryStream');
const streamId = streamIds[0] as string;
const streamProps = () => render(resources[streamId]?.Properties) as Record<string, Record<string, unknown>>;
const destination = () => streamProps().ExtendedS3DestinationConfiguration as Record<string, unknown>;

const archiveRule = () => {
  const r = Object.values(resources).find(
    (x) => x.Type === 'AWS::IoT::TopicRule' && x.Properties?.RuleName === 'pifleet_telemetry_archive',
  );
  return render(r?.Properties?.TopicRulePayload) as { Actions: Record<string, Record<string, unknown>>[] };
};

describe('the archive rule → Firehose', () => {
  it('replaces the S3 action: one Firehose action, newline-separated records, one record per message', () => {
    const actions = archiveRule().Actions;
    expect(actions).toEqual([
      {
        Firehose: {
          DeliveryStreamName: TELEMETRY_ARCHIVE.name,
          Separator: '\n',
          BatchMode: false,
          RoleArn: expect.any(String),
        },
      },
    ]);
    const everyAction = Object.values(resources)
      .filter((r) => r.Type === 'AWS::IoT::TopicRule')
      .flatMap(
        (r) => (r.Properties?.TopicRulePayload as { Actions?: Record<string, unknown>[] } | undefined)?.Actions ?? [],
      );
    expect(everyAction.some((a) => 'S3' in a)).toBe(false);
  });

  it('the rule role may put records into that one stream, nothing else', () => {
    const roleId = refId(archiveRule().Actions[0]?.Firehose?.RoleArn);
    expect(roleGrants(resources, roleId)).toEqual(
      allow(['firehose:PutRecord', 'firehose:PutRecordBatch'], `\${${streamId}.Arn}`),
    );
    expect(render(resources[roleId]?.Properties?.AssumeRolePolicyDocument)).toEqual({
      Version: '2012-10-17',
      Statement: [
        {
          Effect: 'Allow',
          Principal: { Service: 'iot.amazonaws.com' },
          Action: 'sts:AssumeRole',
          Condition: {
            StringEquals: { 'aws:SourceAccount': '${AWS::AccountId}' },
            ArnEquals: { 'aws:SourceArn': ARN('iot', 'rule/pifleet_telemetry_archive') },
          },
        },
      ],
    });
  });
});

describe('the archive delivery stream', () => {
  it('is one DirectPut stream named as the rule file names it, encrypted at rest', () => {
    expect(streamIds).toHaveLength(1);
    expect(stack.topicRules.archiveStreams.size).toBe(1);
    expect(streamProps()).toMatchObject({
      DeliveryStreamName: 'pifleet-telemetry-archive',
      DeliveryStreamType: 'DirectPut',
      DeliveryStreamEncryptionConfigurationInput: { KeyType: 'AWS_OWNED_CMK' },
    });
  });

  it('buffers 300 s / 64 MiB, GZIPs, and partitions by thing (JQ) and arrival day into the local layout', () => {
    const roleId = refId(destination().RoleARN);
    const logs = destination().CloudWatchLoggingOptions as Record<string, string>;
    expect(destination()).toEqual({
      BucketARN: `\${${bucketId}.Arn}`,
      RoleARN: `\${${roleId}.Arn}`,
      Prefix: 'raw/thing=!{partitionKeyFromQuery:thing}/date=!{timestamp:yyyy-MM-dd}/',
      ErrorOutputPrefix: 'raw-errors/!{firehose:error-output-type}/date=!{timestamp:yyyy-MM-dd}/',
      FileExtension: '.jsonl.gz',
      CompressionFormat: 'GZIP',
      BufferingHints: { IntervalInSeconds: 300, SizeInMBs: 64 },
      DynamicPartitioningConfiguration: { Enabled: true, RetryOptions: { DurationInSeconds: 300 } },
      ProcessingConfiguration: {
        Enabled: true,
        Processors: [
          {
            Type: 'MetadataExtraction',
            Parameters: [
              { ParameterName: 'MetadataExtractionQuery', ParameterValue: '{thing: .topicThing}' },
              { ParameterName: 'JsonParsingEngine', ParameterValue: 'JQ-1.6' },
            ],
          },
        ],
      },
      CloudWatchLoggingOptions: { Enabled: true, LogGroupName: expect.any(String), LogStreamName: expect.any(String) },
    });
    expect(resources[refId(logs.LogGroupName)]?.Properties?.LogGroupName).toBe(
      '/aws/kinesisfirehose/pifleet-telemetry-archive',
    );
    expect(resources[refId(logs.LogStreamName)]?.Properties?.LogStreamName).toBe('DestinationDelivery');
  });

  it('its role writes objects only under raw/ and raw-errors/, lists only the archive bucket, logs only to its group', () => {
    const roleId = refId(destination().RoleARN);
    const groupId = refId((destination().CloudWatchLoggingOptions as Record<string, string>).LogGroupName);
    expect(roleGrants(resources, roleId)).toEqual(
      sortGrants([
        ...allow(
          ['s3:AbortMultipartUpload', 's3:PutObject'],
          `\${${bucketId}.Arn}/raw/*`,
          `\${${bucketId}.Arn}/raw-errors/*`,
        ),
        ...allow(['s3:GetBucketLocation', 's3:ListBucket', 's3:ListBucketMultipartUploads'], `\${${bucketId}.Arn}`),
        ...allow(['logs:PutLogEvents'], `\${${groupId}.Arn}`),
      ]),
    );
    // No read or delete of archived objects, and nothing on any other bucket.
    const actions = roleGrants(resources, roleId).map((g) => g.action);
    expect(actions.filter((a) => /GetObject|DeleteObject|s3:\*/.test(a))).toEqual([]);
    expect(render(resources[roleId]?.Properties?.AssumeRolePolicyDocument)).toEqual({
      Version: '2012-10-17',
      Statement: [
        {
          Effect: 'Allow',
          Principal: { Service: 'firehose.amazonaws.com' },
          Action: 'sts:AssumeRole',
          Condition: { StringEquals: { 'sts:ExternalId': '${AWS::AccountId}' } },
        },
      ],
    });
  });

  it('is created after its role’s policy (Firehose checks its access when the stream is made)', () => {
    const roleId = refId(destination().RoleARN);
    const policyId = idsOfType(resources, 'AWS::IAM::Policy').find((id) =>
      ((resources[id]?.Properties?.Roles as unknown[]) ?? []).some((r) => render(r) === `\${${roleId}}`),
    );
    expect(policyId).toBeDefined();
    expect(resources[streamId]?.DependsOn).toEqual(expect.arrayContaining([policyId, roleId]));
  });

  it('takes the buffering hints as a stack prop', () => {
    const built = synth({ archiveBuffering: { interval: Duration.seconds(900), sizeMiB: 128 } });
    const [id] = idsOfType(built.resources, 'AWS::KinesisFirehose::DeliveryStream');
    const dest = render(built.resources[id as string]?.Properties?.ExtendedS3DestinationConfiguration) as Record<
      string,
      unknown
    >;
    expect(dest.BufferingHints).toEqual({ IntervalInSeconds: 900, SizeInMBs: 128 });
  });

  it.each([
    ['an interval under 60 s', { interval: Duration.seconds(59) }],
    ['an interval over 900 s', { interval: Duration.seconds(901) }],
    ['a size under 64 MiB (dynamic partitioning)', { sizeMiB: 5 }],
    ['a size over 128 MiB', { sizeMiB: 129 }],
    ['a fractional size', { sizeMiB: 64.5 }],
  ])('refuses %s', (_what, archiveBuffering) => {
    expect(() => synth({ archiveBuffering })).toThrow(
      expect.objectContaining({ name: 'DeploymentError', code: 'BAD_SETTING' }),
    );
  });
});

describe('archive streams beyond the shipped rule', () => {
  const base = RULES.find((r) => r.name === 'pifleet_telemetry_archive') as RuleDefinition;
  const second: RuleDefinition = { ...base, name: 'pifleet_status_archive', sql: "SELECT * FROM 'pifleet/+/status'" };

  it('two rules into one stream share it (one stream, a role per rule action)', () => {
    const built = synth({ rules: [base, second] });
    expect(idsOfType(built.resources, 'AWS::KinesisFirehose::DeliveryStream')).toHaveLength(1);
  });

  it.each<[string, RuleDefinition[], string]>([
    [
      'two different streams with one name',
      [
        base,
        {
          ...second,
          actions: [{ kind: 'firehose', stream: { ...TELEMETRY_ARCHIVE, prefix: 'other/' }, separator: '\n' }],
        },
      ],
      'ARCHIVE_STREAM_CONFLICT',
    ],
    [
      'a stream whose prefix climbs out',
      [
        {
          ...base,
          actions: [{ kind: 'firehose', stream: { ...TELEMETRY_ARCHIVE, prefix: '../x/' }, separator: '\n' }],
        },
      ],
      'BAD_ARCHIVE_STREAM',
    ],
    [
      'a thing field JQ cannot read',
      [
        {
          ...base,
          actions: [{ kind: 'firehose', stream: { ...TELEMETRY_ARCHIVE, thingField: 'a b' }, separator: '\n' }],
        },
      ],
      'BAD_ARCHIVE_STREAM',
    ],
  ])('refuses %s', (_what, rules, code) => {
    expect(() => synth({ rules })).toThrow(expect.objectContaining({ name: 'DeploymentError', code }));
  });

  it('refuses a rule that archives when the stack has no archive bucket, naming the rule', () => {
    const scope = new Stack(new App({ analyticsReporting: false }), 'NoBucket');
    expect(() => new TopicRules(scope, 'Rules', { rules: [base], functions: {} })).toThrow(
      expect.objectContaining({
        name: 'DeploymentError',
        code: 'RULE_TARGET_MISSING',
        message: `rule ${base.name} archives, but the stack has no archive bucket`,
      }),
    );
  });
});
