// GET /fmsg/ws: the WebSocket of the FMSG-003 standard — a frame for each new message, delivery and add-to as it is committed.
import { createRoute, OpenAPIHono } from "@hono/zod-openapi";
import { WebSocketQuery } from "../../contract/requests.ts";
import { upgradeToWebSocket } from "../../lib/bun.ts";
import type { InboxSockets } from "../../realtime/inbox-sockets.ts";
import type { MintedTokenCheck } from "../api-key-tokens.ts";
import type { AppEnv } from "../app-env.ts";
import { ApiError } from "../errors.ts";
import { answers, BEARER } from "../openapi.ts";
import { PROFILE_HEADER } from "../profile.ts";
import { tokenStanding } from "../token-standing.ts";
import { refuseInvalid } from "../validation.ts";

const openWebSocket = createRoute({
  operationId: "openWebSocket",
  method: "get",
  path: "/ws",
  tags: ["messages"],
  security: [{ [BEARER]: [] }],
  summary: "Open the WebSocket of inbox news",
  description:
    'Authenticated like every route (token in Authorization, or in access_token), before the upgrade. Then text frames `{"type": "new_msg" | "delivered" | "recipients_added", "data": <message object as in GET /fmsg, in the profile chosen when the socket opened>}`: new_msg when a message becomes visible to the identity as a recipient, recipients_added when a message it takes part in gets an add-to batch, delivered when its own message reaches a recipient. The server pings every 45 s; when the token expires the socket is closed with code 4001 ("token expired"); a socket opened with a token from POST /fmsg/token is closed with 4001 ("api key revoked") within 5 s of its API key being revoked, rotated or expiring; a client that lets about 1 MiB of frames pile up unread is closed with 4002 ("too slow: frames were not read"); at shutdown with 1001. The 101 answer carries `Fmsg-Profile`, the profile of the frames.',
  request: { query: WebSocketQuery },
  responses: answers(
    { 101: { description: "Switched to the WebSocket protocol." } },
    { 426: "Not a WebSocket handshake, or not version 13 (`websocket upgrade required`); carries `Upgrade: websocket` and `Sec-WebSocket-Version: 13`." },
  ),
});

/**
 * A request that is no WebSocket handshake this server speaks. Also for a missing key or a version
 * other than 13 (RFC 6455 4.2.2: the answer names the version it speaks), which Bun would otherwise
 * refuse itself with an empty 426.
 */
const notAHandshake = () => new ApiError(426, "websocket upgrade required", { Upgrade: "websocket", "Sec-WebSocket-Version": "13" });

function isHandshake(c: { req: { header(name: string): string | undefined } }): boolean {
  return (
    c.req.header("upgrade")?.toLowerCase() === "websocket" &&
    c.req.header("sec-websocket-version")?.trim() === "13" &&
    (c.req.header("sec-websocket-key")?.trim() ?? "") !== ""
  );
}

/** `mintedTokens` re-checks, while the socket is open, the API key behind a token from POST /fmsg/token. */
export function webSocketRoutes(sockets: InboxSockets, mintedTokens?: MintedTokenCheck) {
  return new OpenAPIHono<AppEnv>({ defaultHook: refuseInvalid }).openapi(openWebSocket, (c) => {
    if (!isHandshake(c)) throw notAHandshake();
    // The token passed the auth middleware; its exp bounds the socket's life (none: close at once).
    // The key sweep runs every KEY_SWEEP_MS and accepts key states that old: closed within 5 s.
    const { expiresAt, keyCheck } = tokenStanding(c, mintedTokens);
    const { identity: address, profile } = c.var;
    // Bun writes the 101 itself, past the middleware that names the profile on every other answer.
    const upgraded = upgradeToWebSocket(c, (peer) => sockets.add({ address, profile, expiresAt, keyCheck: keyCheck ?? undefined, peer }), { [PROFILE_HEADER]: profile });
    if (!upgraded) throw notAHandshake();
    c.set("switchedProtocols", true);
    return upgraded;
  });
}
