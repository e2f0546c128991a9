/**
 * LogBuffer: the text of one log stream of one job, built from chunks that carry byte offsets
 * (REST reads and websocket events may overlap or arrive after a gap).
 */
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export type AppendResult = 'appended' | 'duplicate' | 'gap';

export class LogBuffer {
  private _chunks: string[] = [];
  private _length = 0;
  private _end = 0;
  private _dropped = 0;

  /** @param maxChars characters kept; older text is dropped (and `truncated` set). */
  constructor(readonly maxChars = 2_000_000) {}

  /** Byte offset of the end of the text held. */
  get end(): number {
    return this._end;
  }

  /** True when older text was dropped to stay under `maxChars`. */
  get truncated(): boolean {
    return this._dropped > 0;
  }

  get text(): string {
    if (this._chunks.length > 1) {
      this._chunks = [this._chunks.join('')];
    }
    return this._chunks[0] ?? '';
  }

  /**
   * Add `data` that starts at byte `start`. Bytes already held are skipped; a chunk that starts
   * after `end` is refused with `'gap'` (the caller reads the missing bytes first).
   */
  append(start: number, data: string): AppendResult {
    if (start > this._end) {
      return 'gap';
    }
    let text = data;
    if (start < this._end) {
      const bytes = encoder.encode(data);
      const skip = this._end - start;
      if (skip >= bytes.length) {
        return 'duplicate';
      }
      text = decoder.decode(bytes.subarray(skip));
      this._end += bytes.length - skip;
    } else {
      this._end += encoder.encode(data).length;
    }
    if (!text) {
      return 'duplicate';
    }
    this._chunks.push(text);
    this._length += text.length;
    if (this._length > this.maxChars) {
      const all = this._chunks.join('');
      const cut = all.length - this.maxChars;
      const nl = all.indexOf('\n', cut);
      const from = nl >= 0 && nl - cut < 10000 ? nl + 1 : cut;
      this._chunks = [all.slice(from)];
      this._dropped += from;
      this._length = this._chunks[0].length;
    }
    return 'appended';
  }

  clear(): void {
    this._chunks = [];
    this._length = 0;
    this._end = 0;
    this._dropped = 0;
  }
}
