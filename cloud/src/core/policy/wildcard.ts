/**
 * IAM-style wildcard matching for policy actions and resources: `*` matches any run of
 * characters (including `/`, and none at all) and `?` exactly one. MQTT wildcards `+` and `#`
 * are ordinary characters here; in a `topicfilter/...` resource they match themselves only.
 *
 * Patterns are matched directly (no regular expressions): compiling a connection's policies
 * happens on every CONNECT, so it must cost little more than splitting strings.
 */

/** A piece of a pattern: literal text whose `*`/`?` are wildcards, or a value that is matched verbatim. */
export type PatternPart =
  | { readonly kind: 'wild'; readonly text: string }
  | { readonly kind: 'exact'; readonly text: string };

/** A run of characters between two `*`; `any` lists the positions where `?` matches any one character. */
interface Segment {
  readonly text: string;
  readonly any: readonly number[] | undefined;
}

/** A compiled pattern: segments separated by `*`, or one exact string when there is no wildcard. */
export type Glob = { readonly exact: string } | { readonly exact: undefined; readonly segments: readonly Segment[] };

export function compileGlob(parts: readonly PatternPart[]): Glob {
  const segments: { text: string; any: number[] }[] = [{ text: '', any: [] }];
  let wild = false;
  for (const part of parts) {
    let current = segments[segments.length - 1] as { text: string; any: number[] };
    if (part.kind === 'exact') {
      current.text += part.text;
      continue;
    }
    for (const ch of part.text) {
      if (ch === '*') {
        wild = true;
        current = { text: '', any: [] };
        segments.push(current);
      } else if (ch === '?') {
        wild = true;
        current.any.push(current.text.length);
        current.text += '?';
      } else {
        current.text += ch;
      }
    }
  }
  if (!wild) return { exact: segments.map((s) => s.text).join('') };
  return {
    exact: undefined,
    segments: segments.map((s) => ({ text: s.text, any: s.any.length > 0 ? s.any : undefined })),
  };
}

function segmentAt(segment: Segment, value: string, at: number): boolean {
  if (!segment.any) return value.startsWith(segment.text, at);
  const { text, any } = segment;
  let next = 0;
  for (let i = 0; i < text.length; i++) {
    if (any[next] === i) {
      next++;
      continue;
    }
    if (text.charCodeAt(i) !== value.charCodeAt(at + i)) return false;
  }
  return true;
}

export function globMatches(glob: Glob, value: string): boolean {
  if (glob.exact !== undefined) return glob.exact === value;
  const segs = glob.segments;
  const first = segs[0] as Segment;
  if (segs.length === 1) return value.length === first.text.length && segmentAt(first, value, 0);
  const last = segs[segs.length - 1] as Segment;
  const end = value.length - last.text.length;
  if (end < first.text.length) return false;
  if (!segmentAt(first, value, 0) || !segmentAt(last, value, end)) return false;
  // Between stars, the leftmost placement of each fixed-length segment is always safe.
  let pos = first.text.length;
  for (let s = 1; s < segs.length - 1; s++) {
    const seg = segs[s] as Segment;
    let found = -1;
    for (let i = pos; i + seg.text.length <= end; i++) {
      if (segmentAt(seg, value, i)) {
        found = i;
        break;
      }
    }
    if (found < 0) return false;
    pos = found + seg.text.length;
  }
  return true;
}

/** Matches one value against one wildcard pattern (no policy variables). */
export function wildcardMatches(pattern: string, value: string, ignoreCase = false): boolean {
  if (!pattern.includes('*') && !pattern.includes('?')) {
    return ignoreCase ? pattern.toLowerCase() === value.toLowerCase() : pattern === value;
  }
  const glob = compileGlob([{ kind: 'wild', text: ignoreCase ? pattern.toLowerCase() : pattern }]);
  return globMatches(glob, ignoreCase ? value.toLowerCase() : value);
}
