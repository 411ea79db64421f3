/**
 * Top self-time frames of V8 .cpuprofile files (node --cpu-prof), one table per file. Self time
 * of a frame is the sum of the sample intervals that landed in it; frames are merged by
 * function, file and line.
 *   node --import tsx bench/profile-summary.ts <dir>
 */
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

function frameName(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  const file = url.replace(/^file:\/\//, '').replace(/.*node_modules\//, '').replace(/.*\/services\//, 'services/');
  return url ? `${functionName || '(anonymous)'} ${file}:${lineNumber + 1}` : functionName;
}

export function topFrames(profile: Profile, limit = 15): { frame: string; share: number }[] {
  const byId = new Map(profile.nodes.map((n) => [n.id, frameName(n)]));
  const self = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    total += dt;
    const name = byId.get(id) ?? '?';
    self.set(name, (self.get(name) ?? 0) + dt);
  });
  return [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, limit)
    .map(([frame, t]) => ({ frame, share: t / total }));
}

export function summarizeProfiles(dir: string, files = readdirSync(dir)): string {
  const out: string[] = [];
  for (const file of files.filter((f) => f.endsWith('.cpuprofile')).sort()) {
    const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as Profile;
    const busy = topFrames(profile, 1000).filter((f) => f.frame !== '(idle)');
    const busyShare = busy.reduce((s, f) => s + f.share, 0);
    const service = profile.nodes.map((n) => /services\/(\w+)\/dist\/main\.js/.exec(n.callFrame.url)?.[1]).find(Boolean) ?? 'unknown';
    out.push(`\n${service} (${basename(file)}): busy ${(busyShare * 100).toFixed(0)}% of the samples; top self time (share of busy time):`);
    for (const f of busy.slice(0, 15)) out.push(`  ${((f.share / busyShare) * 100).toFixed(1).padStart(5)}%  ${f.frame}`);
  }
  return `${out.join('\n')}\n`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.stdout.write(summarizeProfiles(process.argv[2]!));
}
