import { describe, expect, it } from 'vitest';
import {
  noShadowMessage,
  POLICY_DOCUMENT_MAX_CHARS,
  policyDocumentLength,
  recommendedDevicePolicy,
  SHADOW_ERRORS,
} from '../src/index.js';

describe('recommended device policy', () => {
  const policy = recommendedDevicePolicy('eu-west-1', '123456789012');
  const resources = (action: string) =>
    policy.Statement.filter((s) => s.Action === action).flatMap((s) => s.Resource ?? []);

  it('allows connecting only as the own thing, with an attached certificate', () => {
    const connect = policy.Statement.find((s) => s.Action === 'iot:Connect');
    expect(connect?.Resource).toBe('arn:aws:iot:eu-west-1:123456789012:client/${iot:Connection.Thing.ThingName}');
    expect(connect?.Condition).toEqual({ Bool: { 'iot:Connection.Thing.IsAttached': 'true' } });
  });

  it('scopes every resource to the thing name variable and never grants a bare wildcard', () => {
    for (const action of ['iot:Publish', 'iot:Subscribe', 'iot:Receive']) {
      const list = resources(action);
      expect(list.length).toBeGreaterThan(0);
      for (const r of list) {
        expect(r).toContain('${iot:Connection.Thing.ThingName}');
        expect(r.endsWith(':topic/*')).toBe(false);
      }
    }
    expect(policy.Statement.every((s) => s.Effect === 'Allow')).toBe(true);
  });

  it('lets a device publish telemetry but not commands', () => {
    const pub = resources('iot:Publish');
    expect(pub).toContain(
      'arn:aws:iot:eu-west-1:123456789012:topic/pifleet/${iot:Connection.Thing.ThingName}/telemetry',
    );
    expect(pub.some((r) => r.endsWith('/commands'))).toBe(false);
  });

  it("grants publishing the own shadow and jobs requests and receiving the own reserved topics, nothing of another thing's", () => {
    const own = 'arn:aws:iot:eu-west-1:123456789012:topic/$aws/things/${iot:Connection.Thing.ThingName}/';
    const ownFilter = own.replace(':topic/', ':topicfilter/');
    const reserved = (list: readonly string[]) => list.filter((r) => r.includes('$aws/'));
    expect(reserved(resources('iot:Publish'))).toEqual(
      ['shadow/*get', 'shadow/*update', 'shadow/*delete', 'jobs/*get', 'jobs/start-next', 'jobs/*update'].map(
        (suffix) => `${own}${suffix}`,
      ),
    );
    expect(reserved(resources('iot:Subscribe'))).toEqual([`${ownFilter}*`]);
    expect(reserved(resources('iot:Receive'))).toEqual([`${own}*`]);
    expect(resources('iot:RetainPublish').some((r) => r.includes('$aws/'))).toBe(false);
  });

  it("fits IoT Core's 2,048-character policy limit in the longest region name", () => {
    // CreatePolicy refuses a longer document (whitespace not counted): an earlier version of this
    // policy, one resource per topic, was ~3,100 characters and could not be created in AWS.
    const text = JSON.stringify(recommendedDevicePolicy('ap-southeast-5', '123456789012'), null, 2);
    expect(policyDocumentLength(text)).toBeLessThanOrEqual(POLICY_DOCUMENT_MAX_CHARS);
    expect(policyDocumentLength(' a\n\tb ')).toBe(2);
  });
});

describe('shadow errors', () => {
  it('carries IoT Core codes and messages', () => {
    expect(SHADOW_ERRORS.versionConflict).toEqual({ code: 409, message: 'Version conflict' });
    expect(SHADOW_ERRORS.tooDeep.code).toBe(400);
    expect(noShadowMessage('pi-01')).toBe("No shadow exists with name: 'pi-01'");
  });
});
