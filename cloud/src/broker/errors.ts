import { CloudError } from '../errors.js';

/** A broker refusal or failure. `code` is stable; `data` says which client and why. */
export class BrokerError extends CloudError {
  override name = 'BrokerError';
}

/** Refusal codes the broker uses (in logs and in the errors aedes receives). */
export const BROKER_ERRORS = {
  noCertificate: 'BROKER_NO_CLIENT_CERTIFICATE',
  unknownCertificate: 'BROKER_UNKNOWN_CERTIFICATE',
  inactiveCertificate: 'BROKER_CERTIFICATE_NOT_ACTIVE',
  connectDenied: 'BROKER_CONNECT_DENIED',
  publishDenied: 'BROKER_PUBLISH_DENIED',
  reservedTopic: 'BROKER_RESERVED_TOPIC',
  invalidTopic: 'BROKER_INVALID_TOPIC',
  payloadTooLarge: 'BROKER_PAYLOAD_TOO_LARGE',
  qosNotSupported: 'BROKER_QOS_NOT_SUPPORTED',
  notStarted: 'BROKER_NOT_STARTED',
  notAccepted: 'BROKER_MESSAGE_NOT_ACCEPTED',
  handlerInstalled: 'BROKER_HANDLER_INSTALLED',
  badOption: 'BROKER_BAD_OPTION',
  quotaExceeded: 'BROKER_QUOTA_EXCEEDED',
} as const;
