import { CloudError } from '../errors.js';

/**
 * An error with an AWS wire form: the HTTP status, the `x-amzn-ErrorType` name the AWS SDKs turn
 * into an exception class, and the JSON body `{message, ...fields}`. Its `code` is that name
 * (`ResourceNotFoundException`, …), AWS's own error code, as a `RegistryError`'s is.
 */
export class ApiError extends CloudError {
  override name = 'ApiError';
  readonly status: number;
  readonly errorType: string;
  readonly fields: Readonly<Record<string, string>>;

  constructor(
    errorType: string,
    status: number,
    message: string,
    options: { cause?: unknown; fields?: Record<string, string> } = {},
  ) {
    super(errorType, message, {
      ...(options.cause === undefined ? {} : { cause: options.cause }),
      data: { errorType, status },
    });
    this.status = status;
    this.errorType = errorType;
    this.fields = Object.freeze({ ...(options.fields ?? {}) });
  }
}

/** 400 InvalidRequestException: the request is not valid (bad JSON, bad parameter). */
export function invalidRequest(message: string, cause?: unknown): ApiError {
  return new ApiError('InvalidRequestException', 400, message, cause === undefined ? {} : { cause });
}
