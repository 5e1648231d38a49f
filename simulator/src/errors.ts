import { CodedError } from '@pifleet/protocol';

/**
 * Base error of @pifleet/simulator. Every error this package throws is a SimulatorError (or a subclass
 * that sets `name`): a {@link CodedError} with a stable string `code`, the standard `cause`, and
 * frozen domain data.
 *
 * Codes are UPPER_SNAKE (`FLEET_USAGE`, `SIM_NOT_STARTED`, `GPIO_BUSY`). The errno codes the
 * simulated I2C bus throws (`EIO`, `ETIMEDOUT`, `EREMOTEIO`) are not ours: they mimic the
 * kernel's, so the agent's drivers meet what they meet on a Pi.
 */
export class SimulatorError extends CodedError {
  override name = 'SimulatorError';
}
