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
  // Texts are built from pieces and joined once: `+=` per character would leave each text as a
  // chain of hundreds of cons strings, held for as long as the connection's policies are (at
  // 2,000 connections, 660,000 of them, 20 MiB of the core's heap).
  const segments: Building[] = [{ pieces: [], length: 0, any: [] }];
  let wild = false;
  for (const part of parts) {
    let current = segments[segments.length - 1] as Building;
    if (part.kind === 'exact') {
      append(current, part.text);
      continue;
    }
    const text = part.text;
    let from = 0;
    for (let i = 0; i < text.length; i++) {
      const ch = text[i];
      if (ch !== '*' && ch !== '?') continue;
      wild = true;
      append(current, text.slice(from, i));
      from = i + 1;
      if (ch === '*') {
        current = { pieces: [], length: 0, any: [] };
        segments.push(current);
      } else {
        current.any.push(current.length);
        append(current, '?');
      }
    }
    append(current, text.slice(from));
  }
  if (!wild) return { exact: segments.flatMap((s) => s.pieces).join('') };
  return {
    exact: undefined,
    segments: segments.map((s) => ({ text: s.pieces.join(''), any: s.any.length > 0 ? s.any : undefined })),
  };
}

interface Building {
  readonly pieces: string[];
  length: number;
  readonly any: number[];
}

function append(segment: Building, text: string): void {
  if (text === '') return;
  segment.pieces.push(text);
  segment.length += text.length;
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
