// An HTTP answer from a hostile service: 200, then whitespace without end. Counts what it handed over.

/** Stops feeding after this much, so a client that reads everything does not run the test out of memory. */
const GIVE_UP_BYTES = 1024 * 1024 * 1024;
const CHUNK = new Uint8Array(64 * 1024).fill(0x20);

export type EndlessBody = {
  response(): Response;
  /** Bytes handed to the connection so far, over every answer. */
  readonly sent: number;
};

export function endlessBody(): EndlessBody {
  let sent = 0;
  return {
    response() {
      let mine = 0;
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (mine >= GIVE_UP_BYTES) return controller.close();
          mine += CHUNK.byteLength;
          sent += CHUNK.byteLength;
          controller.enqueue(CHUNK);
        },
      });
      return new Response(body, { status: 200, headers: { "content-type": "application/json" } });
    },
    get sent() {
      return sent;
    },
  };
}
