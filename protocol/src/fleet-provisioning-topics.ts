/**
 * The reserved topics of fleet provisioning, as the AWS IoT Developer Guide spells them ("Device
 * provisioning MQTT API"), in the JSON payload format (the local core speaks no CBOR):
 *
 *   $aws/certificates/create/json                          CreateKeysAndCertificate
 *   $aws/certificates/create-from-csr/json                 CreateCertificateFromCsr
 *   $aws/provisioning-templates/{template}/provision/json  RegisterThing
 *   each request topic + `/accepted` or `/rejected`        the service's answers
 */

/** The two certificate requests, by the level after `$aws/certificates/`. */
export type CertificateRequestKind = 'create' | 'create-from-csr';

const CERTIFICATES_PREFIX = '$aws/certificates';

function requestTopics(request: string) {
  return { request, accepted: `${request}/accepted`, rejected: `${request}/rejected` } as const;
}

/** The request and answer topics of CreateKeysAndCertificate and CreateCertificateFromCsr. */
export const certificateTopics = {
  create: requestTopics(`${CERTIFICATES_PREFIX}/create/json`),
  createFromCsr: requestTopics(`${CERTIFICATES_PREFIX}/create-from-csr/json`),
} as const;

/** The filters a service subscribes to for the two certificate requests (answers are filtered out by kind). */
export const certificateRequestFilters: readonly string[] = [
  certificateTopics.create.request,
  certificateTopics.createFromCsr.request,
];

/** Which certificate request a topic is; undefined for answers and every other topic. */
export function certificateRequestOf(topic: string): CertificateRequestKind | undefined {
  if (topic === certificateTopics.create.request) return 'create';
  if (topic === certificateTopics.createFromCsr.request) return 'create-from-csr';
  return undefined;
}

/** The topic a certificate request is answered on. */
export function certificateResponseTopic(kind: CertificateRequestKind, outcome: 'accepted' | 'rejected'): string {
  const topics = kind === 'create' ? certificateTopics.create : certificateTopics.createFromCsr;
  return topics[outcome];
}

/** Provisioning template names: 1–36 characters of `[0-9A-Za-z_-]` (CreateProvisioningTemplate). */
const TEMPLATE_NAME_PATTERN = /^[0-9A-Za-z_-]{1,36}$/;

/** The RegisterThing topics of one template (for the RegisterThing service and devices). */
export function provisionTopics(templateName: string) {
  if (!TEMPLATE_NAME_PATTERN.test(templateName)) {
    throw new TypeError(
      `invalid provisioning template name ${JSON.stringify(templateName)}: use 1-36 characters of a-z A-Z 0-9 _ -`,
    );
  }
  return requestTopics(`$aws/provisioning-templates/${templateName}/provision/json`);
}

const PROVISION_PREFIX = '$aws/provisioning-templates/';
const PROVISION_SUFFIX = '/provision/json';

/** The filter a service subscribes to for every template's RegisterThing requests. */
export const provisionRequestFilter = `${PROVISION_PREFIX}+${PROVISION_SUFFIX}`;

/**
 * The template a RegisterThing request names, from its topic; undefined for answers, other topics
 * and a template level that is not a valid template name (nothing could be provisioned with it).
 */
export function templateOfProvisionRequest(topic: string): string | undefined {
  if (!topic.startsWith(PROVISION_PREFIX) || !topic.endsWith(PROVISION_SUFFIX)) return undefined;
  const name = topic.slice(PROVISION_PREFIX.length, topic.length - PROVISION_SUFFIX.length);
  return TEMPLATE_NAME_PATTERN.test(name) ? name : undefined;
}
