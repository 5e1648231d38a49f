import { LIMITS } from '@pifleet/protocol';
import { describe, expect, it } from 'vitest';
import { createPacketSizeGuard, MAX_PACKET_REMAINING_LENGTH } from '../../src/broker/packet-guard.js';
import { remainingLength } from './fixtures.js';

/** A fixed header (PUBLISH QoS 0) declaring `n` bytes, followed by those bytes. */
const packet = (n: number) => Buffer.from([0x30, ...remainingLength(n), ...Buffer.alloc(n, 7)]);
const header = (n: number) => Buffer.from([0x30, ...remainingLength(n)]);

describe('createPacketSizeGuard', () => {
  it('lets a stream of packets up to the limit through, however the bytes are split', () => {
    const limit = 1000;
    const stream = Buffer.concat([packet(0), packet(5), packet(300), packet(limit), packet(200), packet(2)]);
    for (const size of [1, 2, 3, 7, 130, stream.length]) {
      const guard = createPacketSizeGuard(limit);
      const refused = [];
      for (let i = 0; i < stream.length; i += size) {
        const scan = guard.scan(stream.subarray(i, i + size));
        if (!scan.ok) refused.push({ at: i, scan });
      }
      expect(refused).toEqual([]);
    }
    expect(createPacketSizeGuard().scan(packet(MAX_PACKET_REMAINING_LENGTH))).toEqual({ ok: true });
  });

  it('allows a 128 KB payload with the longest topic and a packet id', () => {
    expect(MAX_PACKET_REMAINING_LENGTH).toBeGreaterThanOrEqual(2 + LIMITS.maxTopicBytes + 2 + LIMITS.maxMessageBytes);
  });

  it('refuses a packet declaring 200 MB from its fixed header alone', () => {
    const guard = createPacketSizeGuard();
    const bytes = header(200 * 1024 * 1024);
    expect(bytes).toHaveLength(5);
    expect(guard.scan(bytes)).toEqual({
      ok: false,
      reason: 'too-large',
      declaredBytes: 200 * 1024 * 1024,
      limitBytes: MAX_PACKET_REMAINING_LENGTH,
    });
    // Final: the bytes that follow change nothing.
    expect(guard.scan(Buffer.alloc(10))).toMatchObject({ ok: false, reason: 'too-large' });
  });

  it('refuses the first packet over the limit after valid ones, its header split byte by byte', () => {
    const guard = createPacketSizeGuard(1000);
    expect(guard.scan(packet(1000))).toEqual({ ok: true });
    const big = header(1001);
    expect(guard.scan(big.subarray(0, 1))).toEqual({ ok: true });
    expect(guard.scan(big.subarray(1, 2))).toEqual({ ok: true });
    expect(guard.scan(big.subarray(2))).toMatchObject({ ok: false, reason: 'too-large', declaredBytes: 1001 });
  });

  it('refuses as soon as a partial length is already over the limit', () => {
    const guard = createPacketSizeGuard(100);
    // 0xff: 127 with more length bytes to come; 127 > 100 already.
    expect(guard.scan(Buffer.from([0x30, 0xff]))).toMatchObject({ ok: false, reason: 'too-large' });
  });

  it('refuses a remaining length of more than four bytes as malformed', () => {
    const guard = createPacketSizeGuard(Number.MAX_SAFE_INTEGER);
    expect(guard.scan(Buffer.from([0x30, 0x80, 0x80, 0x80, 0x80, 0x01]))).toEqual({ ok: false, reason: 'malformed' });
  });
});
