import { CloudError } from '../../errors.js';

/**
 * A rule definition the local rules engine cannot load: bad SQL (with the rule name, line and
 * column), a bad substitution template, an unknown handler, an unsupported SQL version.
 */
export class RuleLoadError extends CloudError {
  override name = 'RuleLoadError';
  readonly ruleName: string;
  readonly line: number | undefined;
  readonly column: number | undefined;

  constructor(
    ruleName: string,
    problem: string,
    options: { cause?: unknown; line?: number; column?: number; where?: string } = {},
  ) {
    const at = options.line === undefined ? '' : ` (line ${options.line}, column ${options.column ?? 1})`;
    const where = options.where === undefined ? '' : ` in ${options.where}`;
    super('RULE_LOAD', `rule ${ruleName}${where}: ${problem}${at}`, {
      cause: options.cause,
      data: { ruleName, line: options.line, column: options.column, where: options.where },
    });
    this.ruleName = ruleName;
    this.line = options.line;
    this.column = options.column;
  }
}

/**
 * One rule action could not be carried out. Carries the fields of an entry of IoT Core's error
 * action payload (`failures[]`).
 */
export class RuleActionError extends CloudError {
  override name = 'RuleActionError';
  readonly failedAction: string;
  readonly failedResource: string;

  constructor(failedAction: string, failedResource: string, message: string, cause?: unknown) {
    super('RULE_ACTION_FAILED', message, { cause, data: { failedAction, failedResource } });
    this.failedAction = failedAction;
    this.failedResource = failedResource;
  }
}

/**
 * Failures that may go away by themselves: a store that says so (`retryable: true`), a full disk,
 * an I/O error, descriptors or locks held by someone else. A message whose action failed this way
 * is worth delivering again; a poison message (or a key no template can render) is not.
 */
const TRANSIENT_CODES = new Set([
  'ENOSPC',
  'EDQUOT',
  'EIO',
  'EMFILE',
  'ENFILE',
  'EAGAIN',
  'EBUSY',
  'SQLITE_FULL',
  'SQLITE_BUSY',
  'SQLITE_LOCKED',
]);

export function isTransientFailure(err: unknown): boolean {
  let e: unknown = err;
  for (let depth = 0; e !== null && typeof e === 'object' && depth < 8; depth++) {
    if ((e as { retryable?: unknown }).retryable === true) return true;
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && (TRANSIENT_CODES.has(code) || code.startsWith('SQLITE_IOERR'))) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}
