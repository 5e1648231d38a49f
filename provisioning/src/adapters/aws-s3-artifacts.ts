import { createReadStream } from 'node:fs';
import {
  CreateBucketCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { isRetryableAwsError, retry } from '../core/retry.js';
import type { ArtifactStore } from '../ports/artifacts.js';
import type { Clock } from '../ports/clock.js';

export interface AwsS3ArtifactsDeps {
  readonly client: S3Client;
  readonly clock: Clock;
  readonly signal?: AbortSignal;
  readonly random?: () => number;
  readonly onRetry?: (info: { operation: string; attempt: number; delayMs: number; err: unknown }) => void;
}

const errName = (err: unknown) => (err as { name?: unknown } | null)?.name;
/** A HEAD has no body, so S3's error code never reaches the client: a 404 is `NotFound`. */
const isMissing = (err: unknown) =>
  errName(err) === 'NotFound' ||
  errName(err) === 'NoSuchKey' ||
  errName(err) === 'NoSuchBucket' ||
  (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404;

const unquote = (etag: string | undefined) => etag?.replace(/^"|"$/g, '');

/** {@link ArtifactStore} over `@aws-sdk/client-s3`; 5xx, throttling (503 SlowDown) and dropped connections retried. */
export function createAwsS3Artifacts(deps: AwsS3ArtifactsDeps): ArtifactStore {
  const { client, clock, signal } = deps;
  const opts = signal ? { abortSignal: signal } : {};
  const call = <T>(operation: string, fn: () => Promise<T>): Promise<T> =>
    retry(fn, {
      maxAttempts: 5,
      baseMs: 200,
      capMs: 5_000,
      clock,
      isRetryable: (err) => errName(err) === 'SlowDown' || isRetryableAwsError(err),
      ...(deps.random ? { random: deps.random } : {}),
      ...(signal ? { signal } : {}),
      onRetry: (info) => deps.onRetry?.({ operation, ...info }),
    });

  return {
    async bucketExists(bucket) {
      try {
        await call('HeadBucket', () => client.send(new HeadBucketCommand({ Bucket: bucket }), opts));
        return true;
      } catch (err) {
        if (isMissing(err)) return false;
        throw err;
      }
    },
    async createBucket(bucket) {
      await call('CreateBucket', () => client.send(new CreateBucketCommand({ Bucket: bucket }), opts));
    },
    async head(bucket, key) {
      try {
        const r = await call('HeadObject', () =>
          client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }), opts),
        );
        const etag = unquote(r.ETag);
        return { size: r.ContentLength ?? 0, ...(etag ? { etag } : {}) };
      } catch (err) {
        if (isMissing(err)) return undefined;
        throw err;
      }
    },
    async putFile(bucket, key, file, contentType) {
      // A fresh stream per attempt: a retried upload sends the whole file again.
      const r = await call('PutObject', () =>
        client.send(
          new PutObjectCommand({
            Bucket: bucket,
            Key: key,
            Body: createReadStream(file.path),
            ContentLength: file.size,
            ContentType: contentType,
          }),
          opts,
        ),
      );
      const etag = unquote(r.ETag);
      return { size: file.size, ...(etag ? { etag } : {}) };
    },
    async region() {
      return client.config.region();
    },
  };
}
