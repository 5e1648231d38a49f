import { invalidRequest } from '../http/errors.js';

/**
 * Presigned artifact URLs in job documents, as IoT Jobs replaces them ("Managing jobs", Presigned
 * URLs): a document names an S3 object with a placeholder,
 *
 *     ${aws:iot:s3-presigned-url:https://s3.amazonaws.com/<bucket>/<key>}
 *
 * (`s3-presigned-url-v2` too, the spelling the current docs show), and each time a device asks for
 * the document IoT swaps every placeholder for a presigned GET URL of that object, signed with the
 * job's `presignedUrlConfig.roleArn`, valid `expiresInSec` (60–3600, default 3600). Locally the URL
 * points at the core's own HTTP listener. The replacement is textual (the document is not parsed),
 * so a document's depth or its keys (`__proto__`) change nothing; a placeholder whose URL is not an
 * S3 object URL stays as it is.
 */

export interface PresignedUrlConfig {
  readonly roleArn?: string;
  readonly expiresInSec?: number;
}

export interface S3ObjectRef {
  readonly bucket: string;
  readonly key: string;
}

export const DEFAULT_EXPIRES_IN_SEC = 3600;
export const MIN_EXPIRES_IN_SEC = 60;
export const MAX_EXPIRES_IN_SEC = 3600;

/**
 * A placeholder: the prefix, then the URL up to the first `}`. The URL may not hold `"`, `\` or
 * whitespace, which cannot be in a URL inside a JSON string anyway.
 */
const PLACEHOLDER = /\$\{aws:iot:s3-presigned-url(?:-v2)?:([^}"\\\s]*)\}/g;

const AWS_HOST = /^(?:(?<vbucket>.+)\.)?s3(?:[.-](?<region>[a-z0-9-]+))?\.amazonaws\.com$/;

/**
 * The bucket and key of an S3 object URL, in the forms AWS documents for job documents and
 * `documentSource`: path-style `https://s3.amazonaws.com/<bucket>/<key>` and
 * `https://s3.<region>.amazonaws.com/<bucket>/<key>`, virtual-hosted
 * `https://<bucket>.s3.amazonaws.com/<key>` and `https://<bucket>.s3.<region>.amazonaws.com/<key>`.
 * Undefined for anything else.
 */
export function parseS3ObjectUrl(text: string): S3ObjectRef | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'https:' || url.search !== '' || url.hash !== '' || url.username !== '' || url.port !== '') {
    return undefined;
  }
  const host = AWS_HOST.exec(url.hostname);
  if (!host) return undefined;
  let path: string;
  try {
    path = decodeURIComponent(url.pathname.slice(1));
  } catch {
    return undefined;
  }
  const vbucket = host.groups?.vbucket;
  if (vbucket !== undefined) return path === '' ? undefined : { bucket: vbucket, key: path };
  const slash = path.indexOf('/');
  if (slash <= 0 || slash === path.length - 1) return undefined;
  return { bucket: path.slice(0, slash), key: path.slice(slash + 1) };
}

/** The expiry of a job's presigned URLs, checked as CreateJob checks it. */
export function expiresInSecOf(config: PresignedUrlConfig | undefined): number {
  const value = config?.expiresInSec ?? DEFAULT_EXPIRES_IN_SEC;
  if (!Number.isInteger(value) || value < MIN_EXPIRES_IN_SEC || value > MAX_EXPIRES_IN_SEC) {
    throw invalidRequest(
      `presignedUrlConfig.expiresInSec must be an integer from ${MIN_EXPIRES_IN_SEC} to ${MAX_EXPIRES_IN_SEC}.`,
    );
  }
  return value;
}

/**
 * Replaces every placeholder of `document` with `presign(object, expiresInSec)`. Without a
 * `roleArn` nothing is replaced: IoT presigns with the job's role, and a job without one has no
 * identity to sign with (the same document then reaches the device unchanged, on AWS as here).
 */
export function replacePlaceholders(
  document: string,
  config: PresignedUrlConfig | undefined,
  presign: (object: S3ObjectRef, expiresInSec: number) => string,
): string {
  if (!document.includes('${aws:iot:s3-presigned-url')) return document;
  if (config?.roleArn === undefined) return document;
  const expiresInSec = expiresInSecOf(config);
  return document.replace(PLACEHOLDER, (whole, url: string) => {
    const object = parseS3ObjectUrl(url);
    return object === undefined ? whole : presign(object, expiresInSec);
  });
}

/** The S3 object of a job's `documentSource`, or 400 InvalidRequestException as CreateJob answers. */
export function documentSourceObject(url: string): S3ObjectRef {
  const object = parseS3ObjectUrl(url);
  if (object === undefined) {
    throw invalidRequest(
      `documentSource must be an S3 object URL (https://s3.amazonaws.com/<bucket>/<key>), not ${JSON.stringify(url)}.`,
    );
  }
  return object;
}
