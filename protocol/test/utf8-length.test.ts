import { describe, expect, it } from 'vitest';
import { utf8Length } from '../src/topics.js';

const encoded = (s: string) => new TextEncoder().encode(s).length;

describe('utf8Length', () => {
  it.each([
    ['', 0],
    ['pifleet/pi-01/telemetry', 23],
    ['é', 2],
    ['温度', 6],
    ['🌡️', 7],
    ['a\u{10FFFF}b', 6],
    ['\uD800', 3],
    ['x\uDC00y', 5],
    ['\uD800\uD800', 6],
  ])('counts %j as %i bytes, as TextEncoder does', (s, bytes) => {
    expect(utf8Length(s)).toBe(bytes);
    expect(utf8Length(s)).toBe(encoded(s));
  });

  it('agrees with TextEncoder on random strings of every plane', () => {
    let seed = 7;
    const rnd = (n: number) => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed % n;
    };
    const ranges = [0x80, 0x800, 0xd800, 0xe000, 0x10000];
    for (let k = 0; k < 500; k++) {
      let s = '';
      for (let i = 0; i < 1 + rnd(20); i++) {
        const top = ranges[rnd(ranges.length)] as number;
        s += top === 0x10000 ? String.fromCodePoint(0x10000 + rnd(0xfffff)) : String.fromCharCode(rnd(top));
      }
      expect(utf8Length(s), JSON.stringify(s)).toBe(encoded(s));
    }
  });
});
