import { CloudError } from '../src/errors.js';

/** A deployment that cannot be built: a rule the translator cannot express, a handler that does not bundle, bad settings. */
export class DeploymentError extends CloudError {
  override name = 'DeploymentError';
}
