import { EXIT } from '@pifleet/protocol';
import { describe, expect, it } from 'vitest';
import { sim } from '../helpers.js';

describe('pifleet-sim fleet --protocol', () => {
  it.each(['4', '3', '5.0', 'mqtt5', ''])(
    '--protocol %j is a usage error (64) with a one-line reason, before anything starts',
    async (value) => {
      const r = await sim(['fleet', '--protocol', value]);
      expect(r).toEqual({ code: EXIT.usage, stdout: '', stderr: 'pifleet-sim fleet: --protocol must be 5 or 3.1.1\n' });
    },
  );

  it.each(['5', '3.1.1'])('--protocol %s is accepted (only the other bad flag is reported)', async (value) => {
    const r = await sim(['fleet', '--protocol', value, '--devices', '0']);
    expect(r.code).toBe(EXIT.usage);
    expect(r.stderr).toBe('pifleet-sim fleet: --devices must be an integer in [1, 100000]\n');
  });

  it('lists the option and its choices in the help', async () => {
    const r = await sim(['fleet', '--help']);
    expect(`${r.stdout}${r.stderr}`).toMatch(
      /--protocol <v>\s+the MQTT version every device speaks.*5 \| 3\.1\.1.*\(default: "5"\)/s,
    );
  });
});
