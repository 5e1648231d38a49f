import { constants } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';
import type { Issue } from '@pifleet/protocol';
import { ConfigError } from '../errors.js';
import { type ConfigFlags, loadConfig } from './load.js';
import type { AgentConfig } from './schema.js';

/** Reads and validates a config file (plus env and flags); throws a {@link ConfigError} listing every issue. */
export async function readConfigFile(
  file: string,
  env: Readonly<Record<string, string | undefined>> = {},
  flags: ConfigFlags = {},
): Promise<AgentConfig> {
  let fileText: string;
  try {
    fileText = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError([{ path: '$', message: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code}` }], {
      cause: err,
    });
  }
  const result = loadConfig({ fileText, fileName: file, env, flags });
  if (!result.ok) throw new ConfigError(result.issues);
  return result.value;
}

/**
 * Checks the credential files a config names: certificate, key and CA exist and are readable,
 * and the private key is readable by its owner only (mode `0600` or `0400`). Returns every problem.
 */
export async function checkCredentialFiles(config: AgentConfig): Promise<Issue[]> {
  const issues: Issue[] = [];
  const files: [string, string | undefined][] = [
    ['certFile', config.certFile],
    ['keyFile', config.keyFile],
    ['caFile', config.caFile],
  ];
  for (const [key, file] of files) {
    if (file === undefined) continue;
    try {
      const st = await stat(file);
      if (!st.isFile()) {
        issues.push({ path: key, message: `${file} is not a regular file` });
        continue;
      }
      await access(file, constants.R_OK);
      if (key === 'keyFile' && (st.mode & 0o077) !== 0) {
        issues.push({
          path: key,
          message: `${file} is accessible by group or others (mode ${(st.mode & 0o777).toString(8)}); run chmod 600`,
        });
      }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      issues.push({ path: key, message: code === 'ENOENT' ? `${file} does not exist` : `${file}: ${code}` });
    }
  }
  return issues;
}
