/**
 * The most recent frames the gateway has pushed, by seq, in a ring bounded both in frames and
 * in characters (so a burst of large messages cannot grow the gateway past its memory limit).
 * A client that resumes within it is served from memory; older resumes replay from the stream.
 */
export class FrameHistory {
  private readonly seqs: Float64Array;
  private readonly frames: string[];
  private start = 0;
  private size = 0;
  private chars = 0;

  constructor(
    readonly capacity: number,
    readonly maxChars: number = Number.POSITIVE_INFINITY,
  ) {
    this.seqs = new Float64Array(capacity);
    this.frames = new Array<string>(capacity);
  }

  get length(): number {
    return this.size;
  }

  /** Oldest seq held, or undefined when empty. */
  get firstSeq(): number | undefined {
    return this.size ? this.seqs[this.start] : undefined;
  }

  /** Characters held (about the bytes held, for the ASCII-heavy JSON frames are). */
  get weight(): number {
    return this.chars;
  }

  push(seq: number, frame: string): void {
    if (this.capacity === 0) return;
    if (this.size === this.capacity) this.dropOldest();
    const index = (this.start + this.size) % this.capacity;
    this.seqs[index] = seq;
    this.frames[index] = frame;
    this.size += 1;
    this.chars += frame.length;
    while (this.chars > this.maxChars && this.size > 1) this.dropOldest();
  }

  private dropOldest(): void {
    this.chars -= this.frames[this.start]!.length;
    this.frames[this.start] = '';
    this.start = (this.start + 1) % this.capacity;
    this.size -= 1;
  }

  /**
   * Every frame with a seq greater than `since`, oldest first, if the ring still holds all of
   * them (i.e. nothing after `since` has been evicted); undefined otherwise.
   */
  after(since: number, lastPushedSeq: number): string[] | undefined {
    return this.slice(since, lastPushedSeq)?.frames;
  }

  /** Whether every frame after `since` is still held. */
  holds(since: number, lastPushedSeq: number): boolean {
    if (since >= lastPushedSeq) return true;
    const first = this.firstSeq;
    // The ring is contiguous from `first` on, so it covers `since` iff since >= first - 1.
    return first !== undefined && since >= first - 1;
  }

  /** Like after(), with each frame's seq. */
  slice(since: number, lastPushedSeq: number): { seqs: number[]; frames: string[] } | undefined {
    if (!this.holds(since, lastPushedSeq)) return undefined;
    const seqs: number[] = [];
    const frames: string[] = [];
    if (since >= lastPushedSeq) return { seqs, frames };
    for (let i = 0; i < this.size; i++) {
      const index = (this.start + i) % this.capacity;
      if (this.seqs[index]! > since) {
        seqs.push(this.seqs[index]!);
        frames.push(this.frames[index]!);
      }
    }
    return { seqs, frames };
  }
}
