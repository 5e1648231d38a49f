import { CloudError } from '../../errors.js';

/** Where in the SQL text (or substitution template) a problem is: 1-based line and column, 0-based offset. */
export interface SourcePosition {
  readonly offset: number;
  readonly line: number;
  readonly column: number;
}

export type IotSqlErrorKind = 'lexical' | 'syntax' | 'semantic';

/**
 * A rule's SQL (or an action's substitution template) could not be compiled. Raised at load time,
 * never while evaluating a message: evaluation problems yield Undefined as AWS IoT does.
 */
export class IotSqlError extends CloudError {
  override name = 'IotSqlError';
  readonly kind: IotSqlErrorKind;
  readonly line: number;
  readonly column: number;
  readonly offset: number;
  /** The message without the location suffix. */
  readonly reason: string;

  constructor(kind: IotSqlErrorKind, reason: string, position: SourcePosition, source: string) {
    super(`IOT_SQL_${kind.toUpperCase()}`, `${reason} at line ${position.line}, column ${position.column}`, {
      data: { kind, line: position.line, column: position.column, offset: position.offset, source },
    });
    this.kind = kind;
    this.reason = reason;
    this.line = position.line;
    this.column = position.column;
    this.offset = position.offset;
  }
}

/** Computes the 1-based line and column of an offset (a line ends at \n, \r\n or \r). */
export function positionAt(source: string, offset: number): SourcePosition {
  let line = 1;
  let lineStart = 0;
  const end = Math.min(offset, source.length);
  for (let i = 0; i < end; i++) {
    const c = source.charCodeAt(i);
    if (c === 10) {
      line++;
      lineStart = i + 1;
    } else if (c === 13) {
      if (source.charCodeAt(i + 1) !== 10) {
        line++;
        lineStart = i + 1;
      }
    }
  }
  return { offset, line, column: offset - lineStart + 1 };
}
