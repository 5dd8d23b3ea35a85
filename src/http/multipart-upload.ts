// Streams the `file` part of a multipart/form-data request to a consumer, never buffering it whole.
import busboy from "busboy";
import { Readable } from "node:stream";
import type { ReadableStream as NodeReadableStream } from "node:stream/web";
import type { FilePart } from "../messages/attachments.ts";
import { ApiError } from "./errors.ts";
import { PartHeaderTap } from "./part-content-type.ts";

const MULTIPART = /^multipart\/form-data\s*;/i;

/**
 * busboy's `files` counts every file part, so it is as wide as `parts`: other file parts are
 * drained here and only the parts limit bounds them.
 */
const LIMITS = { parts: 40, files: 40, fields: 20, fieldSize: 64 * 1024, headerPairs: 40 };

const malformed = () => new ApiError(400, "malformed multipart body");
const interrupted = () => new ApiError(400, "upload interrupted");
/** The reason a part stream is destroyed once its consumer has settled (nobody reads it again). */
const FINISHED = new Error("upload finished");

// Catches errors a stream emits after we stopped listening (busboy destroys parts with its own
// error; a late one without a listener would stop the process).
const ignore = () => {};

/**
 * Runs `consume` on the first part named `file` and returns its result; other parts are drained.
 * Consuming slowly slows reading the socket (backpressure). Whatever ends the upload — the form's
 * end, a malformed or truncated body, the client going away, Bun's idle timeout, or `consume`
 * failing — destroys every stream made here, so a consumer reading the part gets a throw, and
 * the returned promise settles once, only after `consume` has settled (its clean-up is done).
 */
export async function withFilePart<T>(req: Request, consume: (part: FilePart) => Promise<T>): Promise<T> {
  const type = req.headers.get("content-type") ?? "";
  if (!MULTIPART.test(type)) throw new ApiError(415, "content type must be multipart/form-data");
  if (!req.body) throw new ApiError(400, "file field required");

  let parser: busboy.Busboy;
  try {
    parser = busboy({ headers: { "content-type": type }, preservePath: true, defParamCharset: "utf8", limits: LIMITS });
  } catch {
    throw malformed();
  }
  parser.on("error", ignore);
  // Between the body and busboy, to tell a part sent without Content-Type from one sent as text/plain.
  const tap = new PartHeaderTap(parser, type, LIMITS.parts);
  tap.on("error", ignore);
  const input = Readable.fromWeb(req.body as NodeReadableStream<Uint8Array>);
  input.on("error", ignore);

  return new Promise<T>((resolve, reject) => {
    /** Our part, once busboy has found it. */
    let part: Readable | null = null;
    /** Other file parts being drained (busboy holds at most one open at a time). */
    const skipped = new Set<Readable>();
    let consuming = false;
    let failure: ApiError | null = null;
    let tornDown = false;
    let settled = false;
    let fileAsField = false;

    const teardown = (reason: Error) => {
      if (tornDown) return;
      tornDown = true;
      req.signal.removeEventListener("abort", onAbort);
      parser.off("file", onFile).off("field", onField).off("error", onParserError).off("finish", onFinish);
      input.off("error", onInputError);
      input.unpipe(tap);
      part?.destroy(reason);
      for (const s of skipped) s.destroy(reason);
      skipped.clear();
      input.destroy();
      tap.destroy();
      parser.destroy();
    };
    const settle = (outcome: () => void) => {
      if (settled) return;
      settled = true;
      outcome();
    };
    /** The body failed: stop everything now; answer once the consumer (if any) has let go. */
    const fail = (reason: ApiError) => {
      failure ??= reason;
      teardown(reason);
      if (!consuming) settle(() => reject(failure));
    };

    function onFile(name: string, stream: Readable, info: busboy.FileInfo) {
      stream.on("error", ignore);
      if (name !== "file" || part !== null) {
        skipped.add(stream);
        stream.once("close", () => skipped.delete(stream));
        stream.resume();
        return;
      }
      part = stream;
      consuming = true;
      let result: Promise<T>;
      try {
        // Unknown only for bodies busboy half-rejects; then busboy's own report stands, as it always did.
        const sent = tap.sentHeader(info.mimeType);
        // Later parts are skipped unread: nobody asks for their headers.
        tap.passThrough();
        result = consume({ filename: info.filename ?? "", contentType: sent === null ? info.mimeType : sent.contentType, stream });
      } catch (err) {
        result = Promise.reject(err);
      }
      result.then(
        (value) => {
          // Stored and committed: that stands, even if the rest of the body then broke off.
          consuming = false;
          teardown(FINISHED);
          settle(() => resolve(value));
        },
        (err: unknown) => {
          consuming = false;
          teardown(err instanceof Error ? err : FINISHED);
          // The consumer's error is often just the part stream's destruction; the cause wins.
          settle(() => reject(failure ?? err));
        },
      );
    }
    function onField(name: string) {
      if (name === "file") fileAsField = true; // sent in the file field, but without a file name
    }
    function onParserError() {
      fail(malformed());
    }
    function onFinish() {
      // The whole form was read; without our part there is nothing more to wait for.
      if (part === null) fail(new ApiError(400, fileAsField ? "invalid filename" : "file field required"));
    }
    function onInputError() {
      fail(interrupted());
    }
    function onAbort() {
      fail(interrupted());
    }

    parser.on("file", onFile).on("field", onField).on("error", onParserError).on("finish", onFinish);
    input.on("error", onInputError);
    if (req.signal.aborted) return fail(interrupted());
    req.signal.addEventListener("abort", onAbort);
    input.pipe(tap);
  });
}
