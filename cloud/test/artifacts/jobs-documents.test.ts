import {
  CreateJobCommand,
  CreateThingCommand,
  DescribeJobCommand,
  GetJobDocumentCommand,
  InvalidRequestException,
} from '@aws-sdk/client-iot';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type InProcessCore, localProfileCredentials } from '../../src/testing/in-process-core.js';
import { coreForFile } from '../http/harness.js';

/**
 * Artifacts through the jobs service of the composed core: an operator uploads a release with
 * client-s3 and creates a job with client-iot whose document names it with a presigned-URL
 * placeholder (or whose document itself is an S3 object, documentSource); the device receives
 * the document with a URL it can fetch, and GetJobDocument (the operator's view) keeps the
 * placeholder, as IoT does.
 */

const ROLE = 'arn:aws:iam::123456789012:role/pifleet-iot-presign';
const RELEASE = Buffer.from('release 2.0.0 tarball bytes');
let run: InProcessCore;
let s3: S3Client;

coreForFile('artifacts-jobs', (started) => {
  run = started;
});

beforeAll(async () => {
  s3 = new S3Client({
    region: run.info.region,
    endpoint: run.info.http,
    forcePathStyle: true,
    credentials: localProfileCredentials(run.info),
    maxAttempts: 1,
  });
  await s3.send(new PutObjectCommand({ Bucket: 'pifleet-artifacts', Key: 'releases/2.0.0/agent.tgz', Body: RELEASE }));
  await run.iot.send(new CreateThingCommand({ thingName: 'pi-1' }));
});

afterAll(() => {
  s3?.destroy();
});

const thingArn = (name: string) => `arn:aws:iot:${run.info.region}:${run.info.accountId}:thing/${name}`;
const placeholder = '${aws:iot:s3-presigned-url:https://s3.amazonaws.com/pifleet-artifacts/releases/2.0.0/agent.tgz}';

describe('job documents with artifacts', () => {
  it('reach the device with a presigned URL that downloads the release; the operator sees the placeholder', async () => {
    const document = JSON.stringify({ operation: 'pifleet.agent-update', version: '2.0.0', url: placeholder });
    await run.iot.send(
      new CreateJobCommand({
        jobId: 'update-2-0-0',
        targets: [thingArn('pi-1')],
        document,
        presignedUrlConfig: { roleArn: ROLE, expiresInSec: 300 },
      }),
    );
    const execution = await run.core.services.jobs.describe('pi-1', 'update-2-0-0', { includeJobDocument: true });
    const sent = JSON.parse(execution?.jobDocument ?? '{}') as { url: string };
    const url = new URL(sent.url);
    expect(url.origin).toBe(new URL(run.info.http).origin);
    expect(url.searchParams.get('X-Amz-Expires')).toBe('300');
    const response = await fetch(url);
    expect(response.status).toBe(200);
    expect(Buffer.from(await response.arrayBuffer())).toEqual(RELEASE);

    const operatorView = await run.iot.send(new GetJobDocumentCommand({ jobId: 'update-2-0-0' }));
    expect(operatorView.document).toBe(document);
  });

  it('come from documentSource, an S3 object URL of the artifact store', async () => {
    const document = JSON.stringify({ operation: 'pifleet.agent-update', version: '2.0.0', url: placeholder });
    await s3.send(new PutObjectCommand({ Bucket: 'pifleet-artifacts', Key: 'jobs/update.json', Body: document }));
    await run.iot.send(
      new CreateJobCommand({
        jobId: 'update-from-source',
        targets: [thingArn('pi-1')],
        documentSource: 'https://s3.amazonaws.com/pifleet-artifacts/jobs/update.json',
        presignedUrlConfig: { roleArn: ROLE },
      }),
    );
    const execution = await run.core.services.jobs.describe('pi-1', 'update-from-source', { includeJobDocument: true });
    const sent = JSON.parse(execution?.jobDocument ?? '{}') as { url: string };
    expect(new URL(sent.url).searchParams.get('X-Amz-Expires')).toBe('3600');
    expect((await fetch(sent.url)).status).toBe(200);
  });

  it('from a documentSource that is not there is refused with InvalidRequestException', async () => {
    const err = await run.iot
      .send(
        new CreateJobCommand({
          jobId: 'no-source',
          targets: [thingArn('pi-1')],
          documentSource: 'https://s3.amazonaws.com/pifleet-artifacts/jobs/missing.json',
        }),
      )
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(InvalidRequestException);
  });

  it('from a documentSource that is not UTF-8 is refused, not stored with U+FFFD in place of its bytes', async () => {
    // "A job document is a UTF-8 encoded JSON document": 0xFF is never part of UTF-8.
    const bytes = Buffer.concat([
      Buffer.from('{"operation":"pifleet.reboot","reason":"'),
      Buffer.from([0xff]),
      Buffer.from('"}'),
    ]);
    await s3.send(new PutObjectCommand({ Bucket: 'pifleet-artifacts', Key: 'jobs/latin1.json', Body: bytes }));
    const err = await run.iot
      .send(
        new CreateJobCommand({
          jobId: 'not-utf8',
          targets: [thingArn('pi-1')],
          documentSource: 'https://s3.amazonaws.com/pifleet-artifacts/jobs/latin1.json',
        }),
      )
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(InvalidRequestException);
    expect((err as Error).message).toMatch(/not UTF-8/);
    const described = await run.iot.send(new DescribeJobCommand({ jobId: 'not-utf8' })).catch((e: Error) => e.name);
    expect(described).toBe('ResourceNotFoundException');
  });
});
