import { access, rm } from 'node:fs/promises';
import path from 'node:path';
import type { CommandUnknownOpts } from '@commander-js/extra-typings';
import { FileExistsError, writeNewFile } from '../adapters/release-files.js';
import type { Runner } from '../app/command.js';
import {
  DEFAULT_KEYS_DIR,
  generateSigningKeyPair,
  isSigningAlgorithm,
  KEY_FILES,
  KEY_MODES,
  SIGNING_ALGORITHMS,
} from '../core/release-keys.js';
import { ConflictError, UsageError } from '../errors.js';

const exists = (file: string) =>
  access(file).then(
    () => true,
    () => false,
  );

const keyExists = (file: string) =>
  new ConflictError('KEY_EXISTS', `${file} exists; keys are never overwritten`, {
    hint: 'choose another --out directory (devices that trust the old public key refuse releases signed with a new one)',
    data: { file },
  });

/** `keys create`: the release signing key pair. Needs no target: nothing leaves this machine. */
export function registerKeysCreate(keys: CommandUnknownOpts, run: Runner): void {
  run(
    keys
      .command('create')
      .description(
        'create a release signing key pair: the private key (0600) stays here, the public key goes into the agent config',
      )
      .option('--algorithm <name>', `${SIGNING_ALGORITHMS.join(' | ')}`, 'ed25519')
      .option('--out <dir>', `directory of the key files (default: ${DEFAULT_KEYS_DIR})`)
      .option('--json', 'print JSON on stdout')
      .option('-v, --verbose', 'log details to stderr'),
    async (ctx, _args, o) => {
      if (!isSigningAlgorithm(o.algorithm)) {
        throw new UsageError(`unknown --algorithm ${JSON.stringify(o.algorithm)}`, {
          hint: `use one of: ${SIGNING_ALGORITHMS.join(', ')}`,
        });
      }
      const dir = path.resolve(ctx.io.cwd, o.out ?? DEFAULT_KEYS_DIR);
      const privateKeyFile = path.join(dir, KEY_FILES.privateKey);
      const publicKeyFile = path.join(dir, KEY_FILES.publicKey);
      for (const file of [privateKeyFile, publicKeyFile]) if (await exists(file)) throw keyExists(file);
      const pair = generateSigningKeyPair(o.algorithm);
      let wrotePrivate = false;
      try {
        await writeNewFile(privateKeyFile, pair.privateKeyPem, KEY_MODES.privateKey, KEY_MODES.directory);
        wrotePrivate = true;
        await writeNewFile(publicKeyFile, pair.publicKeyPem, KEY_MODES.publicKey, KEY_MODES.directory);
      } catch (err) {
        // Another run wrote a key file after the check above: its files stand, this run's half pair goes.
        if (wrotePrivate) await rm(privateKeyFile, { force: true });
        if (err instanceof FileExistsError) throw keyExists(err.file);
        throw err;
      }
      ctx.log.info({ algorithm: pair.algorithm, dir }, 'signing key pair written');
      // What the agent config needs (device-agent's `update.publicKeys`): devices trust every key listed.
      const agentConfig = { update: { publicKeys: [pair.publicKeyPem] } };
      return {
        data: {
          algorithm: pair.algorithm,
          privateKeyFile,
          publicKeyFile,
          publicKeyPem: pair.publicKeyPem,
          agentConfig,
        },
        text: [
          `${pair.algorithm} signing key pair created`,
          `private key: ${privateKeyFile} (mode 0600; sign releases with it, never copy it to a device)`,
          `public key: ${publicKeyFile} (put it in the agent config; devices verify releases with it)`,
          pair.publicKeyPem.trimEnd(),
          `agent config (agent.json; keep the keys already there while devices move to this one): "update": ${JSON.stringify(agentConfig.update)}`,
        ].join('\n'),
      };
    },
  );
}
