import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { PreProvisioningHookEvent } from '@pifleet/protocol';
import { ConfigError } from '../config/local-core.js';
import type { PreProvisioningHookFunction } from './register-thing.js';

/**
 * Pre-provisioning hooks an operator writes, run by the local core as Lambda would run them:
 * `--hooks NAME=FILE[,NAME=FILE…]` names an ES module per Lambda function name, and a template
 * whose hook's targetArn is `arn:aws:lambda:…:function:NAME` calls that module's `handler(event)`,
 * the same export a Node.js Lambda has. The module is imported once, at start; a missing file, a
 * module that does not load or one without a `handler` function stops the core with exit 78.
 */

/** Lambda function names: 1–64 characters of letters, digits, `-` and `_`. */
const FUNCTION_NAME = /^[A-Za-z0-9_-]{1,64}$/;

export interface HookModuleSpec {
  readonly name: string;
  readonly file: string;
}

/** Reads `NAME=FILE,NAME=FILE`; returns the entries or the problems (for the config loader). */
export function parseHookSpecs(
  spec: string,
): { ok: true; hooks: HookModuleSpec[] } | { ok: false; problems: string[] } {
  const hooks: HookModuleSpec[] = [];
  const problems: string[] = [];
  if (spec.trim() === '') return { ok: true, hooks };
  for (const entry of spec.split(',')) {
    const at = entry.indexOf('=');
    const name = at < 0 ? entry.trim() : entry.slice(0, at).trim();
    const file = at < 0 ? '' : entry.slice(at + 1).trim();
    if (!FUNCTION_NAME.test(name)) {
      problems.push(`--hooks: '${name.slice(0, 80)}' is not a Lambda function name (1-64 of A-Z a-z 0-9 - _)`);
    } else if (file === '') {
      problems.push(`--hooks: ${name} has no module file (write NAME=FILE)`);
    } else if (hooks.some((h) => h.name === name)) {
      problems.push(`--hooks: ${name} is named twice`);
    } else hooks.push({ name, file });
  }
  return problems.length > 0 ? { ok: false, problems } : { ok: true, hooks };
}

/** Imports each module and returns its `handler` by function name (exit 78 for any that cannot serve). */
export async function loadHookModules(
  spec: string,
  cwd: string = process.cwd(),
): Promise<Record<string, PreProvisioningHookFunction>> {
  const parsed = parseHookSpecs(spec);
  if (!parsed.ok) throw new ConfigError(parsed.problems);
  const loaded: Array<[string, PreProvisioningHookFunction]> = [];
  for (const { name, file } of parsed.hooks) {
    const path = resolve(cwd, file);
    let module: Record<string, unknown>;
    try {
      module = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
    } catch (err) {
      const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      throw new ConfigError([`--hooks: ${name}: cannot load ${path} (${String(reason).slice(0, 200)})`]);
    }
    const handler = module.handler;
    if (typeof handler !== 'function') {
      throw new ConfigError([
        `--hooks: ${name}: ${path} has no exported function 'handler' (export async function handler(event) {...})`,
      ]);
    }
    // Called as Lambda calls a Node.js handler: the event, and a context (only its function name here).
    const fn: PreProvisioningHookFunction = async (event: PreProvisioningHookEvent) =>
      (handler as (event: unknown, context: unknown) => unknown)(event, { functionName: name });
    loaded.push([name, fn]);
  }
  return Object.fromEntries(loaded);
}
