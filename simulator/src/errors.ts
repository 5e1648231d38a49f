import { CodedError } from '@pifleet/protocol';

/**
 * Base error of @pifleet/simulator. Every error this package throws is a SimulatorError (or a subclass
 * that sets `name`): a {@link CodedError} with a stable string `code`, the standard `cause`, and
 * frozen domain data.
 */
export class SimulatorError extends CodedError {
  override name = 'SimulatorError';
}
