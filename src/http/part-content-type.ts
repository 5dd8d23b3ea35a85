// Which Content-Type header (or none) each multipart part was sent with: busboy reports a missing one as text/plain.
import { Writable } from "node:stream";
import { boundaryOf, HEADER_DONE, HEADER_MALFORMED, HeaderReader, type SentPartHeader } from "./busboy-grammar.ts";

/**
 * The byte stream between the request and busboy. It scans the raw body for each part's header
 * block, framed as busboy frames it, and hands busboy the body one piece at a time, cut just after
 * each header block. busboy emits `file` the moment a header block completes, but its boundary
 * search holds back any tail that may begin a boundary, and a block's final CRLF always may: a
 * block ending a piece completes only while a later piece is in flight, and never two in one piece.
 * So the part busboy announces is the last block that ended before the piece in flight, and
 * `sentHeader()` called from a `file` listener is that part's header. File data is never copied or
 * held here (pieces are views of the chunks).
 */
export class PartHeaderTap extends Writable {
  readonly #parser: Writable;
  readonly #scanner: BodyScanner | null;
  /** Stream offset of the next byte handed to busboy. */
  #handed = 0;
  /** The header block busboy may be completing now; null before the first one or once framing is lost. */
  #current: SentPartHeader | null = null;
  /** Set by passThrough(): no header is asked for any more, so chunks go to busboy as they come. */
  #done = false;

  /** `partsLimit`: busboy's `limits.parts`. */
  constructor(parser: Writable, requestContentType: string, partsLimit: number) {
    super();
    this.#parser = parser;
    const boundary = boundaryOf(requestContentType);
    this.#scanner = boundary === null ? null : new BodyScanner(boundary, partsLimit);
  }

  /**
   * The header of the part busboy has just announced, or null when it cannot be known (framing the
   * scanner cannot follow, only in junk bodies; or a report that does not fit). `reported` is
   * busboy's `mimeType`, a cross-check: text/plain (its default) or the sent type's type/subtype.
   */
  sentHeader(reported: string): SentPartHeader | null {
    const sent = this.#current;
    if (sent === null || reported === "text/plain") return sent;
    return sent.contentType?.toLowerCase().startsWith(reported) ? sent : null;
  }

  /**
   * No more headers will be asked for (the caller has its part): the rest of the body goes to busboy
   * untouched. Scanning a 200 MiB upload to its end, with a view per chunk, kept each chunk alive
   * longer and raised the upload's peak memory by 10–15 MiB (bench scenario 5).
   */
  passThrough(): void {
    this.#done = true;
  }

  override _write(data: Uint8Array, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    if (this.#done) return void this.#parser.write(data, done);
    // A Buffer view, for its indexOf of a byte sequence (a plain Uint8Array's looks for one number).
    const chunk = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const start = this.#handed;
    const cuts = this.#scanner?.scan(chunk) ?? [];
    let from = 0;
    let next = 0;
    // One piece at a time, the next only once busboy has taken the last: nothing queues inside
    // busboy's stream, so a `file` event always belongs to the piece in flight.
    const handOn = (error?: Error | null) => {
      if (error) return done(error);
      if (from === chunk.length || this.destroyed) return done();
      const to = next < cuts.length ? cuts[next++]! : chunk.length;
      this.#enter(start + from);
      this.#handed = start + to;
      // A chunk with no header block ending inside it goes on whole, not as a view of itself.
      const piece = from === 0 && to === chunk.length ? chunk : chunk.subarray(from, to);
      from = to;
      this.#parser.write(piece, handOn);
    };
    handOn();
  }

  override _final(done: (error?: Error | null) => void): void {
    // busboy releases the bytes its search held back when it ends, which can complete a header.
    this.#scanner?.finish();
    this.#enter(Infinity);
    this.#parser.end();
    done();
  }

  #enter(offset: number): void {
    const marks = this.#scanner?.marks;
    while (marks && marks.length > 0 && marks[0]!.end <= offset) this.#current = marks.shift()!.header;
  }
}

/** A point in the body where a header block ended (its header), or where framing stops being known (null). */
type Mark = { end: number; header: SentPartHeader | null };

const CR = 13;
const LF = 10;
const DASH = 45;

/**
 * busboy's view of a multipart body, rebuilt from the bytes: its boundary search (`\r\n--boundary`,
 * after the CRLF it writes itself first), what it does after a boundary, and its part-header
 * parser. Its search holds back the longest tail that may begin a boundary and hands on the rest;
 * a header block completes when its last byte is handed on. Only header blocks are read byte by
 * byte; file data is searched with `indexOf`.
 */
class BodyScanner {
  /** Where header blocks ended and framing stopped, in body order; the tap consumes them. */
  readonly marks: Mark[] = [];
  readonly #needle: Buffer;
  /** KMP fallback: the longest proper border of each prefix of the needle. */
  readonly #border: Int32Array;
  readonly #partsLimit: number;
  /** How many needle bytes the search holds back (they are the needle's first bytes). */
  #held = 0;
  /** Stream offset of the next byte scanned. */
  #offset = -2;
  /** busboy's matchPostBoundary: 1 just after a boundary, 2 after `-`, 3 after CR. */
  #post = 0;
  #header: HeaderReader | null = null;
  /** busboy counts a part at each boundary, from -1 (the first opens part 0). */
  #parts = -1;
  #stopped = false;

  constructor(boundary: string, partsLimit: number) {
    this.#needle = Buffer.from(`\r\n--${boundary}`);
    this.#border = borders(this.#needle);
    this.#partsLimit = partsLimit;
    this.#step(CR);
    this.#step(LF);
  }

  /** Scans the next chunk of the body; returns the offsets inside it where to cut it. */
  scan(chunk: Buffer): number[] {
    const before = this.marks.length;
    const needle = this.#needle;
    const start = this.#offset;
    let i = 0;
    while (i < chunk.length && !this.#stopped) {
      if (this.#held === 0 && this.#header === null && this.#post === 0) {
        // Plain data until the next boundary: busboy does nothing with it that matters here.
        const found = chunk.indexOf(needle, i);
        if (found !== -1) {
          i = found + needle.length;
          this.#offset = start + i;
          this.#matched(start + i);
          continue;
        }
        // No boundary in the rest, but its last bytes may begin one.
        i = Math.max(i, chunk.length - needle.length + 1);
        this.#offset = start + i;
        for (; i < chunk.length; i++) this.#step(chunk[i]!);
        break;
      }
      this.#step(chunk[i]!);
      i++;
    }
    const end = start + chunk.length;
    this.#offset = end;
    return this.marks
      .slice(before)
      .filter((m) => m.end > start && m.end < end)
      .map((m) => m.end - start);
  }

  /** The body ended: busboy hands on what its search still held. */
  finish(): void {
    const held = this.#held;
    this.#held = 0;
    for (let k = 0; k < held; k++) this.#handOn(this.#needle[k]!, this.#offset - held + k);
  }

  /** One byte through the boundary search (KMP: the same leftmost, non-overlapping matches). */
  #step(b: number): void {
    const needle = this.#needle;
    const at = this.#offset++;
    let held = this.#held;
    while (held > 0 && b !== needle[held]) {
      const keep = this.#border[held - 1]!;
      for (let k = 0; k < held - keep; k++) this.#handOn(needle[k]!, at - held + k);
      held = keep;
    }
    if (b === needle[held]) {
      held++;
      if (held === needle.length) {
        this.#held = 0;
        return this.#matched(at + 1);
      }
      this.#held = held;
    } else {
      this.#held = 0;
      this.#handOn(b, at);
    }
  }

  /** A boundary ended at `end`. */
  #matched(end: number): void {
    if (this.#stopped) return;
    // One `-` or CR between two boundaries: whether busboy counts the second depends on how its
    // search happened to cut the data, so what follows can no longer be followed.
    if (this.#post === 2 || this.#post === 3) return this.#stop(end);
    this.#post = 1;
    this.#parts++;
  }

  /** A byte busboy's search hands on (not part of a boundary), at stream offset `at`. */
  #handOn(b: number, at: number): void {
    if (this.#stopped) return;
    const header = this.#header;
    if (header !== null) {
      const state = header.push(b);
      if (state === HEADER_DONE) {
        this.#header = null;
        this.marks.push({ end: at + 1, header: header.result() });
      } else if (state === HEADER_MALFORMED) {
        this.#stop(at + 1); // busboy fails the whole body
      }
      return;
    }
    switch (this.#post) {
      case 1:
        this.#post = b === DASH ? 2 : b === CR ? 3 : 0;
        return;
      case 2:
        this.#post = 0;
        // `--`: the end of the form; busboy ignores the rest (from its next write: cut here).
        if (b === DASH) this.#stop(at + 1);
        return;
      case 3:
        this.#post = 0;
        if (b !== LF) return;
        // Past its parts limit busboy reads no more part headers: nothing more to follow.
        if (this.#parts >= this.#partsLimit) return this.#stop(at + 1);
        this.#header = new HeaderReader();
        return;
    }
  }

  #stop(end: number): void {
    this.#stopped = true;
    this.#header = null;
    this.marks.push({ end, header: null });
  }
}

function borders(needle: Uint8Array): Int32Array {
  const border = new Int32Array(needle.length);
  for (let q = 1, k = 0; q < needle.length; q++) {
    while (k > 0 && needle[q] !== needle[k]) k = border[k - 1]!;
    if (needle[q] === needle[k]) k++;
    border[q] = k;
  }
  return border;
}
