import { IotSqlError, positionAt } from './errors.js';

export type TokenKind = 'ident' | 'number' | 'string' | 'punct' | 'eof';

export interface Token {
  readonly kind: TokenKind;
  /** Identifier as written, string literal's decoded value, number's source text, or the punctuation. */
  readonly text: string;
  /** Upper-cased identifier, for case-insensitive keyword checks (empty for other kinds). */
  readonly upper: string;
  /** The quote a string literal used. */
  readonly quote?: "'" | '"';
  readonly start: number;
  readonly end: number;
}

const PUNCT_TWO = new Set(['<>', '<=', '>=', '!=', '==']);
const PUNCT_ONE = new Set(['(', ')', '[', ']', '{', '}', ',', '.', ':', '*', '+', '-', '/', '%', '=', '<', '>']);

function isIdentStart(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
}
function isIdentPart(c: number): boolean {
  return isIdentStart(c) || isDigit(c);
}
function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}
function isSpace(c: number): boolean {
  return c === 32 || c === 9 || c === 10 || c === 13 || c === 12 || c === 11;
}

/**
 * A hand-written, on-demand tokenizer. It starts at any offset so that a substitution template
 * can lex the expression inside `${…}` and hand back the offset after the closing brace.
 */
export class Lexer {
  private pos: number;
  constructor(
    private readonly src: string,
    start = 0,
  ) {
    this.pos = start;
  }

  error(reason: string, offset: number): IotSqlError {
    return new IotSqlError('lexical', reason, positionAt(this.src, offset), this.src);
  }

  next(): Token {
    const src = this.src;
    let i = this.pos;
    while (i < src.length && isSpace(src.charCodeAt(i))) i++;
    if (i >= src.length) {
      this.pos = i;
      return { kind: 'eof', text: '', upper: '', start: i, end: i };
    }
    const c = src.charCodeAt(i);
    const start = i;
    if (isIdentStart(c)) {
      i++;
      while (i < src.length && isIdentPart(src.charCodeAt(i))) i++;
      this.pos = i;
      const text = src.slice(start, i);
      return { kind: 'ident', text, upper: text.toUpperCase(), start, end: i };
    }
    if (isDigit(c)) return this.number(start);
    if (c === 39 || c === 34) return this.string(start, c === 39 ? "'" : '"');
    const two = src.slice(i, i + 2);
    if (PUNCT_TWO.has(two)) {
      this.pos = i + 2;
      return { kind: 'punct', text: two, upper: '', start, end: i + 2 };
    }
    const one = src[i] as string;
    if (PUNCT_ONE.has(one)) {
      this.pos = i + 1;
      return { kind: 'punct', text: one, upper: '', start, end: i + 1 };
    }
    throw this.error(`unexpected character ${JSON.stringify(one)}`, start);
  }

  /** digits [ '.' digits ] [ (e|E) [+|-] digits ] */
  private number(start: number): Token {
    const src = this.src;
    let i = start;
    while (i < src.length && isDigit(src.charCodeAt(i))) i++;
    if (src[i] === '.' && isDigit(src.charCodeAt(i + 1))) {
      i++;
      while (i < src.length && isDigit(src.charCodeAt(i))) i++;
    }
    if (src[i] === 'e' || src[i] === 'E') {
      let j = i + 1;
      if (src[j] === '+' || src[j] === '-') j++;
      if (!isDigit(src.charCodeAt(j))) throw this.error('malformed number: exponent has no digits', start);
      while (j < src.length && isDigit(src.charCodeAt(j))) j++;
      i = j;
    }
    if (i < src.length && isIdentStart(src.charCodeAt(i))) throw this.error('malformed number', start);
    this.pos = i;
    return { kind: 'number', text: src.slice(start, i), upper: '', start, end: i };
  }

  /**
   * A quoted string. The quote itself is written doubled ('it''s') or escaped with a backslash;
   * backslash escapes \\ \' \" \/ \b \f \n \r \t \uXXXX are decoded.
   */
  private string(start: number, quote: "'" | '"'): Token {
    const src = this.src;
    let i = start + 1;
    let out = '';
    let chunk = i;
    for (;;) {
      if (i >= src.length) throw this.error('unterminated string literal', start);
      const ch = src[i] as string;
      if (ch === quote) {
        if (src[i + 1] === quote) {
          out += src.slice(chunk, i + 1);
          i += 2;
          chunk = i;
          continue;
        }
        out += src.slice(chunk, i);
        this.pos = i + 1;
        return { kind: 'string', text: out, upper: '', quote, start, end: i + 1 };
      }
      if (ch === '\\') {
        out += src.slice(chunk, i);
        const e = src[i + 1];
        let consumed = 2;
        switch (e) {
          case '\\':
          case "'":
          case '"':
          case '/':
            out += e;
            break;
          case 'b':
            out += '\b';
            break;
          case 'f':
            out += '\f';
            break;
          case 'n':
            out += '\n';
            break;
          case 'r':
            out += '\r';
            break;
          case 't':
            out += '\t';
            break;
          case 'u': {
            const hex = src.slice(i + 2, i + 6);
            if (hex.length !== 4 || !isHex4(hex)) throw this.error('malformed \\u escape in string literal', i);
            out += String.fromCharCode(Number.parseInt(hex, 16));
            consumed = 6;
            break;
          }
          case undefined:
            throw this.error('unterminated string literal', start);
          default:
            throw this.error(`unknown escape \\${e} in string literal`, i);
        }
        i += consumed;
        chunk = i;
        continue;
      }
      i++;
    }
  }
}

function isHex4(s: string): boolean {
  for (let k = 0; k < s.length; k++) {
    const c = s.charCodeAt(k);
    const ok = isDigit(c) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
    if (!ok) return false;
  }
  return true;
}
