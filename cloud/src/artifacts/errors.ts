import { CloudError } from '../errors.js';

/**
 * The S3 error codes the local artifact store answers with, and their HTTP statuses as S3 sends
 * them ("Error responses" in the Amazon S3 API reference). `@aws-sdk/client-s3` turns the code of
 * the XML error body into the exception's `name` (and into its modeled classes, `NoSuchKey`, …).
 */
export const S3_ERROR_STATUS = {
  AccessDenied: 403,
  AuthorizationHeaderMalformed: 400,
  AuthorizationQueryParametersError: 400,
  BadDigest: 400,
  EntityTooLarge: 400,
  IncompleteBody: 400,
  InternalError: 500,
  InvalidAccessKeyId: 403,
  InvalidArgument: 400,
  InvalidBucketName: 400,
  InvalidRange: 416,
  InvalidRequest: 400,
  KeyTooLongError: 400,
  MethodNotAllowed: 405,
  MissingContentLength: 411,
  NoSuchBucket: 404,
  NoSuchKey: 404,
  NotImplemented: 501,
  RequestTimeTooSkewed: 403,
  SignatureDoesNotMatch: 403,
  XAmzContentSHA256Mismatch: 400,
} as const;

export type S3ErrorCode = keyof typeof S3_ERROR_STATUS;

/** An error of the artifact store with S3's wire form: its `code` is S3's error code. */
export class ArtifactError extends CloudError {
  override name = 'ArtifactError';
  readonly s3Code: S3ErrorCode;
  readonly status: number;
  /** Extra elements of S3's `<Error>` body (`Key`, `BucketName`, `Expires`, …). */
  readonly fields: Readonly<Record<string, string>>;

  constructor(code: S3ErrorCode, message: string, options: { cause?: unknown; fields?: Record<string, string> } = {}) {
    super(code, message, {
      ...(options.cause === undefined ? {} : { cause: options.cause }),
      data: { code, ...(options.fields ?? {}) },
    });
    this.s3Code = code;
    this.status = S3_ERROR_STATUS[code];
    this.fields = Object.freeze({ ...(options.fields ?? {}) });
  }
}
