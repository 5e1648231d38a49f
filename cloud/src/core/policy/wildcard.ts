/**
 * IAM-style wildcard matching for policy actions and resources: `*` matches any run of
 * characters (including `/`, none at all too) and `?` exactly one. MQTT wildcards `+` and `#`
 * are ordinary characters here; in a `topicfilter/...` resource they match themselves only.
 */

/** A piece of a pattern: literal text whose `*`/`?` are wildcards, or a value that is matched verbatim. */
export type PatternPart =
  | { readonly kind: 'wild'; readonly text: string }
  | { readonly kind: 'exact'; readonly text: string };

const REGEX_SPECIAL = /[\\^$.|+()[\]{}*?]/g;
const WILDCARDS = /([*?])/;

function escapeRegex(text: string): string {
  return text.replace(REGEX_SPECIAL, '\\$&');
}

/** The regular-expression source of one pattern, anchored by the caller. */
export function patternSource(parts: readonly PatternPart[]): string {
  let out = '';
  for (const part of parts) {
    if (part.kind === 'exact') {
      out += escapeRegex(part.text);
      continue;
    }
    for (const piece of part.text.split(WILDCARDS)) {
      if (piece === '*') out += '[\\s\\S]*';
      else if (piece === '?') out += '[\\s\\S]';
      else out += escapeRegex(piece);
    }
  }
  return out;
}

/** Compiles patterns into one anchored regular expression that matches any of them. */
export function compileAlternatives(
  patterns: readonly (readonly PatternPart[])[],
  ignoreCase = false,
): RegExp | undefined {
  if (patterns.length === 0) return undefined;
  const body = patterns.map((p) => patternSource(p)).join('|');
  return new RegExp(`^(?:${body})$`, ignoreCase ? 'iu' : 'u');
}

/** Matches one value against one wildcard pattern (no policy variables). */
export function wildcardMatches(pattern: string, value: string, ignoreCase = false): boolean {
  if (!pattern.includes('*') && !pattern.includes('?')) {
    return ignoreCase ? pattern.toLowerCase() === value.toLowerCase() : pattern === value;
  }
  return new RegExp(`^${patternSource([{ kind: 'wild', text: pattern }])}$`, ignoreCase ? 'iu' : 'u').test(value);
}
