import { readFile, stat } from 'node:fs/promises';
import { isJsonObject, parseJson } from '@pifleet/protocol';
import { type ConfigFlags, configFilePaths, MAX_CONFIG_DEPTH } from '../config/load.js';

/**
 * Whether a device must provision first, apart from provisioning itself: `run` asks this at every
 * start, and a provisioned device (all of them after their first start) should not load the
 * claim flow, the key maker and the identity clients to hear "no".
 */

/** The environment `run` reads, as provisioning does. */
type Env = Readonly<Record<string, string | undefined>>;

const errno = (err: unknown) => (err as NodeJS.ErrnoException).code;

/** The config file's document, or undefined when it is not a JSON object (the loader says why). */
export function documentOf(text: string): Record<string, unknown> | undefined {
  const parsed = parseJson(text, { maxDepth: MAX_CONFIG_DEPTH });
  return parsed.ok && isJsonObject(parsed.value) ? (parsed.value as Record<string, unknown>) : undefined;
}

/** Whether a config names its thing, counting the environment and flags as `run` does. */
export function namesThing(doc: Record<string, unknown>, env: Env | undefined, flags: ConfigFlags): boolean {
  const fromFile = typeof doc.thingName === 'string' && doc.thingName !== '';
  return fromFile || Boolean(env?.PIFLEET_THING_NAME) || flags.thingName !== undefined;
}

/**
 * Whether `run` must provision before it starts: the config has a `provisioning` section and the
 * device has no identity yet (no certificate at `certFile`, or no thing name). A config without
 * the section is left to `run`'s own checks, as before.
 */
export async function needsProvisioning(configFile: string, env: Env = {}, flags: ConfigFlags = {}): Promise<boolean> {
  const text = await readFile(configFile, 'utf8').catch(() => undefined);
  const doc = text === undefined ? undefined : documentOf(text);
  if (!doc || !isJsonObject(doc.provisioning)) return false;
  if (!namesThing(doc, env, flags)) return true;
  const { certFile } = configFilePaths({ fileText: text as string, env, flags });
  if (certFile === undefined) return false;
  return stat(certFile).then(
    () => false,
    (err: unknown) => errno(err) === 'ENOENT',
  );
}
