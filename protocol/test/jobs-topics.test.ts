import { describe, expect, it } from 'vitest';
import {
  isJobsRequest,
  isPublishableTopic,
  isValidJobId,
  jobsInvalidTopicRejection,
  jobsResponseTopic,
  jobsTopics,
  NEXT_JOB_ID,
  type ParsedJobsTopic,
  parseJobsTopic,
  topicMatches,
} from '../src/index.js';

/** The topics of the AWS IoT Developer Guide's "Reserved topics" table, Job topics. */
describe('jobs topics', () => {
  const t = jobsTopics('MyThing');
  const job = t.execution('job-1');

  it('spells the reserved topics as AWS documents them', () => {
    expect(t).toMatchObject({
      get: '$aws/things/MyThing/jobs/get',
      getAccepted: '$aws/things/MyThing/jobs/get/accepted',
      getRejected: '$aws/things/MyThing/jobs/get/rejected',
      startNext: '$aws/things/MyThing/jobs/start-next',
      startNextAccepted: '$aws/things/MyThing/jobs/start-next/accepted',
      startNextRejected: '$aws/things/MyThing/jobs/start-next/rejected',
      notify: '$aws/things/MyThing/jobs/notify',
      notifyNext: '$aws/things/MyThing/jobs/notify-next',
    });
    expect(job).toEqual({
      get: '$aws/things/MyThing/jobs/job-1/get',
      getAccepted: '$aws/things/MyThing/jobs/job-1/get/accepted',
      getRejected: '$aws/things/MyThing/jobs/job-1/get/rejected',
      update: '$aws/things/MyThing/jobs/job-1/update',
      updateAccepted: '$aws/things/MyThing/jobs/job-1/update/accepted',
      updateRejected: '$aws/things/MyThing/jobs/job-1/update/rejected',
    });
    expect(t.execution(NEXT_JOB_ID).get).toBe('$aws/things/MyThing/jobs/$next/get');
  });

  it('refuses to build a topic for a thing or job that cannot have one', () => {
    expect(() => jobsTopics('no/slash')).toThrow(TypeError);
    expect(() => t.execution('a+b')).toThrow(TypeError);
    expect(() => t.execution('x'.repeat(65))).toThrow(TypeError);
  });

  it('lets a device publish exactly the four request topics', () => {
    for (const topic of [t.get, t.startNext, job.get, job.update]) expect(isPublishableTopic(topic)).toBe(true);
    for (const topic of [t.getAccepted, job.updateRejected, t.notify, t.notifyNext]) {
      expect(isPublishableTopic(topic)).toBe(false);
    }
  });

  it.each<[string, ParsedJobsTopic | undefined]>([
    ['$aws/things/MyThing/jobs/get', { thingName: 'MyThing', kind: 'get-pending', response: undefined }],
    ['$aws/things/MyThing/jobs/get/accepted', { thingName: 'MyThing', kind: 'get-pending', response: 'accepted' }],
    ['$aws/things/MyThing/jobs/start-next', { thingName: 'MyThing', kind: 'start-next', response: undefined }],
    [
      '$aws/things/MyThing/jobs/start-next/rejected',
      { thingName: 'MyThing', kind: 'start-next', response: 'rejected' },
    ],
    ['$aws/things/MyThing/jobs/j1/get', { thingName: 'MyThing', kind: 'describe', jobId: 'j1', response: undefined }],
    // A job may be called `get`: its describe topic ends in get/get.
    ['$aws/things/MyThing/jobs/get/get', { thingName: 'MyThing', kind: 'describe', jobId: 'get', response: undefined }],
    [
      '$aws/things/MyThing/jobs/$next/get/accepted',
      { thingName: 'MyThing', kind: 'describe', jobId: '$next', response: 'accepted' },
    ],
    ['$aws/things/MyThing/jobs/j1/update', { thingName: 'MyThing', kind: 'update', jobId: 'j1', response: undefined }],
    [
      '$aws/things/MyThing/jobs/j1/update/rejected',
      { thingName: 'MyThing', kind: 'update', jobId: 'j1', response: 'rejected' },
    ],
    ['$aws/things/MyThing/jobs/notify', { thingName: 'MyThing', kind: 'notify', response: undefined }],
    ['$aws/things/MyThing/jobs/notify-next', { thingName: 'MyThing', kind: 'notify-next', response: undefined }],
    ['$aws/things/MyThing/jobs/notify/accepted', undefined],
    ['$aws/things/MyThing/jobs/$next/update', undefined],
    ['$aws/things/MyThing/jobs/a.b/get', undefined],
    [`$aws/things/MyThing/jobs/${'x'.repeat(65)}/get`, undefined],
    ['$aws/things/MyThing/jobs/j1/delete', undefined],
    ['$aws/things/MyThing/jobs/j1/get/accepted/more', undefined],
    ['$aws/things/MyThing/jobs', undefined],
    ['$aws/things/MyThing/jobs/accepted', undefined],
    ['$aws/things/bad name/jobs/get', undefined],
    ['$aws/things/MyThing/shadow/get', undefined],
    ['things/MyThing/jobs/get', undefined],
  ])('parses %s', (topic, expected) => {
    expect(parseJobsTopic(topic)).toEqual(expected);
  });

  it('answers each request on its own accepted and rejected topics', () => {
    for (const request of [t.get, t.startNext, job.get, job.update, t.execution(NEXT_JOB_ID).get]) {
      const parsed = parseJobsTopic(request);
      if (!isJobsRequest(parsed)) throw new Error(`not a request: ${request}`);
      expect(jobsResponseTopic(parsed, 'accepted')).toBe(`${request}/accepted`);
      expect(jobsResponseTopic(parsed, 'rejected')).toBe(`${request}/rejected`);
    }
  });

  it('tells requests from answers and notifications', () => {
    expect([t.get, t.startNext, job.get, job.update].every((topic) => isJobsRequest(parseJobsTopic(topic)))).toBe(true);
    for (const topic of [t.getAccepted, job.updateRejected, t.notify, t.notifyNext, 'pifleet/MyThing/status']) {
      expect(isJobsRequest(parseJobsTopic(topic))).toBe(false);
    }
  });

  it('names the rejection topic of a jobs request that maps to no operation', () => {
    expect(jobsInvalidTopicRejection('$aws/things/MyThing/jobs/a.b/get')).toBe(
      '$aws/things/MyThing/jobs/a.b/get/rejected',
    );
    expect(jobsInvalidTopicRejection('$aws/things/MyThing/jobs/$next/update')).toBe(
      '$aws/things/MyThing/jobs/$next/update/rejected',
    );
    expect(jobsInvalidTopicRejection('$aws/things/MyThing/jobs/a.b/get/rejected')).toBeUndefined();
    expect(jobsInvalidTopicRejection('$aws/things/MyThing/jobs/notify')).toBeUndefined();
    expect(jobsInvalidTopicRejection('$aws/things/MyThing/shadow/get')).toBeUndefined();
  });

  it('the device SDK answer filters match the answer topics', () => {
    // IotJobsClientv2 subscribes to `<request>/+` before it publishes a request.
    expect(topicMatches(`${job.update}/+`, job.updateAccepted)).toBe(true);
    expect(topicMatches(`${t.get}/+`, t.getRejected)).toBe(true);
  });

  it.each([
    ['job-1', true],
    ['A_b-9', true],
    ['x'.repeat(64), true],
    ['x'.repeat(65), false],
    ['', false],
    ['$next', false],
    ['a.b', false],
    ['__proto__', true],
    [7, false],
  ])('job id %j valid: %s', (id, valid) => {
    expect(isValidJobId(id)).toBe(valid);
  });
});
