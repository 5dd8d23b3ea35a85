// Long polls on raw sockets: hundreds of GET /fmsg/wait at once, past fetch's limit on concurrent requests, each answer parsed and stamped.
import type { Socket } from "bun";

export type WaitAnswer = {
  /** HTTP status, or null when the socket closed (or was closed by us) without a complete answer. */
  status: number | null;
  latestId: number | null;
  /** Date.now() when the answer was complete. */
  at: number;
  error?: string;
};

export type OpenWait = { answer: Promise<WaitAnswer>; close(): void };

/** A complete response in `text`, or null while more bytes are due (Connection: close; content-length or an empty body). */
function parse(text: string): { status: number; body: string } | null {
  const end = text.indexOf("\r\n\r\n");
  if (end < 0) return null;
  const status = Number(text.slice(9, 12));
  const length = /\r\ncontent-length:\s*(\d+)/i.exec(text.slice(0, end));
  const body = text.slice(end + 4);
  if (length) return body.length >= Number(length[1]) ? { status, body } : null;
  return status === 204 || status === 304 ? { status, body: "" } : null;
}

export function openWait(port: number, token: string, sinceId: number, timeoutSeconds: number): OpenWait {
  let settle: (a: WaitAnswer) => void = () => {};
  let settled = false;
  const answer = new Promise<WaitAnswer>((resolve) => {
    settle = (a) => {
      if (settled) return;
      settled = true;
      resolve(a);
    };
  });
  let text = "";
  let socket: Socket<undefined> | null = null;
  let closed = false;
  const decoder = new TextDecoder();
  const finish = (error?: string) => {
    const done = parse(text);
    if (!done) return settle({ status: null, latestId: null, at: Date.now(), error: error ?? "closed without an answer" });
    let latestId: number | null = null;
    try {
      latestId = done.body ? ((JSON.parse(done.body) as { latest_id?: number }).latest_id ?? null) : null;
    } catch {
      // not the JSON the route promises: latestId stays null and the caller counts it
    }
    settle({ status: done.status, latestId, at: Date.now() });
  };
  Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      open(s) {
        socket = s;
        if (closed) return void s.end();
        s.write(
          `GET /fmsg/wait?since_id=${sinceId}&timeout=${timeoutSeconds} HTTP/1.1\r\n` +
            `Host: 127.0.0.1:${port}\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`,
        );
      },
      data(s, chunk) {
        text += decoder.decode(chunk, { stream: true });
        if (parse(text)) {
          finish();
          s.end();
        }
      },
      close() {
        finish();
      },
      error(_s, err) {
        finish(String(err));
      },
    },
  }).catch((err: unknown) => finish(`connect: ${String(err)}`));
  return {
    answer,
    close() {
      closed = true;
      finish("closed by the round");
      socket?.end();
    },
  };
}
