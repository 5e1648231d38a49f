/**
 * What the rules-engine suites share: the real broker whose bus the engines run on, a temp dir for
 * the files their actions write, rule definitions with the error action every rule here has, and
 * the error log an engine writes.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { type Broker, createBroker } from '../../src/broker/index.js';
import type { RuleErrorPayload } from '../../src/rules/actions/error-payload.js';
import { logFileName } from '../../src/rules/actions/log.js';
import { RULE_ERROR_LOG_GROUP, RULE_SQL_VERSION, type RuleDefinition } from '../../src/rules/definitions.js';
import type { RulesEngine } from '../../src/rules/engine.js';
import { ACCOUNT, createTestPki, MemoryIdentities } from '../broker/fixtures.js';
import { removeDir, tempDir } from '../http/harness.js';

/**
 * A started broker and a temp dir (`pifleet-<dirName>-*`) for a test file: `onStarted` receives
 * them before its suites. The engines a test pushes onto the returned array are stopped after that
 * test; the broker stops and the dir goes after the file.
 */
export function rulesEngineBed(
  dirName: string,
  onStarted: (bed: { readonly broker: Broker; readonly dir: string }) => void,
): RulesEngine[] {
  let broker: Broker | undefined;
  let dir: string | undefined;
  const engines: RulesEngine[] = [];
  beforeAll(async () => {
    const pki = await createTestPki();
    broker = createBroker({
      identities: new MemoryIdentities(),
      tls: pki.serverTls,
      host: '127.0.0.1',
      port: 0,
      account: ACCOUNT,
    });
    await broker.start();
    dir = tempDir(dirName);
    onStarted({ broker, dir });
  });
  afterEach(async () => {
    await Promise.all(engines.splice(0).map((e) => e.stop()));
  });
  afterAll(async () => {
    await broker?.stop();
    if (dir) removeDir(dir);
  });
  return engines;
}

/** A policy allowing every IoT action, for the things the end-to-end rule suites connect. */
export const ALLOW_ALL = {
  Version: '2012-10-17' as const,
  Statement: [{ Effect: 'Allow' as const, Action: 'iot:*', Resource: '*' }],
};

/** The role ARN a republish action names (the local core does not assume it). */
export const REPUBLISH_ROLE = 'arn:aws:iam::123456789012:role/republish';

/** A rule whose failures go to the rule error log group, as every rule the suites load. */
export const rule = (
  name: string,
  sql: string,
  actions: RuleDefinition['actions'],
  description = name,
): RuleDefinition => ({
  name,
  description,
  sql,
  sqlVersion: RULE_SQL_VERSION,
  actions,
  errorAction: { kind: 'log', logGroup: RULE_ERROR_LOG_GROUP },
});

/** Where an engine run under `base` writes: its archive and its log dirs. */
export const engineDirs = (base: string) => ({ archiveDir: join(base, 'archive'), logDir: join(base, 'logs') });

/** The lines the error action wrote to the rule error log under `base` (none when it wrote nothing). */
export function ruleErrorLines(base: string): { timestamp: number; logGroup: string; message: RuleErrorPayload }[] {
  const file = join(base, 'logs', logFileName(RULE_ERROR_LOG_GROUP));
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { timestamp: number; logGroup: string; message: RuleErrorPayload });
}
