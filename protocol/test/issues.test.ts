import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { validateWith } from '../src/issues.js';

const schema = z.object({
  ready: z.literal(true),
  name: z.string(),
  port: z.number().int(),
  mqtt: z.object({ host: z.string() }),
  tags: z.array(z.string()),
  label: z.string().min(3, 'at least 3 characters'),
});

describe('validateWith messages', () => {
  it('says a missing field is required, with the kind of value it needs', () => {
    const r = validateWith(schema, { label: 'abc' });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.issues).toEqual([
      { path: 'ready', message: 'expected true' },
      { path: 'name', message: 'required (a string)' },
      { path: 'port', message: 'required (a number)' },
      { path: 'mqtt', message: 'required (an object)' },
      { path: 'tags', message: 'required (an array)' },
    ]);
  });

  it('says what a present value of the wrong type is, without zod’s "Invalid input" prefix', () => {
    const r = validateWith(schema, { ready: true, name: 7, port: 'x', mqtt: { host: 1 }, tags: [], label: 'abc' });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.issues).toEqual([
      { path: 'name', message: 'expected string, received number' },
      { path: 'port', message: 'expected number, received string' },
      { path: 'mqtt.host', message: 'expected string, received number' },
    ]);
  });

  it('keeps a message the schema sets itself', () => {
    const r = validateWith(schema, { ready: true, name: 'n', port: 1, mqtt: { host: 'h' }, tags: [], label: 'ab' });
    expect(r).toEqual({ ok: false, issues: [{ path: 'label', message: 'at least 3 characters' }] });
  });
});
