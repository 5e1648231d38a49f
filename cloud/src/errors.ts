import { CodedError } from '@pifleet/protocol';

/**
 * Base error of @pifleet/cloud. Every error this package throws is a CloudError (or a subclass
 * that sets `name`): a {@link CodedError} with a stable string `code`, the standard `cause`, and
 * frozen domain data.
 *
 * Codes are UPPER_SNAKE (`CA_CSR_SIGNATURE`, `DATA_DIR_LOCKED`, `UPSTREAM_UNAVAILABLE`), except
 * where the code is AWS's own wire error code and is kept exactly as AWS spells it: the
 * exception names of `RegistryError` and `ApiError` (`ResourceNotFoundException`, …).
 */
export class CloudError extends CodedError {
  override name = 'CloudError';
}
