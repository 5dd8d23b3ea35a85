// Refusals of the use cases in the domain's own terms; the HTTP layer maps each kind to a status.

/** Why a request was refused; its message is the stable, client-facing text. */
export type RefusalKind = "invalid" | "forbidden" | "not-found" | "conflict" | "too-large";

export class Refusal extends Error {
  constructor(
    readonly kind: RefusalKind,
    message: string,
  ) {
    super(message);
  }
}

export const invalid = (message: string) => new Refusal("invalid", message);
export const forbidden = (message: string) => new Refusal("forbidden", message);
export const notFound = (message: string) => new Refusal("not-found", message);
export const conflict = (message: string) => new Refusal("conflict", message);
export const tooLarge = (message: string) => new Refusal("too-large", message);
