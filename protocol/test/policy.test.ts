import { describe, expect, it } from 'vitest';
import { noShadowMessage, recommendedDevicePolicy, SHADOW_ERRORS } from '../src/index.js';

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

  it('grants exactly the jobs topics the device SDK jobs client uses, for the own thing only', () => {
    const own = 'arn:aws:iot:eu-west-1:123456789012:topic/$aws/things/${iot:Connection.Thing.ThingName}/jobs/';
    const ownFilter = own.replace(':topic/', ':topicfilter/');
    const jobs = (list: readonly string[], prefix: string) =>
      list
        .filter((r) => r.includes('/jobs/'))
        .map((r) => {
          expect(r.startsWith(prefix)).toBe(true);
          return r.slice(prefix.length);
        });
    expect(jobs(resources('iot:Publish'), own)).toEqual(['get', 'start-next', '*/get', '*/update']);
    const answers = ['get/*', 'start-next/*', '*/get/*', '*/update/*', 'notify', 'notify-next'];
    expect(jobs(resources('iot:Subscribe'), ownFilter)).toEqual(answers);
    expect(jobs(resources('iot:Receive'), own)).toEqual(answers);
    expect(resources('iot:RetainPublish').some((r) => r.includes('/jobs/'))).toBe(false);
  });
});

describe('shadow errors', () => {
  it('carries IoT Core codes and messages', () => {
    expect(SHADOW_ERRORS.versionConflict).toEqual({ code: 409, message: 'Version conflict' });
    expect(SHADOW_ERRORS.tooDeep.code).toBe(400);
    expect(noShadowMessage('pi-01')).toBe("No shadow exists with name: 'pi-01'");
  });
});
