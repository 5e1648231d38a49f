import { describe, expect, it } from 'vitest';
import { compileTemplate, IotSqlError, prepareMessage, renderTemplate } from '../../src/core/iotsql/index.js';

const msg = {
  topic: 'my/iot/topic',
  payload: JSON.stringify({
    deviceid: 'iot123',
    temp: 54.98,
    coords: { latitude: 47.615694 },
    tags: ['a', 'b'],
    nothing: null,
    weird: 'x}y',
  }),
  clientId: 'pi-01',
  timestamp: 1579637878451,
};

describe('substitution templates', () => {
  it.each<[string, string]>([
    ['${topic()}/republish', 'my/iot/topic/republish'],
    ['pifleet/${topic(2)}/alerts', 'pifleet/iot/alerts'],
    ['device/${deviceid}', 'device/iot123'],
    ['${coords.latitude}', '47.615694'],
    ['${coords}', '{"latitude":47.615694}'],
    ['${tags}', '["a","b"]'],
    ['${nothing}', 'null'],
    ['[${missing}]', '[]'],
    ['${temp > 50}', 'true'],
    ["${replace(topic(), '/', '-') + '-' + timestamp() + '-' + clientid()}", 'my-iot-topic-1579637878451-pi-01'],
    ["${concat('{', weird, '}')}", '{x}y}'],
    ["${get({'k': 'v}'}, 'k')}", 'v}'],
    ['${upper(deviceid)}-${lower("AB")}', 'IOT123-ab'],
    ['no substitutions at all', 'no substitutions at all'],
    ['', ''],
    ['$ and { and } stay literal', '$ and { and } stay literal'],
    ['$${deviceid}$', '$iot123$'],
    ['${ deviceid }', 'iot123'],
  ])('%s', (template, expected) => {
    expect(renderTemplate(template, msg)).toBe(expected);
  });

  it('compiles once, renders many messages, and knows whether it is dynamic', () => {
    const t = compileTemplate('pifleet/${topic(2)}/alerts');
    expect(t.dynamic).toBe(true);
    expect(t.render({ topic: 'pifleet/pi-01/telemetry', payload: '{}' })).toBe('pifleet/pi-01/alerts');
    expect(t.render(prepareMessage({ topic: 'pifleet/pi-02/telemetry', payload: '{}' }))).toBe('pifleet/pi-02/alerts');
    expect(compileTemplate('static/topic').dynamic).toBe(false);
  });

  it('error-action templates evaluate against the failure payload', () => {
    const failure = {
      ruleName: 'telemetryToIngest',
      topic: 'pifleet/pi-01/telemetry',
      clientId: 'pi-01',
      base64OriginalPayload: 'e30=',
      failures: [{ failedAction: 'LambdaAction', failedResource: 'ingest', errorMessage: 'boom' }],
    };
    const key = renderTemplate(
      'errors/${ruleName}/${get(failures, 0).failedAction}/${newuuid()}',
      {
        topic: '$pifleet/rules/errors',
        payload: JSON.stringify(failure),
      },
      { newUuid: () => 'u1' },
    );
    expect(key).toBe('errors/telemetryToIngest/LambdaAction/u1');
  });

  it.each<[string, number, number, RegExp]>([
    // the expression is topic(2) / alerts, and the brace never closes
    ['pifleet/${topic(2)/alerts', 1, 9, /unterminated substitution/],
    ["pifleet/${topic(2)'x'}", 1, 19, /unexpected 'x' in substitution, expected '}'/],
    ['pifleet/${', 1, 9, /unterminated substitution/],
    ['a/${}', 1, 3, /empty substitution/],
    ['a/${topic(2)', 1, 3, /unterminated substitution/],
    ['a/${nofn(1)}', 1, 5, /unknown function nofn/],
    ["a/${'open}", 1, 5, /unterminated string/],
    ['line1\n  ${x +}', 2, 8, /unexpected '}'/],
    ['${a b}', 1, 5, /unexpected identifier "b" in substitution|expected '}'/],
  ])('rejects %j at line %i, column %i', (template, line, column, reason) => {
    let caught: unknown;
    try {
      compileTemplate(template);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(IotSqlError);
    const err = caught as IotSqlError;
    expect({ line: err.line, column: err.column }).toEqual({ line, column });
    expect(err.reason).toMatch(reason);
  });
});
