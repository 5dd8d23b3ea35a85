// The one validation hook: a schema's first issue becomes the API's {"error": …} answer.
import type { z } from "zod";
import { ApiError } from "./errors.ts";

type Outcome = { success: true } | { success: false; error: z.ZodError; target?: string };

/**
 * The contract's schemas carry the client-facing text in their issue messages, and a status in
 * an issue's params where it is not 400 (an id too large to exist is 404). Used as OpenAPIHono's
 * defaultHook, so every route validates the same way.
 */
export function refuseInvalid(result: Outcome): void {
  if (result.success) return;
  const issue = result.error.issues[0];
  if (!issue) throw new ApiError(400, "invalid request");
  const status = issue.code === "custom" && issue.params?.status === 404 ? 404 : 400;
  throw new ApiError(status, issue.message);
}
