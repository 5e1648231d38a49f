import { CodedError } from '@pifleet/protocol';

/**
 * Base error of @pifleet/cloud. Every error this package throws is a CloudError (or a subclass
 * that sets `name`): a {@link CodedError} with a stable string `code`, the standard `cause`, and
 * frozen domain data.
 */
export class CloudError extends CodedError {
  override name = 'CloudError';
}
