// GET /fmsg/ws with tokens from POST /fmsg/token (docs/API.md "WebSocket"): a socket closes with 4001
// "api key revoked" once its key is revoked or rotated; sockets whose token still counts stay open.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { issueApiKey, rotateApiKeySecret } from "../../src/cli/api-key.ts";
import { revokeApiKey } from "../../src/db/api-keys.ts";
import { until } from "../helpers/poll.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

setDefaultTimeout(30_000);

const ALICE = "@alice@example.com";
/** The contract's bound (a token stops working within 5 s of its key's revocation), with a margin for a loaded machine. */
const WITHIN_MS = 10_000;

let s: TestServer;

beforeAll(async () => {
  s = await startTestServer();
});
afterAll(() => s.stop());

type Client = { ws: WebSocket; closed: Promise<CloseEvent>; closeEvent: CloseEvent | null };

async function connect(token: string): Promise<Client> {
  const ws = new WebSocket(`${s.url.replace(/^http/, "ws")}/fmsg/ws`, { headers: { authorization: `Bearer ${token}` } } as unknown as string[]);
  const client: Client = { ws, closed: null as unknown as Promise<CloseEvent>, closeEvent: null };
  client.closed = new Promise<CloseEvent>((resolve) =>
    ws.addEventListener("close", (e) => {
      client.closeEvent = e;
      resolve(e);
    }),
  );
  await new Promise<void>((resolve, reject) => {
    ws.addEventListener("open", () => resolve());
    ws.addEventListener("error", () => reject(new Error("websocket did not open")));
  });
  return client;
}

/** A token minted from `key` at POST /fmsg/token. */
async function minted(key: string): Promise<string> {
  const res = await s.request("POST", "/fmsg/token", { as: null, headers: { authorization: `Bearer ${key}` } });
  expect(res.status).toBe(200);
  return ((await res.json()) as { access_token: string }).access_token;
}

async function closeAll(clients: Client[]): Promise<void> {
  for (const c of clients) c.ws.close();
  await Promise.all(clients.map((c) => c.closed));
  await until(() => s.server.sockets.size === 0, "every socket removed");
}

describe("GET /fmsg/ws: a socket from an API key's token", () => {
  test('revoking the key closes it with 4001 "api key revoked"; sockets of a plain JWT and of another key stay open', async () => {
    const revoked = await issueApiKey(s.db.sql, { address: ALICE });
    const kept = await issueApiKey(s.db.sql, { address: ALICE });
    const doomed = await connect(await minted(revoked.key));
    const plain = await connect(s.token(ALICE));
    const otherKey = await connect(await minted(kept.key));
    try {
      expect(await revokeApiKey(s.db.sql, revoked.info.keyId)).not.toBeNull();
      await until(() => doomed.closeEvent !== null, "the socket of the revoked key closed", WITHIN_MS);
      expect(doomed.closeEvent!.code).toBe(4001);
      expect(doomed.closeEvent!.reason).toBe("api key revoked");
      // The sweep that closed it checked every socket before closing any: the others passed.
      expect(plain.ws.readyState).toBe(WebSocket.OPEN);
      expect(otherKey.ws.readyState).toBe(WebSocket.OPEN);
      await until(() => s.server.sockets.size === 2, "the closed socket removed");
    } finally {
      await closeAll([doomed, plain, otherKey]);
    }
  });

  test("rotating the key closes sockets of tokens minted before; a token from the new secret keeps its socket", async () => {
    const { key, info } = await issueApiKey(s.db.sql, { address: ALICE });
    const before = await connect(await minted(key));
    const rotated = await rotateApiKeySecret(s.db.sql, info.keyId);
    expect(rotated).not.toBeNull();
    const after = await connect(await minted(rotated!.key));
    try {
      await until(() => before.closeEvent !== null, "the socket of the old secret closed", WITHIN_MS);
      expect(before.closeEvent!.code).toBe(4001);
      expect(before.closeEvent!.reason).toBe("api key revoked");
      expect(after.ws.readyState).toBe(WebSocket.OPEN);
    } finally {
      await closeAll([before, after]);
    }
  });
});
