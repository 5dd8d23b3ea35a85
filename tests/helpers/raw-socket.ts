// Raw TCP connections to a test server, for requests fetch() cannot send (cut-off bodies, stalls).
import { connect, type Socket } from "node:net";

/**
 * A socket connected to the host and port of `url`. A failure to connect rejects; errors after that
 * (the server ending a broken request abruptly, which these tests provoke) are ignored.
 */
export function openSocket(url: string): Promise<Socket> {
  const { hostname, port } = new URL(url);
  return new Promise((done, fail) => {
    const socket = connect(Number(port), hostname, () => {
      socket.off("error", fail);
      socket.on("error", () => {});
      done(socket);
    });
    socket.once("error", fail);
  });
}
