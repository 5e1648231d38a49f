import { describe, expect, it } from 'vitest';
import {
  appTopicFilters,
  appTopicResource,
  appTopics,
  appTopicTemplate,
  checkTopicFilter,
  checkTopicName,
  isValidClientId,
  isValidShadowName,
  isValidThingName,
  parseAppTopic,
  parseBasicIngestTopic,
  parsePresenceTopic,
  parseShadowTopic,
  presenceTopics,
  shadowTopic,
  shadowTopicFilters,
  shadowTopics,
  topicMatches,
} from '../src/index.js';

describe('thing, shadow and client id validation', () => {
  it.each([
    ['pi-01', true],
    ['a:b_c-d', true],
    ['x'.repeat(128), true],
    ['x'.repeat(129), false],
    ['', false],
    ['has space', false],
    ['slash/name', false],
    ['plus+', false],
    ['ünïcode', false],
  ])('thing name %j valid=%s', (name, valid) => {
    expect(isValidThingName(name)).toBe(valid);
  });

  it('rejects non-strings as thing names', () => {
    expect(isValidThingName(42)).toBe(false);
    expect(isValidThingName(undefined)).toBe(false);
  });

  it.each([
    ['config', true],
    ['x'.repeat(64), true],
    ['x'.repeat(65), false],
    ['$reserved', false],
  ])('shadow name %j valid=%s', (name, valid) => {
    expect(isValidShadowName(name)).toBe(valid);
  });

  it.each([
    ['pi-01', true],
    ['é'.repeat(64), true], // 128 bytes
    ['é'.repeat(65), false], // 130 bytes
    ['', false],
    ['with#hash', false],
    ['ctrl\u0001', false],
  ])('client id %j valid=%s', (id, valid) => {
    expect(isValidClientId(id)).toBe(valid);
  });
});

describe('topic builders', () => {
  it('builds application topics under pifleet/{thing}', () => {
    expect(appTopics.telemetry('pi-01')).toBe('pifleet/pi-01/telemetry');
    expect(appTopics.status('pi-01')).toBe('pifleet/pi-01/status');
    expect(appTopics.commands('pi-01')).toBe('pifleet/pi-01/commands');
    expect(appTopics.alerts('pi-01')).toBe('pifleet/pi-01/alerts');
  });

  it('refuses to build a topic for an invalid thing name', () => {
    expect(() => appTopics.telemetry('a/b')).toThrow(/invalid thing name/);
    expect(() => shadowTopics('a+b')).toThrow(/invalid thing name/);
    expect(() => shadowTopics('ok', 'bad name')).toThrow(/invalid shadow name/);
  });

  it('builds every classic shadow topic as AWS spells it', () => {
    expect(shadowTopics('pi-01')).toEqual({
      get: '$aws/things/pi-01/shadow/get',
      getAccepted: '$aws/things/pi-01/shadow/get/accepted',
      getRejected: '$aws/things/pi-01/shadow/get/rejected',
      update: '$aws/things/pi-01/shadow/update',
      updateAccepted: '$aws/things/pi-01/shadow/update/accepted',
      updateRejected: '$aws/things/pi-01/shadow/update/rejected',
      updateDelta: '$aws/things/pi-01/shadow/update/delta',
      updateDocuments: '$aws/things/pi-01/shadow/update/documents',
      delete: '$aws/things/pi-01/shadow/delete',
      deleteAccepted: '$aws/things/pi-01/shadow/delete/accepted',
      deleteRejected: '$aws/things/pi-01/shadow/delete/rejected',
    });
  });

  it('builds named shadow topics', () => {
    expect(shadowTopics('pi-01', 'config').updateDelta).toBe('$aws/things/pi-01/shadow/name/config/update/delta');
    expect(shadowTopic('pi-01', 'config', 'delete/rejected')).toBe(
      '$aws/things/pi-01/shadow/name/config/delete/rejected',
    );
  });

  it('builds filters that match one application topic kind of every thing', () => {
    for (const kind of ['telemetry', 'status', 'commands', 'alerts'] as const) {
      const filter = appTopicFilters[kind];
      expect(checkTopicFilter(filter)).toBeUndefined();
      expect(topicMatches(filter, appTopics[kind]('pi-01'))).toBe(true);
      expect(topicMatches(filter, appTopics[kind === 'alerts' ? 'telemetry' : 'alerts']('pi-01'))).toBe(false);
    }
  });

  it('builds application topics as policy resources, the thing a variable or a wildcard', () => {
    expect(appTopicResource('telemetry', '*')).toBe('pifleet/*/telemetry');
    expect(appTopicResource('status', '${iot:Connection.Thing.ThingName}')).toBe(
      'pifleet/${iot:Connection.Thing.ThingName}/status',
    );
  });

  it('builds IoT SQL substitution templates of application topics', () => {
    expect(appTopicTemplate('alerts', 'topic(2)')).toBe('pifleet/${topic(2)}/alerts');
    expect(appTopicTemplate('commands', 'thingName')).toBe('pifleet/${thingName}/commands');
  });

  it('builds shadow filters for every thing', () => {
    expect(shadowTopicFilters.all).toBe('$aws/things/+/shadow/#');
    expect(shadowTopicFilters.classic('update/delta')).toBe('$aws/things/+/shadow/update/delta');
    expect(shadowTopicFilters.named('delete/accepted')).toBe('$aws/things/+/shadow/name/+/delete/accepted');
    const classic = shadowTopics('pi-01');
    const named = shadowTopics('pi-01', 'cfg');
    for (const filter of [shadowTopicFilters.all, shadowTopicFilters.classic('update/delta')]) {
      expect(checkTopicFilter(filter)).toBeUndefined();
    }
    expect(topicMatches(shadowTopicFilters.all, classic.updateAccepted)).toBe(true);
    expect(topicMatches(shadowTopicFilters.all, named.update)).toBe(true);
    expect(topicMatches(shadowTopicFilters.classic('update/delta'), classic.updateDelta)).toBe(true);
    expect(topicMatches(shadowTopicFilters.classic('update/delta'), named.updateDelta)).toBe(false);
    expect(topicMatches(shadowTopicFilters.classic('update/delta'), classic.updateDocuments)).toBe(false);
    expect(topicMatches(shadowTopicFilters.named('update/delta'), named.updateDelta)).toBe(true);
    expect(topicMatches(shadowTopicFilters.named('update/delta'), classic.updateDelta)).toBe(false);
  });

  it('builds presence topics', () => {
    expect(presenceTopics.connected('pi-01')).toBe('$aws/events/presence/connected/pi-01');
    expect(presenceTopics.disconnected('pi-01')).toBe('$aws/events/presence/disconnected/pi-01');
  });
});

describe('topic parsing', () => {
  it.each([
    [
      '$aws/things/pi-01/shadow/update',
      { thingName: 'pi-01', shadowName: undefined, operation: 'update', response: undefined },
    ],
    [
      '$aws/things/pi-01/shadow/get/accepted',
      { thingName: 'pi-01', shadowName: undefined, operation: 'get', response: 'accepted' },
    ],
    [
      '$aws/things/pi-01/shadow/update/delta',
      { thingName: 'pi-01', shadowName: undefined, operation: 'update', response: 'delta' },
    ],
    [
      '$aws/things/pi-01/shadow/name/cfg/update/documents',
      { thingName: 'pi-01', shadowName: 'cfg', operation: 'update', response: 'documents' },
    ],
    [
      '$aws/things/pi-01/shadow/name/cfg/delete/rejected',
      { thingName: 'pi-01', shadowName: 'cfg', operation: 'delete', response: 'rejected' },
    ],
  ])('parses %s', (topic, expected) => {
    expect(parseShadowTopic(topic)).toEqual(expected);
  });

  it.each([
    'pifleet/pi-01/telemetry',
    '$aws/things/pi-01/shadow',
    '$aws/things/pi-01/shadow/get/delta', // delta exists only for update
    '$aws/things/pi-01/shadow/update/accepted/extra',
    '$aws/things/+/shadow/update',
    '$aws/things/pi-01/shadow/name//update',
    '$aws/things/pi-01/shadow/list',
  ])('does not parse %s as a shadow topic', (topic) => {
    expect(parseShadowTopic(topic)).toBeUndefined();
  });

  it('round-trips every built shadow topic', () => {
    for (const name of [undefined, 'cfg']) {
      for (const topic of Object.values(shadowTopics('pi-01', name))) {
        const parsed = parseShadowTopic(topic);
        expect(parsed?.thingName).toBe('pi-01');
        expect(parsed?.shadowName).toBe(name);
      }
    }
  });

  it('parses application and presence topics', () => {
    expect(parseAppTopic('pifleet/pi-01/telemetry')).toEqual({ thingName: 'pi-01', kind: 'telemetry' });
    expect(parseAppTopic('pifleet/pi-01/other')).toBeUndefined();
    expect(parseAppTopic('other/pi-01/telemetry')).toBeUndefined();
    expect(parsePresenceTopic('$aws/events/presence/connected/pi-01')).toEqual({
      eventType: 'connected',
      clientId: 'pi-01',
    });
    expect(parsePresenceTopic('$aws/events/presence/left/pi-01')).toBeUndefined();
  });
});

describe('topic limits', () => {
  it.each([
    ['pifleet/pi-01/telemetry', undefined],
    ['a/b/c/d/e/f/g/h', undefined], // 7 slashes
    ['a/b/c/d/e/f/g/h/i', 'topic has more than 7 forward slashes'],
    ['$aws/things/pi-01/shadow/name/cfg/update/accepted', undefined], // reserved: slash limit does not apply
    ['', 'topic is empty'],
    ['a/+/b', 'topic name contains a wildcard'],
    ['a/#', 'topic name contains a wildcard'],
    [`t/${'x'.repeat(255)}`, 'topic is longer than 256 bytes'],
    [`t/${'x'.repeat(254)}`, undefined],
    ['nul\u0000', 'topic contains a NUL character'],
  ])('topic %j → %s', (topic, reason) => {
    expect(checkTopicName(topic)).toBe(reason);
  });

  it('counts UTF-8 bytes, not characters', () => {
    expect(checkTopicName('é'.repeat(128))).toBeUndefined(); // 256 bytes
    expect(checkTopicName('é'.repeat(129))).toMatch(/longer than 256 bytes/);
  });

  it.each([
    ['a/+/c', undefined],
    ['a/#', undefined],
    ['#', undefined],
    ['a/b#', "'#' must be a whole level and the last one"],
    ['a/#/c', "'#' must be a whole level and the last one"],
    ['a/b+/c', "'+' must be a whole level"],
    ['', 'topic filter is empty'],
  ])('filter %j → %s', (filter, reason) => {
    expect(checkTopicFilter(filter)).toBe(reason);
  });
});

describe('topicMatches', () => {
  it.each([
    ['a/b', 'a/b', true],
    ['a/+', 'a/b', true],
    ['a/+', 'a/b/c', false],
    ['a/#', 'a', true],
    ['a/#', 'a/b/c', true],
    ['+/+/telemetry', 'pifleet/pi/telemetry', true],
    ['pifleet/+/telemetry', 'pifleet/pi/status', false],
    ['#', '$aws/things/x/shadow/update', false],
    ['+/things/x', '$aws/things/x', false],
    ['$aws/things/+/shadow/#', '$aws/things/x/shadow/update/accepted', true],
    ['a/b', 'a/b/c', false],
    ['a/b/c', 'a/b', false],
  ])('%s matches %s: %s', (filter, topic, expected) => {
    expect(topicMatches(filter, topic)).toBe(expected);
  });
});

describe('parseBasicIngestTopic', () => {
  it.each([
    ['$aws/rules/ingest/pifleet/pi-1/telemetry', { ruleName: 'ingest', topic: 'pifleet/pi-1/telemetry' }],
    ['$aws/rules/ingest/', { ruleName: 'ingest', topic: '' }],
    ['$aws/rules/ingest', { ruleName: 'ingest', topic: '' }],
    ['pifleet/pi-1/telemetry', undefined],
    ['$aws/things/pi-1/shadow/update', undefined],
    ['$aws/rulesx/a/b', undefined],
  ])('%s', (topic, expected) => {
    expect(parseBasicIngestTopic(topic)).toEqual(expected);
  });
});
