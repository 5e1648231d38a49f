import { CloudError } from '../errors.js';

/**
 * The registry's rejections. Their codes are the AWS IoT exception names, because the registry
 * implements AWS IoT's semantics and the control plane returns them unchanged on the wire.
 */
export type RegistryErrorCode =
  | 'ResourceNotFoundException'
  | 'ResourceAlreadyExistsException'
  | 'DeleteConflictException'
  | 'CertificateStateException'
  | 'InvalidRequestException'
  | 'VersionConflictException'
  | 'MalformedPolicyException'
  | 'LimitExceededException';

export class RegistryError extends CloudError {
  override name = 'RegistryError';
  declare readonly code: RegistryErrorCode;

  constructor(
    code: RegistryErrorCode,
    message: string,
    options: { cause?: unknown; data?: Record<string, unknown> } = {},
  ) {
    super(code, message, options);
  }
}

export const notFound = (message: string, data?: Record<string, unknown>) =>
  new RegistryError('ResourceNotFoundException', message, data === undefined ? {} : { data });
export const invalid = (message: string, data?: Record<string, unknown>) =>
  new RegistryError('InvalidRequestException', message, data === undefined ? {} : { data });
