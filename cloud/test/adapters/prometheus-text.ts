/**
 * A strict reader of the Prometheus text exposition format (version 0.0.4), for tests that scrape
 * `GET /metrics`: every sample line parsed into name, labels and value; a sample without a
 * `# TYPE` for its family, a malformed line, a bad escape or the same series twice throws, so a
 * test also checks the format, not only the numbers.
 */

export interface Sample {
  readonly name: string;
  /** Label name → value (unescaped); no prototype, so a label named `__proto__` is just a label. */
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Exposition {
  readonly samples: readonly Sample[];
  /** Family name → `counter`, `gauge`, `histogram`, `summary` or `untyped`. */
  readonly types: ReadonlyMap<string, string>;
  readonly help: ReadonlyMap<string, string>;
  /** The value of the one series with exactly these labels; undefined when there is none. */
  value(name: string, labels?: Readonly<Record<string, string>>): number | undefined;
  /** Every series of a sample name. */
  series(name: string): readonly Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

/** A float as Prometheus reads one (Go's ParseFloat: NaN and Inf in any case; prom-client writes `Nan`). */
function parseValue(text: string, line: string): number {
  const special = text.toLowerCase();
  if (special === 'nan') return Number.NaN;
  if (special === '+inf' || special === 'inf') return Number.POSITIVE_INFINITY;
  if (special === '-inf') return Number.NEGATIVE_INFINITY;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`not a sample value: ${line}`);
  return Number(text);
}

/** `{a="x",b="y\"z"}` from the start of `text`: the labels and the rest of the line. */
function parseLabels(text: string, line: string): { labels: Record<string, string>; rest: string } {
  const labels: Record<string, string> = Object.create(null);
  let i = 1;
  for (;;) {
    if (text[i] === '}') return { labels, rest: text.slice(i + 1) };
    const name = LABEL_NAME.exec(text.slice(i))?.[0];
    if (name === undefined || text[i + name.length] !== '=' || text[i + name.length + 1] !== '"') {
      throw new Error(`malformed labels: ${line}`);
    }
    if (Object.hasOwn(labels, name)) throw new Error(`label ${name} twice: ${line}`);
    i += name.length + 2;
    let value = '';
    for (;;) {
      const c = text[i];
      if (c === undefined) throw new Error(`unterminated label value: ${line}`);
      i++;
      if (c === '"') break;
      if (c !== '\\') {
        value += c;
        continue;
      }
      const escaped = text[i++];
      if (escaped === 'n') value += '\n';
      else if (escaped === '\\' || escaped === '"') value += escaped;
      else throw new Error(`bad escape in label value: ${line}`);
    }
    labels[name] = value;
    if (text[i] === ',') i++;
    else if (text[i] !== '}') throw new Error(`malformed labels: ${line}`);
  }
}

/** The family a sample belongs to: its own name, or a histogram's/summary's without the suffix. */
function familyOf(name: string, types: ReadonlyMap<string, string>): string | undefined {
  if (types.has(name)) return name;
  const base = name.replace(/_(bucket|sum|count)$/, '');
  const type = types.get(base);
  return type === 'histogram' || type === 'summary' ? base : undefined;
}

const seriesKey = (s: Sample) =>
  `${s.name}{${Object.keys(s.labels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(s.labels[k])}`)
    .join(',')}}`;

export function parseExposition(text: string): Exposition {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  const seen = new Set<string>();
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    if (line.startsWith('#')) {
      const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
      if (meta === null) continue; // a plain comment
      const [, kind, name, rest] = meta as unknown as [string, string, string, string];
      if (kind === 'TYPE') {
        if (!TYPES.has(rest)) throw new Error(`unknown type: ${line}`);
        if (types.has(name)) throw new Error(`TYPE twice for ${name}`);
        types.set(name, rest);
      } else help.set(name, rest);
      continue;
    }
    const name = NAME.exec(line)?.[0];
    if (name === undefined) throw new Error(`not a sample line: ${line}`);
    let rest = line.slice(name.length);
    let labels: Record<string, string> = Object.create(null);
    if (rest.startsWith('{')) ({ labels, rest } = parseLabels(rest, line));
    const fields = rest.trim().split(/\s+/);
    if (fields.length < 1 || fields.length > 2 || fields[0] === '' || !/^\s/.test(rest)) {
      throw new Error(`malformed sample: ${line}`);
    }
    if (familyOf(name, types) === undefined) throw new Error(`sample before or without its TYPE: ${line}`);
    const sample: Sample = { name, labels, value: parseValue(fields[0] as string, line) };
    const key = seriesKey(sample);
    if (seen.has(key)) throw new Error(`series twice: ${key}`);
    seen.add(key);
    samples.push(sample);
  }

  const series = (name: string) => samples.filter((s) => s.name === name);
  return {
    samples,
    types,
    help,
    series,
    value(name, labels = {}) {
      const want = Object.entries(labels);
      const match = series(name).find(
        (s) => Object.keys(s.labels).length === want.length && want.every(([k, v]) => s.labels[k] === v),
      );
      return match?.value;
    },
  };
}
