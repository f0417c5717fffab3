/**
 * Summarizes a V8 .cpuprofile (node --cpu-prof): self time by category and the top functions.
 * Native functions without a script (e.g. Hash.update) are charged to their caller's category.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileSummary {
  file: string;
  totalMs: number;
  categories: Array<{ category: string; ms: number; share: number }>;
  top: Array<{ fn: string; where: string; category: string; ms: number; share: number }>;
}

function categoryOf(url: string, fn: string): string | undefined {
  if (fn === '(garbage collector)') return 'GC';
  if (fn === '(idle)') return 'idle (waiting for I/O)';
  if (fn === '(program)') return 'V8/native (program)';
  if (!url) return undefined;
  if (url.includes('/core/')) return 'pagewise core';
  if (url.includes('lz4-napi')) return 'lz4';
  if (url.includes('@azure/core-') || url.includes('@typespec')) return 'Azure SDK: HTTP pipeline';
  if (url.includes('@azure/storage-blob')) return 'Azure SDK: storage-blob';
  if (url.includes('azurite')) return 'azurite';
  if (url.includes('node_modules')) return 'other dependencies';
  if (url.includes('internal/crypto')) return 'node: crypto (sha256/AES)';
  if (url.includes('internal/fs') || url.startsWith('node:fs')) return 'node: fs';
  if (/_http|internal\/http|node:http|undici/.test(url)) return 'node: http';
  if (/net|stream|tls/.test(url)) return 'node: net/stream';
  if (url.startsWith('node:')) return 'node: other';
  return 'other';
}

export function summarizeProfile(file: string, topN = 15): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = profile.timeDeltas[i + 1] ?? 0;
    self.set(profile.samples[i], (self.get(profile.samples[i]) ?? 0) + dt);
  }
  const categoryCache = new Map<number, string>();
  const categoryOfNode = (id: number): string => {
    const cached = categoryCache.get(id);
    if (cached) return cached;
    const n = byId.get(id)!;
    let c = categoryOf(n.callFrame.url, n.callFrame.functionName);
    if (!c) {
      const p = parent.get(id);
      c = p === undefined ? 'other' : categoryOfNode(p);
      if (c.startsWith('idle') || c === 'GC' || c.startsWith('V8')) c = 'other';
    }
    categoryCache.set(id, c);
    return c;
  };
  const total = [...self.values()].reduce((s, v) => s + v, 0) / 1000;
  const cats = new Map<string, number>();
  const fns = new Map<string, { fn: string; where: string; category: string; ms: number }>();
  for (const [id, us] of self) {
    const n = byId.get(id)!;
    const category = categoryOfNode(id);
    cats.set(category, (cats.get(category) ?? 0) + us / 1000);
    const where = n.callFrame.url ? `${n.callFrame.url.replace(/^.*node_modules\//, '').replace(/^.*pagewise-bench-build-[^/]+\//, '')}:${n.callFrame.lineNumber + 1}` : '(native)';
    const key = `${n.callFrame.functionName || '(anonymous)'}@${where}`;
    const f = fns.get(key) ?? { fn: n.callFrame.functionName || '(anonymous)', where, category, ms: 0 };
    f.ms += us / 1000;
    fns.set(key, f);
  }
  return {
    file,
    totalMs: total,
    categories: [...cats].map(([category, ms]) => ({ category, ms, share: ms / total })).sort((a, b) => b.ms - a.ms),
    top: [...fns.values()].sort((a, b) => b.ms - a.ms).slice(0, topN).map((f) => ({ ...f, share: f.ms / total })),
  };
}
