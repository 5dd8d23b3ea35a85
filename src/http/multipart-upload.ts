// Streams the `file` part of a multipart/form-data request to a consumer, never buffering it whole.
import busboy from "busboy";
import { Readable } from "node:stream";
import { ApiError } from "./errors.ts";

export type FilePart = {
  /** The part's filename exactly as sent (no path stripping: "a/b" stays "a/b" and is refused). */
  filename: string;
  /** The part's media type (type/subtype); RFC 7578's default text/plain when the header is absent. */
  mimeType: string;
  stream: AsyncIterable<Uint8Array>;
};

const MULTIPART = /^multipart\/form-data\s*;/i;

/**
 * Runs `consume` on the first part named `file` that has a filename and returns its result.
 * Other parts are skipped. Consuming slowly slows reading the socket (backpressure).
 */
export async function withFilePart<T>(req: Request, consume: (part: FilePart) => Promise<T>): Promise<T> {
  const type = req.headers.get("content-type") ?? "";
  if (!MULTIPART.test(type)) throw new ApiError(415, "content type must be multipart/form-data");
  if (!req.body) throw new ApiError(400, "file field required");

  let parser: busboy.Busboy;
  try {
    parser = busboy({
      headers: { "content-type": type },
      preservePath: true,
      defParamCharset: "utf8",
      limits: { files: 1, fields: 20, fieldSize: 64 * 1024, parts: 40, headerPairs: 40 },
    });
  } catch {
    throw new ApiError(400, "malformed multipart body");
  }
  const input = Readable.fromWeb(req.body as import("node:stream/web").ReadableStream<Uint8Array>);

  return new Promise<T>((resolve, reject) => {
    let started = false;
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      fn();
    };
    const abandon = () => {
      input.unpipe(parser);
      input.destroy();
    };
    parser.on("file", (name, stream, info) => {
      if (name !== "file" || started) {
        stream.resume(); // not ours: drain
        return;
      }
      started = true;
      consume({ filename: info.filename ?? "", mimeType: info.mimeType, stream }).then(
        (value) => {
          stream.resume();
          finish(() => resolve(value));
        },
        (err) => {
          abandon();
          finish(() => reject(err));
        },
      );
    });
    let fileAsField = false;
    parser.on("field", (name) => {
      if (name === "file") fileAsField = true; // sent in the file field, but without a file name
    });
    parser.on("error", () => {
      abandon();
      finish(() => reject(new ApiError(400, "malformed multipart body")));
    });
    parser.on("close", () => {
      if (!started) finish(() => reject(new ApiError(400, fileAsField ? "invalid filename" : "file field required")));
    });
    input.on("error", () => finish(() => reject(new ApiError(400, "upload interrupted"))));
    input.pipe(parser);
  });
}
