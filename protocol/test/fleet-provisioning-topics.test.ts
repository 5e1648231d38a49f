import { describe, expect, it } from 'vitest';
import {
  certificateRequestFilters,
  certificateRequestOf,
  certificateResponseTopic,
  certificateTopics,
  provisionRequestFilter,
  provisionTopics,
  templateOfProvisionRequest,
} from '../src/index.js';

/** The fleet provisioning topics exactly as the "Device provisioning MQTT API" spells them (JSON payload format). */
describe('fleet provisioning topics', () => {
  it('spell the certificate requests and their answers as AWS documents them', () => {
    expect(certificateTopics).toEqual({
      create: {
        request: '$aws/certificates/create/json',
        accepted: '$aws/certificates/create/json/accepted',
        rejected: '$aws/certificates/create/json/rejected',
      },
      createFromCsr: {
        request: '$aws/certificates/create-from-csr/json',
        accepted: '$aws/certificates/create-from-csr/json/accepted',
        rejected: '$aws/certificates/create-from-csr/json/rejected',
      },
    });
    expect(certificateRequestFilters).toEqual([
      '$aws/certificates/create/json',
      '$aws/certificates/create-from-csr/json',
    ]);
    expect(certificateResponseTopic('create-from-csr', 'rejected')).toBe(
      '$aws/certificates/create-from-csr/json/rejected',
    );
  });

  it.each([
    ['$aws/certificates/create/json', 'create'],
    ['$aws/certificates/create-from-csr/json', 'create-from-csr'],
    ['$aws/certificates/create/json/accepted', undefined],
    ['$aws/certificates/create/cbor', undefined],
    ['$aws/certificates/create', undefined],
    ['$aws/certificates/create/json/', undefined],
    ['$AWS/certificates/create/json', undefined],
  ])('certificateRequestOf(%s) is %s', (topic, kind) => {
    expect(certificateRequestOf(topic)).toBe(kind);
  });

  it("spell a template's RegisterThing topics, and refuse names CreateProvisioningTemplate would", () => {
    expect(provisionTopics('pifleet-claim_1')).toEqual({
      request: '$aws/provisioning-templates/pifleet-claim_1/provision/json',
      accepted: '$aws/provisioning-templates/pifleet-claim_1/provision/json/accepted',
      rejected: '$aws/provisioning-templates/pifleet-claim_1/provision/json/rejected',
    });
    expect(provisionTopics('a'.repeat(36)).request).toContain('a'.repeat(36));
    for (const bad of ['', 'a'.repeat(37), 'a/b', '+', '#', 'a b', 'é']) {
      expect(() => provisionTopics(bad)).toThrow(TypeError);
    }
  });

  it('read the template of a RegisterThing request, and nothing from answers or other topics', () => {
    expect(provisionRequestFilter).toBe('$aws/provisioning-templates/+/provision/json');
    expect(templateOfProvisionRequest('$aws/provisioning-templates/pifleet-claim/provision/json')).toBe(
      'pifleet-claim',
    );
    for (const topic of [
      '$aws/provisioning-templates/pifleet-claim/provision/json/accepted',
      '$aws/provisioning-templates/pifleet-claim/provision/cbor',
      '$aws/provisioning-templates//provision/json',
      `$aws/provisioning-templates/${'a'.repeat(37)}/provision/json`,
      '$aws/provisioning-templates/a/b/provision/json',
      '$aws/certificates/create/json',
    ]) {
      expect(templateOfProvisionRequest(topic)).toBeUndefined();
    }
  });
});
