import { checkArchiveKey } from '../rules/actions/archive.js';
import { ArtifactError } from './errors.js';

/**
 * Bucket and key names. Buckets follow S3's naming rules for general purpose buckets; keys S3's
 * 1,024-byte limit, and then the rules of the rules engine's archive directory (the same mapping of a
 * key to a relative path): no empty, `.` or `..` segment, no leading or trailing `/`, no `\` or NUL.
 * and no segment longer than a file name may be (255 bytes). S3 itself accepts such keys; a local
 * store that keeps each object at `<bucket>/<key>` cannot.
 */

const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;
const RESERVED_PREFIXES = ['xn--', 'sthree-', 'amzn-s3-demo-'];
const RESERVED_SUFFIXES = ['-s3alias', '--ol-s3', '.mrap', '--x-s3', '--table-s3'];

/** Why `name` is not a valid S3 bucket name, or undefined when it is. */
export function bucketNameProblem(name: string): string | undefined {
  if (!BUCKET.test(name)) {
    return 'a bucket name has 3 to 63 lowercase letters, digits, dots and hyphens, and begins and ends with a letter or digit';
  }
  if (name.includes('..')) return 'a bucket name has no two adjacent dots';
  if (IPV4.test(name)) return 'a bucket name is not an IP address';
  if (RESERVED_PREFIXES.some((p) => name.startsWith(p))) return 'a bucket name has a reserved prefix';
  if (RESERVED_SUFFIXES.some((s) => name.endsWith(s))) return 'a bucket name has a reserved suffix';
  return undefined;
}

export function checkBucketName(name: string): void {
  const problem = bucketNameProblem(name);
  if (problem !== undefined) {
    throw new ArtifactError('InvalidBucketName', `The specified bucket is not valid: ${problem}.`, {
      fields: { BucketName: name },
    });
  }
}

export const MAX_KEY_BYTES = 1024;
/** The longest file name most file systems (ext4, APFS, tmpfs) take: one key segment becomes one. */
export const MAX_SEGMENT_BYTES = 255;

export function checkObjectKey(key: string): void {
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) {
    throw new ArtifactError('KeyTooLongError', 'Your key is too long', {
      fields: { Size: String(Buffer.byteLength(key)), MaxSizeAllowed: String(MAX_KEY_BYTES) },
    });
  }
  const problem =
    checkArchiveKey(key) ??
    (key.split('/').some((segment) => Buffer.byteLength(segment) > MAX_SEGMENT_BYTES)
      ? `a segment between slashes is longer than ${MAX_SEGMENT_BYTES} bytes (a file name's limit)`
      : undefined);
  if (problem !== undefined) {
    throw new ArtifactError('InvalidArgument', `The local artifact store refuses this key: ${problem}.`, {
      fields: { ArgumentName: 'key', ArgumentValue: key },
    });
  }
}
