import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { describe, expect, it } from 'vitest';
import type { LambdaName } from '../../cdk/bundle.js';
import { ARTIFACT_NONCURRENT_VERSION_DAYS, PifleetStack } from '../../cdk/pifleet-stack.js';
import { allow, grantsOf, idsOfType, type Resources, render, roleGrants } from './template-helpers.js';

/**
 * The release artifacts bucket and the role IoT Jobs assumes to presign artifact URLs in job
 * documents, statement by statement: what the bucket refuses, what the role may do, who may
 * assume it, and the outputs the CLI reads.
 */

const stubCode = (name: LambdaName) => lambda.Code.fromInline(`exports.handler = async () => ${JSON.stringify(name)};`);

const app = new App({ analyticsReporting: false });
const stack = new PifleetStack(app, 'Test', { handlerCode: stubCode });
const template = Template.fromStack(stack).toJSON() as { Resources: Resources; Outputs: Record<string, unknown> };
const resources = template.Resources;
const logicalId = (construct: { node: { defaultChild?: unknown } }) =>
  stack.getLogicalId(construct.node.defaultChild as Parameters<typeof stack.getLogicalId>[0]);
const bucketId = logicalId(stack.artifactsBucket);
const roleId = logicalId(stack.artifactsPresignRole);

describe('artifacts bucket', () => {
  it('blocks public access, is encrypted (SSE-S3), owner-enforced, versioned, and retained', () => {
    const bucket = resources[bucketId];
    expect(bucket?.Type).toBe('AWS::S3::Bucket');
    expect(bucket?.Properties).toMatchObject({
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
      },
      OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
      VersioningConfiguration: { Status: 'Enabled' },
    });
    expect(bucket?.DeletionPolicy).toBe('Retain');
    expect(bucket?.UpdateReplacePolicy).toBe('Retain');
  });

  it('expires old versions after 30 days, cleans their delete markers, and aborts stale multipart uploads', () => {
    expect(ARTIFACT_NONCURRENT_VERSION_DAYS).toBe(30);
    expect(render(resources[bucketId]?.Properties?.LifecycleConfiguration)).toEqual({
      Rules: [
        {
          Id: 'old-versions',
          Status: 'Enabled',
          NoncurrentVersionExpiration: { NoncurrentDays: ARTIFACT_NONCURRENT_VERSION_DAYS },
          ExpiredObjectDeleteMarker: true,
        },
        {
          Id: 'abort-incomplete-uploads',
          Status: 'Enabled',
          AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 },
        },
      ],
    });
  });

  it('its bucket policy only denies: plain HTTP, and TLS older than 1.2, on the bucket and every object', () => {
    const policies = idsOfType(resources, 'AWS::S3::BucketPolicy').filter(
      (p) => render(resources[p]?.Properties?.Bucket) === `\${${bucketId}}`,
    );
    expect(policies).toHaveLength(1);
    const document = render(resources[policies[0] as string]?.Properties?.PolicyDocument) as {
      Statement: unknown[];
    };
    const onBucket = [`\${${bucketId}.Arn}`, `\${${bucketId}.Arn}/*`];
    expect(document.Statement).toEqual([
      {
        Effect: 'Deny',
        Principal: { AWS: '*' },
        Action: 's3:*',
        Resource: onBucket,
        Condition: { Bool: { 'aws:SecureTransport': 'false' } },
      },
      {
        Effect: 'Deny',
        Principal: { AWS: '*' },
        Action: 's3:*',
        Resource: onBucket,
        Condition: { NumericLessThan: { 's3:TlsVersion': 1.2 } },
      },
    ]);
  });
});

describe('presign role', () => {
  it('may only read objects of the artifacts bucket', () => {
    expect(roleGrants(resources, roleId)).toEqual(allow(['s3:GetObject'], `\${${bucketId}.Arn}/*`));
  });

  it('no other policy in the stack grants anything on the artifacts bucket', () => {
    const onArtifacts = idsOfType(resources, 'AWS::IAM::Policy')
      .filter((p) => !JSON.stringify(render(resources[p]?.Properties?.Roles)).includes(roleId))
      .flatMap((p) => grantsOf(resources[p]?.Properties?.PolicyDocument))
      .filter((g) => g.resource.includes(bucketId));
    expect(onArtifacts).toEqual([]);
  });

  it('is assumable by IoT only, for this account and region (confused-deputy conditions)', () => {
    expect(render(resources[roleId]?.Properties?.AssumeRolePolicyDocument)).toEqual({
      Version: '2012-10-17',
      Statement: [
        {
          Effect: 'Allow',
          Principal: { Service: 'iot.amazonaws.com' },
          Action: 'sts:AssumeRole',
          Condition: {
            StringEquals: { 'aws:SourceAccount': '${AWS::AccountId}' },
            ArnLike: { 'aws:SourceArn': 'arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:*' },
          },
        },
      ],
    });
    expect(resources[roleId]?.Properties?.ManagedPolicyArns).toBeUndefined();
  });
});

describe('outputs', () => {
  it('name the bucket and the role ARN (what `pifleet release upload` and `jobs create` need)', () => {
    expect(render(template.Outputs.ArtifactsBucketName)).toMatchObject({ Value: `\${${bucketId}}` });
    expect(render(template.Outputs.ArtifactsPresignRoleArn)).toMatchObject({ Value: `\${${roleId}.Arn}` });
  });
});
