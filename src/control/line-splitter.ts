/**
 * Splits a byte stream into newline-terminated lines without re-scanning or re-copying
 * what was already buffered: chunks wait in a list until a newline arrives, then are
 * joined once. A line longer than `maxBytes` (when set) is reported as overflow instead of
 * growing the buffer further.
 */
const LF = 0x0a;

export type SplitResult = { lines: string[]; overflow: boolean };

export class LineSplitter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly maxBytes = Infinity) {}

  /** Feed one chunk; returns the complete lines it finished (without the newline). */
  push(chunk: Buffer): SplitResult {
    const lines: string[] = [];
    let rest = chunk;
    for (;;) {
      const nl = rest.indexOf(LF);
      if (nl === -1) break;
      const head = rest.subarray(0, nl);
      if (this.pendingBytes + head.length > this.maxBytes) return { lines, overflow: true };
      const line = this.pending.length === 0 ? head : Buffer.concat([...this.pending, head]);
      this.pending = [];
      this.pendingBytes = 0;
      lines.push(line.toString('utf8'));
      rest = rest.subarray(nl + 1);
    }
    if (rest.length > 0) {
      this.pendingBytes += rest.length;
      if (this.pendingBytes > this.maxBytes) return { lines, overflow: true };
      this.pending.push(rest);
    }
    return { lines, overflow: false };
  }

  /** Bytes buffered after the last newline. */
  get buffered(): number {
    return this.pendingBytes;
  }
}
