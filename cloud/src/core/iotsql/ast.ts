import type { JsonValue } from '@pifleet/protocol';

/** Source span of a node, as offsets into the SQL text. */
interface Span {
  readonly start: number;
  readonly end: number;
}

export type Expr =
  | (Span & { readonly type: 'literal'; readonly value: JsonValue })
  | (Span & { readonly type: 'field'; readonly name: string })
  | (Span & { readonly type: 'member'; readonly object: Expr; readonly name: string })
  | (Span & { readonly type: 'index'; readonly object: Expr; readonly index: Expr })
  | (Span & { readonly type: 'star' })
  | (Span & { readonly type: 'call'; readonly name: string; readonly args: readonly Expr[] })
  | (Span & { readonly type: 'cast'; readonly value: Expr; readonly target: string; readonly targetStart: number })
  | (Span & { readonly type: 'unary'; readonly op: '-' | '+' | 'NOT'; readonly operand: Expr })
  | (Span & { readonly type: 'binary'; readonly op: BinaryOp; readonly left: Expr; readonly right: Expr })
  | (Span & { readonly type: 'in'; readonly left: Expr; readonly right: Expr })
  | (Span & { readonly type: 'array'; readonly items: readonly Expr[] })
  | (Span & { readonly type: 'object'; readonly entries: readonly (readonly [string, Expr])[] })
  | (Span & {
      readonly type: 'case';
      readonly subject: Expr | undefined;
      readonly whens: readonly (readonly [Expr, Expr])[];
      readonly otherwise: Expr | undefined;
    })
  | (Span & { readonly type: 'subquery'; readonly query: Query })
  | (Span & { readonly type: 'exists'; readonly query: Query });

export type BinaryOp = 'AND' | 'OR' | '=' | '<>' | '<' | '<=' | '>' | '>=' | '+' | '-' | '*' | '/' | '%';

export type SelectItem =
  | (Span & { readonly kind: 'star' })
  | (Span & { readonly kind: 'expr'; readonly expr: Expr; readonly alias: readonly string[] | undefined });

export type FromClause =
  | (Span & { readonly kind: 'topic'; readonly filter: string })
  | (Span & { readonly kind: 'expr'; readonly expr: Expr; readonly alias: string | undefined });

export interface Query extends Span {
  readonly value: boolean;
  readonly items: readonly SelectItem[];
  readonly from: FromClause;
  readonly where: Expr | undefined;
}
