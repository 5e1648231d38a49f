import { describe, expect, it } from 'vitest';
import { isMqtt5Failure, MQTT5_REASON, mqtt5ReasonName } from '../src/mqtt5.js';

describe('MQTT 5 reason codes', () => {
  it('names the codes IoT Core answers with', () => {
    expect(mqtt5ReasonName(0x87)).toBe('NOT_AUTHORIZED');
    expect(mqtt5ReasonName(0x8e)).toBe('SESSION_TAKEN_OVER');
    expect(mqtt5ReasonName(0x90)).toBe('TOPIC_NAME_INVALID');
    expect(mqtt5ReasonName(0x95)).toBe('PACKET_TOO_LARGE');
    expect(mqtt5ReasonName(MQTT5_REASON.QUOTA_EXCEEDED)).toBe('QUOTA_EXCEEDED');
  });

  it('gives an undefined code a name that still carries its value', () => {
    expect(mqtt5ReasonName(0x8c)).toBe('REASON_0x8c');
    expect(mqtt5ReasonName(0x07)).toBe('REASON_0x07');
  });

  it('has one name per code', () => {
    const codes = Object.values(MQTT5_REASON);
    expect(new Set(codes).size).toBe(codes.length);
  });

  it('tells failures (0x80 and above) from successes', () => {
    expect(isMqtt5Failure(0x00)).toBe(false);
    expect(isMqtt5Failure(0x10)).toBe(false);
    expect(isMqtt5Failure(0x80)).toBe(true);
    expect(isMqtt5Failure(0x87)).toBe(true);
  });
});
