import { createHmac } from 'node:crypto';
import type { Readable } from 'node:stream';
import { CloudError } from '../errors.js';
import { ApiError, invalidRequest } from '../http/errors.js';
import type { RouteGroup } from '../http/server.js';
import type { Logger } from '../logger.js';
import { silentLogger } from '../logger.js';
import { ArtifactError } from './errors.js';
import { documentSourceObject, type PresignedUrlConfig, replacePlaceholders } from './presign.js';
import { presignGetUrl, type S3Identity } from './s3-auth.js';
import { s3Routes } from './s3-routes.js';
import { type ArtifactStore, createArtifactStore, DEFAULT_MAX_OBJECT_BYTES } from './store.js';

export { AwsChunkedDecoder } from './aws-chunked.js';
export { ArtifactError, S3_ERROR_STATUS, type S3ErrorCode } from './errors.js';
export { bucketNameProblem, MAX_KEY_BYTES } from './names.js';
export {
  DEFAULT_EXPIRES_IN_SEC,
  documentSourceObject,
  expiresInSecOf,
  MAX_EXPIRES_IN_SEC,
  MIN_EXPIRES_IN_SEC,
  type PresignedUrlConfig,
  parseS3ObjectUrl,
  replacePlaceholders,
  type S3ObjectRef,
} from './presign.js';
export { presignGetUrl, type S3Identity, verifyS3Request } from './s3-auth.js';
export { parseRange, s3Routes } from './s3-routes.js';
export {
  type ArtifactStore,
  createArtifactStore,
  DEFAULT_MAX_OBJECT_BYTES,
  type ObjectInfo,
  type PutOptions,
} from './store.js';

/** AWS's job document size limit (32 KB): a documentSource object larger than it is refused unread. */
export const MAX_DOCUMENT_SOURCE_BYTES = 32 * 1024;

export interface ArtifactsDeps {
  /** `<dataDir>/artifacts`. */
  readonly dir: string;
  readonly region: string;
  /** The core's credentials: every S3 operation. */
  readonly credentials: { readonly accessKeyId: string; readonly secretAccessKey: string };
  /** Milliseconds since the epoch (signatures, expiry, Last-Modified). */
  readonly now: () => number;
  readonly logger?: Logger;
  /** Largest object accepted; default {@link DEFAULT_MAX_OBJECT_BYTES}. */
  readonly maxObjectBytes?: number;
}

export interface Artifacts {
  /** The S3 route group for the core's HTTP listener. */
  readonly routes: RouteGroup;
  readonly store: ArtifactStore;
  start(): Promise<void>;
  /** The core's HTTP URL, once it listens: presigned URLs point there. */
  bindEndpoint(url: string): void;
  /** A job document with its presigned-URL placeholders replaced (the jobs service's `resolveDocument`). */
  resolveDocument(document: string, presignedUrlConfig?: PresignedUrlConfig): string;
  /** The text of a job's `documentSource` S3 object (the jobs service's `readDocumentSource`). */
  readDocumentSource(url: string): Promise<string>;
}

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/**
 * The identity presigned URLs are signed with, standing in for the role IoT assumes: derived from
 * the core's secret (stable across restarts, so a URL handed out before a restart still works until
 * it expires), shaped like the temporary `ASIA…` keys a role session has, and allowed only to read
 * objects (the role's `s3:GetObject`), never the core's own key.
 */
export function presignIdentity(secretAccessKey: string): { accessKeyId: string; secretAccessKey: string } {
  const derive = (label: string) => createHmac('sha256', secretAccessKey).update(label).digest();
  const id = Array.from(derive('pifleet artifacts presign id').subarray(0, 16), (b) => BASE32[b % 32]).join('');
  return {
    accessKeyId: `ASIA${id}`,
    secretAccessKey: derive('pifleet artifacts presign secret').toString('base64').slice(0, 40),
  };
}

/**
 * The local core's artifact service: the object store in the data dir, its S3 route group, and the
 * two things the jobs service needs of it (documents with presigned URLs, documentSource reads).
 */
export function createArtifacts(deps: ArtifactsDeps): Artifacts {
  const logger = (deps.logger ?? silentLogger()).child({ component: 'artifacts' });
  const store = createArtifactStore({
    dir: deps.dir,
    maxObjectBytes: deps.maxObjectBytes ?? DEFAULT_MAX_OBJECT_BYTES,
    now: deps.now,
  });
  const presigner = presignIdentity(deps.credentials.secretAccessKey);
  const identities = new Map<string, S3Identity>([
    [deps.credentials.accessKeyId, { secretAccessKey: deps.credentials.secretAccessKey, access: 'full' }],
    [presigner.accessKeyId, { secretAccessKey: presigner.secretAccessKey, access: 'read' }],
  ]);
  let endpoint: string | undefined;

  return {
    routes: s3Routes({
      store,
      auth: { region: deps.region, identityFor: (id) => identities.get(id), now: deps.now },
    }),
    store,

    async start() {
      await store.open();
      logger.debug({ dir: deps.dir }, 'artifact store open');
    },

    bindEndpoint(url) {
      endpoint = url;
    },

    resolveDocument(document, presignedUrlConfig) {
      return replacePlaceholders(document, presignedUrlConfig, ({ bucket, key }, expiresInSec) => {
        if (endpoint === undefined) {
          throw new CloudError('ARTIFACTS_NOT_BOUND', 'presigned URLs need the HTTP endpoint: bindEndpoint() first');
        }
        return presignGetUrl({
          baseUrl: endpoint,
          bucket,
          key,
          region: deps.region,
          accessKeyId: presigner.accessKeyId,
          secretAccessKey: presigner.secretAccessKey,
          now: deps.now(),
          expiresInSec,
        });
      });
    },

    async readDocumentSource(url) {
      const { bucket, key } = documentSourceObject(url);
      let opened: Awaited<ReturnType<ArtifactStore['get']>>;
      try {
        opened = await store.get(bucket, key);
      } catch (err) {
        if (err instanceof ArtifactError) {
          throw invalidRequest(`The document at ${url} cannot be read: ${err.s3Code} (${err.message})`, err);
        }
        throw err;
      }
      if (opened.info.size > MAX_DOCUMENT_SOURCE_BYTES) {
        await opened.close();
        throw new ApiError(
          'InvalidRequestException',
          400,
          `The document at ${url} is ${opened.info.size} bytes; a job document is at most ${MAX_DOCUMENT_SOURCE_BYTES}.`,
        );
      }
      const chunks: Buffer[] = [];
      for await (const chunk of opened.stream() as Readable) chunks.push(chunk as Buffer);
      // Buffer's toString('utf8') would put U+FFFD in place of bytes that are not UTF-8, and the
      // job would carry a document nobody wrote ("A job document is a UTF-8 encoded JSON document").
      try {
        return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(Buffer.concat(chunks));
      } catch {
        throw invalidRequest(`The document at ${url} is not UTF-8.`);
      }
    },
  };
}
