// The `Link: <…>; rel="next"` header (RFC 8288) of keyset-paged lists, and its OpenAPI description.

/** For a 200 answer's `headers` in the OpenAPI document. */
export const NEXT_LINK_HEADERS = {
  Link: {
    description:
      'Present exactly when a further page exists: `<path?query>; rel="next"`, this request\'s path and query with `before_id` set to the last id of this page and `offset` dropped. Root-relative: resolve it against the URL you called.',
    schema: { type: "string" as const },
  },
};

/**
 * The next page's link: the same path and query, `before_id` = the last id shown, `offset` dropped
 * (the keyset replaces it). Root-relative, not absolute: behind a proxy that terminates TLS or
 * rewrites Host, the URL this server sees names the internal host and scheme; a root-relative
 * reference resolves against the URL the client actually called (RFC 3986 §5).
 */
export function nextLink(requestUrl: string, beforeId: number): string {
  const url = new URL(requestUrl);
  const query = new URLSearchParams(url.search);
  query.delete("offset");
  query.set("before_id", String(beforeId));
  return `<${url.pathname}?${query.toString()}>; rel="next"`;
}
