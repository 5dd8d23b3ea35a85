// Media types: the RFC 6838 shape check, the extension table both ways, and what is safe to serve.
import { describe, expect, test } from "bun:test";
import {
  bodyExtension,
  downloadContentType,
  isValidMediaType,
  parseMediaType,
  typeFromFilename,
} from "../../src/domain/media-type.ts";

describe("isValidMediaType accepts", () => {
  const valid: string[][] = [
    ["text/plain"],
    ["TEXT/PLAIN"],
    ["text/plain;charset=UTF-8"],
    ["text/plain; charset=utf-8"],
    ["text/plain ; charset=utf-8"],
    ["text/plain; charset=\"utf-8\""],
    ["text/plain; charset=utf-8; format=flowed"],
    ['application/x-thing; note="a \\"quoted\\" value; with semicolon"'],
    ['text/plain; x=""'],
    ["image/svg+xml"],
    ["application/vnd.openxmlformats-officedocument.wordprocessingml.document"],
    ["video/H264"],
    ["application/x.y!z#a$b&c^d_e.f+g-h"],
    ["1/2"],
    [`${"a".repeat(127)}/${"b".repeat(127)}`],
    [`text/plain; p=${"v".repeat(255 - "text/plain; p=".length)}`],
  ];
  test.each(valid)("%p", (input) => {
    expect(isValidMediaType(input)).toBe(true);
  });
});

describe("isValidMediaType refuses", () => {
  const invalid: Array<[string, string]> = [
    ["", "empty"],
    ["text", "no subtype"],
    ["text/", "empty subtype"],
    ["/plain", "empty type"],
    ["text/plain/x", "two slashes"],
    [" text/plain", "leading space"],
    ["text/plain ", "trailing space"],
    ["text /plain", "space before slash"],
    ["text/ plain", "space after slash"],
    ["-text/plain", "type starting with a special"],
    ["text/.plain", "subtype starting with a special"],
    ["text/pl@in", "@ in subtype"],
    ["text/pl*in", "* is a token char but not a restricted-name char"],
    ["text/plain;", "dangling semicolon"],
    ["text/plain; ", "dangling semicolon and space"],
    ["text/plain;;charset=utf-8", "empty parameter"],
    ["text/plain; charset", "parameter without value"],
    ["text/plain; charset=", "empty value"],
    ["text/plain; =utf-8", "empty name"],
    ["text/plain; charset = utf-8", "spaces around ="],
    ["text/plain; charset=utf 8", "space in token value"],
    ['text/plain; charset="utf-8', "unterminated quoted string"],
    ['text/plain; x="a\\"', "escaped closing quote"],
    ["text/plain; charset=utf-8; CHARSET=latin1", "repeated parameter"],
    ["text/plain charset=utf-8", "missing semicolon"],
    ["text/plain\u0000", "NUL"],
    ["text/plain\r\nX-Evil: 1", "CRLF injection"],
    ["text/plain;\tcharset=utf-8", "tab"],
    ["text/plain; x=\"\u0007\"", "control char in quoted string"],
    ["text/plaïn", "non-ASCII"],
    ["text/plain; x=\"ü\"", "non-ASCII in quoted string"],
    [`${"a".repeat(128)}/b`, "128-char type"],
    [`a/${"b".repeat(128)}`, "128-char subtype"],
    [`text/plain; p=${"v".repeat(256 - "text/plain; p=".length)}`, "256 bytes"],
  ];
  test.each(invalid)("%p (%s)", (input) => {
    expect(isValidMediaType(input)).toBe(false);
  });

  const nonStrings: unknown[][] = [[undefined], [null], [1], [{}], [["text/plain"]]];
  test.each(nonStrings)("non-string %p", (value) => {
    expect(isValidMediaType(value)).toBe(false);
  });
});

describe("parseMediaType", () => {
  test("lower-cases the essence and parameter names, unquotes values", () => {
    expect(parseMediaType('Text/Plain; CharSet="UTF-8"; x="a\\"b"')).toEqual({
      essence: "text/plain",
      params: [
        ["charset", "UTF-8"],
        ["x", 'a"b'],
      ],
    });
  });
});

describe("bodyExtension", () => {
  const table: Array<[string, string]> = [
    ["text/plain", ".txt"],
    ["text/markdown", ".md"],
    ["text/html", ".html"],
    ["text/csv", ".csv"],
    ["application/json", ".json"],
    ["application/pdf", ".pdf"],
    ["application/zip", ".zip"],
    ["image/png", ".png"],
    ["image/jpeg", ".jpg"],
    ["image/gif", ".gif"],
    ["image/webp", ".webp"],
    ["image/svg+xml", ".svg"],
    ["audio/mpeg", ".mp3"],
    ["video/mp4", ".mp4"],
    ["audio/vnd.wave", ".wav"],
    ["application/octet-stream", ".bin"],
    ["TEXT/Plain; charset=utf-8", ".txt"],
    ["text/plain;charset=UTF-8", ".txt"],
    [" text/markdown ; variant=GFM", ".md"],
    ["application/x-unknown", ".bin"],
    ["", ".bin"],
    ["garbage", ".bin"],
    ["../../etc/passwd", ".bin"],
  ];
  test.each(table)("%p → %p", (type, extension) => {
    expect(bodyExtension(type)).toBe(extension);
  });

  test("every extension is a dot and lower-case alphanumerics (safe as a file name suffix)", () => {
    for (const type of ["text/plain", "image/svg+xml", "application/epub+zip", "x/y"]) {
      expect(bodyExtension(type)).toMatch(/^\.[a-z0-9]+$/);
    }
  });
});

describe("typeFromFilename", () => {
  const table: Array<[string, string]> = [
    ["notes.txt", "text/plain"],
    ["README.MD", "text/markdown"],
    ["page.htm", "text/html"],
    ["photo.JPEG", "image/jpeg"],
    ["photo.jpg", "image/jpeg"],
    ["drawing.svg", "image/svg+xml"],
    ["report.final.pdf", "application/pdf"],
    ["archive.tar.gz", "application/gzip"],
    ["song.mp3", "audio/mpeg"],
    ["clip.mp4", "video/mp4"],
    ["data.json", "application/json"],
    ["table.csv", "text/csv"],
    ["Makefile", "application/octet-stream"],
    ["file.unknownext", "application/octet-stream"],
    ["file.bin", "application/octet-stream"],
    ["", "application/octet-stream"],
    ["trailing.", "application/octet-stream"],
  ];
  test.each(table)("%p → %p", (name, type) => {
    expect(typeFromFilename(name)).toBe(type);
  });

  test("is the inverse of bodyExtension for the canonical types", () => {
    const types = [
      "text/plain", "text/markdown", "text/html", "text/csv", "application/json", "application/pdf",
      "application/zip", "image/png", "image/jpeg", "image/gif", "image/webp", "image/svg+xml",
      "audio/mpeg", "video/mp4", "video/webm", "audio/ogg", "application/octet-stream",
    ];
    for (const type of types) expect(typeFromFilename(`x${bodyExtension(type)}`)).toBe(type);
  });
});

describe("downloadContentType", () => {
  const table: Array<[string, string]> = [
    ["text/plain", "text/plain; charset=utf-8"],
    ["text/plain; charset=ISO-8859-1", "text/plain; charset=iso-8859-1"],
    ['text/plain; charset="UTF-16"', "text/plain; charset=utf-16"],
    ["TEXT/PLAIN;CHARSET=utf-8", "text/plain; charset=utf-8"],
    ["text/plain; format=flowed", "text/plain; charset=utf-8"],
    ['text/plain; charset="utf-8\\"; x=y"', "text/plain; charset=utf-8"],
    ['text/plain; charset="a b"', "text/plain; charset=utf-8"],
    ['text/plain; charset="-x"', "text/plain; charset=utf-8"],
    [`text/plain; charset=${"a".repeat(41)}`, "text/plain; charset=utf-8"],
    ["text/markdown", "text/markdown; charset=utf-8"],
    ["text/csv", "text/csv; charset=utf-8"],
    ["application/json", "application/json; charset=utf-8"],
    ["application/pdf", "application/pdf"],
    ["application/pdf; charset=utf-8", "application/pdf"],
    ["image/png", "image/png"],
    ["IMAGE/JPEG", "image/jpeg"],
    ["image/gif", "image/gif"],
    ["image/webp", "image/webp"],
    ["audio/mpeg", "audio/mpeg"],
    ["video/mp4", "video/mp4"],
    ["video/webm", "video/webm"],
    ["text/html", "application/octet-stream"],
    ["text/html; charset=utf-8", "application/octet-stream"],
    ["application/xhtml+xml", "application/octet-stream"],
    ["image/svg+xml", "application/octet-stream"],
    ["application/xml", "application/octet-stream"],
    ["text/xml", "application/octet-stream"],
    ["text/javascript", "application/octet-stream"],
    ["application/javascript", "application/octet-stream"],
    ["text/css", "application/octet-stream"],
    ["application/x-shockwave-flash", "application/octet-stream"],
    ["multipart/x-mixed-replace; boundary=x", "application/octet-stream"],
    ["application/octet-stream", "application/octet-stream"],
    ["x/unknown", "application/octet-stream"],
    ["", "application/octet-stream"],
    ["not a type", "application/octet-stream"],
    ["text/plain\r\nSet-Cookie: a=b", "application/octet-stream"],
  ];
  test.each(table)("%p → %p", (type, served) => {
    expect(downloadContentType(type)).toBe(served);
  });
});
