// SQL files imported `with { type: "text" }` (Bun embeds them in the compiled binary) are strings.
declare module "*.sql" {
  const text: string;
  export default text;
}
