import { describe, expect, it } from 'vitest';
import { NO_PROPERTIES } from '../../src/broker/properties.js';
import { parsePublishProperties, type RequestHeaders } from '../../src/shadow/publish-properties.js';

/** The data-plane Publish's MQTT 5 properties, for the inputs the SDK never sends. */

const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');
const parse = (query: Record<string, string> = {}, headers: RequestHeaders = {}) =>
  parsePublishProperties(new URLSearchParams(query), headers);

describe('parsePublishProperties', () => {
  it('answers the shared empty properties when the request sets none', () => {
    expect(parse()).toEqual({ ok: true, properties: NO_PROPERTIES });
    expect(parse({}, { 'x-amz-mqtt5-user-properties': b64('[]') })).toEqual({ ok: true, properties: NO_PROPERTIES });
    expect(parse({}, { 'x-amz-mqtt5-user-properties': b64('[{}]') })).toEqual({ ok: true, properties: NO_PROPERTIES });
  });

  it('takes base64 with or without padding, and nothing else', () => {
    const padded = parse({}, { 'x-amz-mqtt5-correlation-data': 'AAE=' });
    const unpadded = parse({}, { 'x-amz-mqtt5-correlation-data': 'AAE' });
    expect(padded).toEqual({ ok: true, properties: { correlationData: Buffer.from([0, 1]) } });
    expect(unpadded).toEqual(padded);
    for (const bad of ['AAE==', 'A', 'AA E=', 'AA-_', 'AAE=AAE=']) {
      expect(parse({}, { 'x-amz-mqtt5-correlation-data': bad })).toEqual({
        ok: false,
        message: 'correlationData must be base64-encoded',
      });
    }
  });

  it('refuses a property header given twice', () => {
    expect(parse({}, { 'x-amz-mqtt5-payload-format-indicator': ['UTF8_DATA', 'UTF8_DATA'] })).toEqual({
      ok: false,
      message: 'payloadFormatIndicator must be given once',
    });
  });

  it('refuses user properties that are not UTF-8, or whose key holds a NUL', () => {
    const notUtf8 = Buffer.from([0x5b, 0xff, 0x5d]).toString('base64');
    expect(parse({}, { 'x-amz-mqtt5-user-properties': notUtf8 })).toMatchObject({ ok: false });
    expect(parse({}, { 'x-amz-mqtt5-user-properties': b64('[{"a\\u0000b":"c"}]') })).toMatchObject({
      ok: false,
      message: expect.stringContaining('must not contain a NUL character'),
    });
  });

  it('refuses a user property longer than an MQTT string holds', () => {
    const long = 'x'.repeat(65_536);
    expect(parse({}, { 'x-amz-mqtt5-user-properties': b64(JSON.stringify([{ k: long }])) })).toMatchObject({
      ok: false,
      message: expect.stringContaining("more than MQTT's 65535"),
    });
  });

  it.each(['+5', '5s', '', ' 5', '0x10', '99999999999'])('refuses messageExpiry %j', (raw) => {
    expect(parse({ messageExpiry: raw })).toMatchObject({
      ok: false,
      message: expect.stringContaining('messageExpiry must be a whole number of seconds'),
    });
  });

  it('takes the message expiry bounds 0 and 4294967295', () => {
    expect(parse({ messageExpiry: '0' })).toEqual({ ok: true, properties: { messageExpiryInterval: 0 } });
    expect(parse({ messageExpiry: '4294967295' })).toEqual({
      ok: true,
      properties: { messageExpiryInterval: 4_294_967_295 },
    });
  });

  it('refuses an empty response topic', () => {
    expect(parse({ responseTopic: '' })).toEqual({ ok: false, message: 'responseTopic must not be empty' });
  });
});
