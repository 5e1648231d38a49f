import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseJobDocument, verifyReleaseManifest } from '@pifleet/protocol';
import { afterAll, describe, expect, it } from 'vitest';
import { SimulatorError } from '../../src/errors.js';
import { simulatedJob } from '../../src/jobs/job-document.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'sim-job-doc-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const spec = (job: string, version = '1.1.0') => ({ job, version, batchAgeMs: 10_000 });

describe('the job a simulated fleet rolls out', () => {
  it('agent-update: a document the agent parses, whose manifest verifies with the run key and names the version', () => {
    const job = simulatedJob(spec('agent-update', '2.3.4'));
    expect(job.kind).toBe('agent-update');
    const parsed = parseJobDocument(job.document);
    if (!parsed.ok || parsed.document.operation !== 'pifleet.agent-update') throw new Error(JSON.stringify(parsed));
    const r = parsed.document.release;
    const verified = verifyReleaseManifest(
      Buffer.from(r.manifest, 'base64'),
      Buffer.from(r.signature, 'base64'),
      job.publicKeys,
      '2.3.4',
    );
    expect(verified.ok).toBe(true);
    // Nothing is downloaded: the URL's host is reserved never to resolve.
    expect(new URL(r.url).hostname).toBe('releases.invalid');
  });

  it('each run signs with a key of its own', () => {
    expect(simulatedJob(spec('agent-update')).publicKeys).not.toEqual(simulatedJob(spec('agent-update')).publicKeys);
  });

  it.each([
    ['config', 'pifleet.config'],
    ['reboot', 'pifleet.reboot'],
  ])('%s: a document the agent parses as %s', (type, operation) => {
    const parsed = parseJobDocument(simulatedJob(spec(type)).document);
    expect(parsed.ok && parsed.document.operation).toBe(operation);
  });

  it('a job document file is sent as it is (even one the agent will refuse)', () => {
    const file = path.join(dir, 'unknown-op.json');
    writeFileSync(file, '{"operation":"acme.firmware","url":"https://example.com/x"}');
    const job = simulatedJob(spec(file));
    expect(job).toMatchObject({
      kind: 'file',
      document: '{"operation":"acme.firmware","url":"https://example.com/x"}',
    });
  });

  it.each([
    ['a version that is not semver', () => simulatedJob(spec('agent-update', 'v2')), /--release-version "v2"/],
    [
      'a missing file',
      () => simulatedJob(spec(path.join(dir, 'nope.json'))),
      /not agent-update, config, reboot and not a readable file \(ENOENT\)/,
    ],
    [
      'a file that is not JSON',
      () => {
        const f = path.join(dir, 'bad.json');
        writeFileSync(f, '{"operation": ');
        return simulatedJob(spec(f));
      },
      /not JSON/,
    ],
    [
      'a file larger than a job document may be',
      () => {
        const f = path.join(dir, 'big.json');
        writeFileSync(f, JSON.stringify({ operation: 'pifleet.reboot', reason: 'x'.repeat(40_000) }));
        return simulatedJob(spec(f));
      },
      /at most 32768 characters/,
    ],
  ])('refuses %s as a usage error', (_what, make, message) => {
    let err: unknown;
    try {
      make();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SimulatorError);
    expect(err).toMatchObject({ code: 'FLEET_USAGE', message: expect.stringMatching(message) });
  });
});
