import { createHash, generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  agentUpdateDocument,
  configDocument,
  isReleaseVersion,
  MAX_JOB_DOCUMENT_CHARS,
  makeReleaseManifest,
  parseJson,
  rebootDocument,
  serializeReleaseManifest,
  signReleaseManifest,
} from '@pifleet/protocol';
import { SimulatorError } from '../errors.js';

/** The job types `--job` builds a document for; anything else is a job document file. */
export const SIM_JOB_TYPES = ['agent-update', 'config', 'reboot'] as const;
export type SimJobType = (typeof SIM_JOB_TYPES)[number];

/** What a `--job` run sends: the document's JSON text, and the release key the devices trust. */
export interface SimJob {
  readonly kind: SimJobType | 'file';
  readonly document: string;
  /** PEM SPKI public keys the devices trust for releases (the run's own signing key). */
  readonly publicKeys: readonly string[];
}

/** The simulated release's tarball size (a deployed arm64 agent is ~20 MB); nothing is downloaded. */
const SIM_RELEASE_BYTES = 20 * 1024 * 1024;

/**
 * A job for a simulated fleet:
 * - `agent-update`: a release `version` signed with a key made for this run (the devices trust
 *   its public half), its manifest naming a tarball that is never downloaded (`.invalid` host:
 *   the simulated updater checks the signature and a simulated download against the manifest);
 * - `config`: the batch age the fleet already runs with, as a `pifleet.config` job (the devices
 *   apply and report it, and their telemetry goes on unchanged);
 * - `reboot`: `pifleet.reboot` (the simulated devices allow it and restart their agent);
 * - otherwise a file with a job document, sent as it is (a document the agent refuses is REJECTED
 *   by every device: that, too, is a rollout to watch).
 */
export function simulatedJob(spec: {
  readonly job: string;
  readonly version: string;
  readonly batchAgeMs: number;
}): SimJob {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const privatePem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const publicKeys = [publicKey.export({ type: 'spki', format: 'pem' }).toString()];
  switch (spec.job) {
    case 'agent-update': {
      if (!isReleaseVersion(spec.version)) {
        throw new SimulatorError(
          'FLEET_USAGE',
          `--release-version ${JSON.stringify(spec.version)} is not a semantic version`,
        );
      }
      const manifest = makeReleaseManifest({
        version: spec.version,
        sha256: createHash('sha256').update(`pifleet-sim release ${spec.version}`).digest('hex'),
        size: SIM_RELEASE_BYTES,
        key: privatePem,
      });
      const bytes = serializeReleaseManifest(manifest);
      const signature = signReleaseManifest(bytes, privatePem);
      const doc = agentUpdateDocument({
        version: spec.version,
        release: {
          url: `https://releases.invalid/pifleet-agent-${spec.version}.tar.gz`,
          manifest: Buffer.from(bytes).toString('base64'),
          signature: Buffer.from(signature).toString('base64'),
        },
        reason: 'pifleet-sim fleet rollout',
      });
      return { kind: 'agent-update', document: JSON.stringify(doc), publicKeys };
    }
    case 'config':
      return {
        kind: 'config',
        document: JSON.stringify(configDocument({ batch: { maxAgeMs: spec.batchAgeMs } }, 'pifleet-sim fleet rollout')),
        publicKeys,
      };
    case 'reboot':
      return { kind: 'reboot', document: JSON.stringify(rebootDocument('pifleet-sim fleet rollout')), publicKeys };
    default:
      return { kind: 'file', document: readJobFile(spec.job), publicKeys };
  }
}

/** A job document file: JSON within IoT's document size (the devices judge the rest). */
function readJobFile(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new SimulatorError(
      'FLEET_USAGE',
      `--job ${JSON.stringify(file)}: not ${SIM_JOB_TYPES.join(', ')} and not a readable file (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
    );
  }
  if (text.length > MAX_JOB_DOCUMENT_CHARS) {
    throw new SimulatorError(
      'FLEET_USAGE',
      `--job ${file}: a job document is at most ${MAX_JOB_DOCUMENT_CHARS} characters`,
    );
  }
  const parsed = parseJson(text, { maxDepth: 32 });
  if (!parsed.ok) throw new SimulatorError('FLEET_USAGE', `--job ${file}: not JSON (${parsed.message})`);
  return text;
}
