/**
 * What a new connection gets before it goes live, decided from what the gateway and the
 * stream hold at that instant. Pure, so every edge of the contract's resume rule is testable.
 */
export type ResumePlan =
  | { kind: 'live'; recovered: boolean }
  | { kind: 'memory'; fromSeq: number }
  | { kind: 'stream'; fromSeq: number };

export interface ResumeState {
  /** Last seq the gateway has pushed. */
  lastSeq: number;
  /** Oldest seq the stream still holds (stream first_seq; lastSeq + 1 when empty). */
  streamFirstSeq: number;
  /** Whether the gateway's memory still holds every frame after `since`. */
  inMemory(since: number): boolean;
}

export function planResume(since: number | undefined, state: ResumeState): ResumePlan {
  if (since === undefined) return { kind: 'live', recovered: false };
  // A client ahead of the stream saw a stream that no longer exists (recreated): it must reload.
  if (since > state.lastSeq) return { kind: 'live', recovered: false };
  if (since === state.lastSeq) return { kind: 'live', recovered: true };
  // The stream no longer holds since + 1: the gap cannot be filled.
  if (since + 1 < state.streamFirstSeq) return { kind: 'live', recovered: false };
  return { kind: state.inMemory(since) ? 'memory' : 'stream', fromSeq: since + 1 };
}

/** `since` as the contract allows it: absent, or a non-negative integer. */
export function parseSince(raw: string | undefined): number | undefined | 'invalid' {
  if (raw === undefined || raw === '') return undefined;
  if (!/^\d{1,15}$/.test(raw)) return 'invalid';
  return Number(raw);
}
