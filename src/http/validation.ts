// The one validation hook: zod failures become 400 {"error": <the first issue's message>}.
import { zValidator } from "@hono/zod-validator";
import type { ValidationTargets } from "hono";
import type { ZodType } from "zod";
import { ApiError } from "./errors.ts";

/** zValidator with our error shape. Schemas carry the client-facing text in their issue messages. */
export function validate<T extends ZodType, Target extends keyof ValidationTargets>(target: Target, schema: T) {
  return zValidator(target, schema, (result) => {
    if (!result.success) {
      const issue = result.error.issues[0];
      if (!issue || issue.path.length === 0) {
        throw new ApiError(400, target === "json" ? "request body must be a JSON object" : "invalid request");
      }
      throw new ApiError(400, issue.message);
    }
  });
}
