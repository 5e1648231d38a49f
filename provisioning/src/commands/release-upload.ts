import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { CommandUnknownOpts } from '@commander-js/extra-typings';
import { type Runner, withCommonOptions } from '../app/command.js';
import { s3ObjectUrl } from '../core/jobs-options.js';
import { ConflictError, CredentialsError, InputError, NotFoundError, UsageError } from '../errors.js';

/** S3's rules for a general purpose bucket's name (3-63 of a-z 0-9 . -, a letter or digit at each end, no `..`, not an IP). */
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

function parseBucket(raw: string): string {
  if (!BUCKET.test(raw) || raw.includes('..') || /^\d{1,3}(\.\d{1,3}){3}$/.test(raw)) {
    throw new UsageError(`--bucket ${JSON.stringify(raw)} is not an S3 bucket name`, {
      hint: 'a bucket name has 3-63 lowercase letters, digits, dots and hyphens (in AWS: the stack output ArtifactsBucketName)',
    });
  }
  return raw;
}

/** `releases/` by default; a prefix ends with `/` (added when missing), never starts with one. */
function parsePrefix(raw: string): string {
  if (raw === '') return '';
  if (raw.startsWith('/') || raw.split('/').some((s) => s === '.' || s === '..') || raw.includes('//')) {
    throw new UsageError(`--prefix ${JSON.stringify(raw)} is not a key prefix`, { hint: 'e.g. --prefix releases/' });
  }
  return raw.endsWith('/') ? raw : `${raw}/`;
}

const contentTypeOf = (file: string) =>
  file.endsWith('.tar.gz')
    ? 'application/gzip'
    : file.endsWith('.json')
      ? 'application/json'
      : 'application/octet-stream';

async function md5Of(file: string): Promise<string> {
  const hash = createHash('md5');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

const errName = (err: unknown) => (err as { name?: unknown } | null)?.name;

/** S3's refusals worded for an operator; other errors go to the CLI's error map. */
function s3Error(err: unknown, bucket: string, local: boolean): unknown {
  const name = errName(err);
  if (name === 'NoSuchBucket') {
    return new NotFoundError(`bucket ${bucket} not found`, {
      hint: local
        ? 'the local core makes a bucket on `release upload --local`'
        : 'give the bucket of the stack output ArtifactsBucketName',
      cause: err,
    });
  }
  // A HEAD answer has no body, so S3's code never reaches the client: its 403 is the only sign.
  const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  if (
    name === 'AccessDenied' ||
    name === 'InvalidAccessKeyId' ||
    name === 'SignatureDoesNotMatch' ||
    name === 'Forbidden' ||
    status === 403
  ) {
    const code = status === 403 && (name === 'Unknown' || name === undefined) ? 'HTTP 403' : String(name);
    return new CredentialsError(`S3 refused the request (${code}): check the credentials`, {
      hint: 'check that the credentials may s3:PutObject and s3:GetObject on the bucket',
      cause: err,
    });
  }
  return err;
}

/**
 * `release upload`: PutObject of release files to the stack's artifacts bucket (or the local
 * core's), printing the S3 URL a job document names. A file already there with the same bytes is
 * left as it is (a re-run after a failure is safe); one with other bytes is refused: devices of a
 * running job may be downloading it, and its signed manifest names the old bytes.
 */
export function registerReleaseUpload(release: CommandUnknownOpts, run: Runner): void {
  run(
    withCommonOptions(
      release
        .command('upload')
        .description('upload release files (release build wrote them) to the artifacts bucket; prints their S3 URLs')
        .argument('<files...>', 'the files: tarball, manifest, signature')
        .requiredOption(
          '--bucket <bucket>',
          'the artifacts bucket (AWS: the stack output ArtifactsBucketName; local: any name)',
        )
        .option('--prefix <prefix>', 'key prefix', 'releases/'),
    ),
    async (ctx, [files], o) => {
      const bucket = parseBucket(o.bucket);
      const prefix = parsePrefix(o.prefix);
      const items: { file: string; key: string; size: number }[] = [];
      for (const raw of files) {
        const file = path.resolve(ctx.io.cwd, raw);
        const st = await stat(file).catch((err: NodeJS.ErrnoException) => {
          throw new InputError(`cannot read ${file} (${err.code ?? err.message})`);
        });
        if (!st.isFile()) throw new InputError(`${file} is not a file`);
        const key = `${prefix}${path.basename(file)}`;
        if (items.some((i) => i.key === key)) throw new UsageError(`two files would be uploaded as ${key}`);
        items.push({ file, key, size: st.size });
      }
      const services = await ctx.services();
      const local = services.target.kind === 'local';
      const store = await services.artifacts();
      const results: { file: string; key: string; url: string; size: number; etag?: string; uploaded: boolean }[] = [];
      const changes: string[] = [];
      try {
        if (local && !(await store.bucketExists(bucket))) {
          // The stack makes the bucket in AWS; the local core has none until someone makes it.
          await store.createBucket(bucket);
          changes.push(`created bucket ${bucket}`);
        }
        const region = await store.region();
        for (const item of items) {
          const existing = await store.head(bucket, item.key);
          const md5 = existing ? await md5Of(item.file) : undefined;
          if (existing && (existing.size !== item.size || (existing.etag !== undefined && existing.etag !== md5))) {
            throw new ConflictError('ARTIFACT_EXISTS', `s3://${bucket}/${item.key} exists with other bytes`, {
              hint: 'a published release is never replaced: build a new --version',
            });
          }
          const stored =
            existing ??
            (await store.putFile(bucket, item.key, { path: item.file, size: item.size }, contentTypeOf(item.file)));
          const url = s3ObjectUrl(region, bucket, item.key);
          results.push({
            file: item.file,
            key: item.key,
            url,
            size: item.size,
            ...(stored.etag ? { etag: stored.etag } : {}),
            uploaded: !existing,
          });
          changes.push(
            existing
              ? `unchanged s3://${bucket}/${item.key}`
              : `uploaded s3://${bucket}/${item.key} (${item.size} bytes)`,
          );
        }
      } catch (err) {
        throw s3Error(err, bucket, local);
      }
      const tarball = results.find((r) => r.key.endsWith('.tar.gz'));
      const manifest = results.find((r) => r.key.endsWith('.manifest.json'));
      const lines = [...changes, ...results.map((r) => r.url)];
      if (tarball) {
        lines.push(
          `next: ${ctx.hints.pifleet(
            `jobs create --type agent-update --release ${manifest ? path.relative(ctx.io.cwd, manifest.file) : 'MANIFEST'} --url ${tarball.url} --group GROUP`,
          )}`,
        );
      }
      return { data: { bucket, objects: results, ...(tarball ? { url: tarball.url } : {}) }, text: lines.join('\n') };
    },
  );
}
