import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = resolve(import.meta.dirname, '../../src');

/** Every .ts file under a folder of src, with the src-relative files it imports (type imports too). */
function importGraph(folders: string[]): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const folder of folders) {
    for (const entry of readdirSync(join(SRC, folder), { recursive: true, encoding: 'utf8' })) {
      if (!entry.endsWith('.ts')) continue;
      const file = join(SRC, folder, entry);
      const imports = [...readFileSync(file, 'utf8').matchAll(/^(?:import|export)[^'"]*from\s+'([^']+)'/gm)].map((m) => m[1]!);
      graph.set(
        relative(SRC, file),
        imports.map((spec) => (spec.startsWith('.') ? relative(SRC, resolve(dirname(file), spec)).replace(/\.js$/, '.ts') : spec)),
      );
    }
  }
  return graph;
}

describe('architecture', () => {
  const graph = importGraph(['domain', 'auth']);

  it('keeps the domain free of transports, drivers, generated code and src/auth', () => {
    const offending = [...graph].flatMap(([file, imports]) =>
      file.startsWith('domain/') ? imports.filter((i) => /^(auth|gen|rpc|gateway)\//.test(i) || /^(@grpc\/|mysql2)/.test(i)).map((i) => `${file} -> ${i}`) : [],
    );
    expect(offending).toEqual([]);
  });

  it('has no import cycle among src/domain and src/auth files', () => {
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const visit = (file: string, trail: string[]) => {
      if (state.get(file) === 'done') return;
      if (state.get(file) === 'open') {
        cycles.push([...trail.slice(trail.indexOf(file)), file].join(' -> '));
        return;
      }
      state.set(file, 'open');
      for (const next of graph.get(file) ?? []) if (graph.has(next)) visit(next, [...trail, file]);
      state.set(file, 'done');
    };
    for (const file of graph.keys()) visit(file, []);
    expect(graph.size).toBeGreaterThan(20);
    expect(cycles).toEqual([]);
  });
});
