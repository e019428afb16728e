/**
 * A strict reader of the Prometheus text exposition format (0.0.4), so a test can assert that a
 * scrape parses and read sample values by name and labels. Throws on any line it cannot read.
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  samples: Sample[];
  /** Metric family name -> declared type. */
  types: Map<string, string>;
  /** The sample's value, or 0 when no sample has exactly these labels (a counter not yet touched). */
  value(name: string, labels?: Record<string, string>): number;
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const SAMPLE = new RegExp(`^(${NAME})(?:\\{(.*)\\})?\\s+(\\S+)(?:\\s+-?\\d+)?$`);
const LABEL = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

export function parsePrometheusText(text: string): Exposition {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  text.split('\n').forEach((line, index) => {
    const where = `line ${index + 1} ${JSON.stringify(line)}`;
    if (line === '') return;
    if (line.startsWith('#')) {
      const meta = new RegExp(`^# (HELP|TYPE) (${NAME}) (.*)$`).exec(line);
      if (!meta) throw new Error(`unreadable comment at ${where}`);
      if (meta[1] === 'TYPE') {
        if (!TYPES.has(meta[3]!)) throw new Error(`unknown type at ${where}`);
        types.set(meta[2]!, meta[3]!);
      }
      return;
    }
    const match = SAMPLE.exec(line);
    if (!match) throw new Error(`unreadable sample at ${where}`);
    const labels: Record<string, string> = {};
    let rest = match[2] ?? '';
    while (rest !== '') {
      const label = LABEL.exec(rest);
      if (!label) throw new Error(`unreadable labels at ${where}`);
      labels[label[1]!] = label[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
      rest = rest.slice(label[0].length);
    }
    const raw = match[3]!;
    const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw);
    // Prometheus reads floats with Go's ParseFloat, which takes NaN in any case; prom-client
    // writes `Nan` (e.g. the event-loop lag before its first sample).
    if (Number.isNaN(value) && !/^nan$/i.test(raw)) throw new Error(`unreadable value at ${where}`);
    samples.push({ name: match[1]!, labels, value });
  });
  return {
    samples,
    types,
    value(name, labels = {}) {
      const want = Object.entries(labels);
      const found = samples.find(
        (s) => s.name === name && want.every(([k, v]) => s.labels[k] === v) && Object.keys(s.labels).length === want.length,
      );
      return found?.value ?? 0;
    },
  };
}
