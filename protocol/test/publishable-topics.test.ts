import { describe, expect, it } from 'vitest';
import { isPublishableTopic, presenceTopics, shadowTopics } from '../src/index.js';

/** The Publish column of the AWS IoT Developer Guide's "Reserved topics" tables. */
describe('isPublishableTopic', () => {
  const classic = shadowTopics('pi-01');
  const named = shadowTopics('pi-01', 'config');

  it.each([
    ['an application topic', 'pifleet/pi-01/telemetry'],
    ['a topic with a $ later on', 'a/$b'],
    ['a classic shadow update request', classic.update],
    ['a classic shadow get request', classic.get],
    ['a classic shadow delete request', classic.delete],
    ['a named shadow update request', named.update],
    ['a jobs get request', '$aws/things/pi-01/jobs/get'],
    ['a jobs start-next request', '$aws/things/pi-01/jobs/start-next'],
    ['a job execution get request', '$aws/things/pi-01/jobs/job-7/get'],
    ['a job execution update request', '$aws/things/pi-01/jobs/job-7/update'],
    ['Device Defender metrics', '$aws/things/pi-01/defender/metrics/json'],
    ['a streams get request', '$aws/things/pi-01/streams/s1/get/cbor'],
    ['a streams describe request', '$aws/things/pi-01/streams/s1/describe/json'],
    ['a certificate create request', '$aws/certificates/create/json'],
    ['a certificate create-from-csr request', '$aws/certificates/create-from-csr/cbor'],
    ['a fleet provisioning request', '$aws/provisioning-templates/tpl/provision/json'],
    ['basic ingest', '$aws/rules/pifleet_telemetry_ingest'],
    ['basic ingest with a subtopic', '$aws/rules/pifleet_telemetry_ingest/pi-01/telemetry'],
  ])('allows %s', (_what, topic) => {
    expect(isPublishableTopic(topic)).toBe(true);
  });

  it.each([
    ['a presence connected event', presenceTopics.connected('pi-01')],
    ['a presence disconnected event', presenceTopics.disconnected('pi-01')],
    ['a subscription event', '$aws/events/subscriptions/subscribed/pi-01'],
    ['a registry event', '$aws/events/thing/pi-01/created'],
    ['a job event', '$aws/events/job/job-7/completed'],
    ['a shadow update/accepted response', classic.updateAccepted],
    ['a shadow update/rejected response', classic.updateRejected],
    ['a shadow update/delta', classic.updateDelta],
    ['a shadow update/documents', named.updateDocuments],
    ['a shadow get/accepted response', classic.getAccepted],
    ['a shadow with an invalid thing name', '$aws/things/no spaces/shadow/update'],
    ['a jobs response', '$aws/things/pi-01/jobs/get/accepted'],
    ['a jobs notification', '$aws/things/pi-01/jobs/notify'],
    ['a Defender response', '$aws/things/pi-01/defender/metrics/json/accepted'],
    ['a Defender metric in another format', '$aws/things/pi-01/defender/metrics/xml'],
    ['streams data', '$aws/things/pi-01/streams/s1/data/json'],
    ['a certificate create response', '$aws/certificates/create/json/accepted'],
    ['a fleet provisioning response', '$aws/provisioning-templates/tpl/provision/json/rejected'],
    ['a tunnels notification', '$aws/things/pi-01/tunnels/notify'],
    ['basic ingest without a rule', '$aws/rules/'],
    ['a SiteWise notification', '$aws/sitewise/asset-models/m/assets/a/properties/p'],
    ['$SYS', '$SYS/broker/uptime'],
    ['another $ topic', '$pifleet/x'],
    ['a bare $aws', '$aws'],
  ])('refuses %s', (_what, topic) => {
    expect(isPublishableTopic(topic)).toBe(false);
  });
});
