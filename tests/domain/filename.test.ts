// Attachment file names (docs/API.md §3) and the Content-Disposition they are served with.
import { describe, expect, test } from "bun:test";
import { contentDisposition, isValidFilename } from "../../src/domain/filename.ts";

describe("isValidFilename accepts", () => {
  const valid: string[][] = [
    ["a"],
    ["a.pdf"],
    ["report final.pdf"],
    ["my-file_v2.tar.gz"],
    ["A.B.C"],
    ["Résumé.docx"],
    ["日本語のファイル.txt"],
    ["файл.txt"],
    ["٣.txt"],
    ["𝒜.txt"],
    ["1"],
    ["a".repeat(255)],
    ["é".repeat(127) + "a"],
  ];
  test.each(valid)("%p", (name) => {
    expect(isValidFilename(name)).toBe(true);
  });
});

describe("isValidFilename refuses", () => {
  const invalid: Array<[string, string]> = [
    ["", "empty"],
    [".", "dot"],
    ["..", "dot-dot"],
    ["../x", "parent traversal"],
    ["a/../b", "traversal inside"],
    ["a/b", "slash"],
    ["a\\b", "backslash"],
    ["/etc/passwd", "absolute path"],
    ["C:x", "drive colon"],
    [".hidden", "leading dot"],
    ["x.", "trailing dot"],
    [" a", "leading space"],
    ["a ", "trailing space"],
    ["-a", "leading dash"],
    ["a_", "trailing underscore"],
    ["a..b", "doubled dot"],
    ["a  b", "doubled space"],
    ["a .b", "space then dot"],
    ["a-_b", "dash then underscore"],
    ["a\u0000b", "NUL"],
    ["a\nb", "newline"],
    ["a\tb", "tab"],
    ["a\u007Fb", "DEL"],
    ["a\u00A0b", "no-break space"],
    ["a\u3000b", "ideographic space"],
    ["a\u200Bb", "zero-width space"],
    ["evil\u202Etxt.exe", "bidi override"],
    ["e\u0301.txt", "combining mark"],
    ["😀.txt", "emoji"],
    ["a\uD800b", "lone surrogate"],
    ['a"b', "double quote"],
    ["a'b", "single quote"],
    ["a:b", "colon"],
    ["a*b", "asterisk"],
    ["a?b", "question mark"],
    ["a<b>", "angle brackets"],
    ["a|b", "pipe"],
    ["a%2Fb", "percent"],
    ["a+b", "plus"],
    ["a".repeat(256), "256 bytes"],
    ["é".repeat(128), "256 bytes of two-byte chars"],
    ["用".repeat(86), "258 bytes of three-byte chars"],
    ["a".repeat(100_000), "very long"],
  ];
  test.each(invalid)("%p (%s)", (name) => {
    expect(isValidFilename(name)).toBe(false);
  });

  const nonStrings: unknown[][] = [[undefined], [null], [7], [{}], [["a.txt"]]];
  test.each(nonStrings)("non-string %p", (value) => {
    expect(isValidFilename(value)).toBe(false);
  });

  test("255 bytes is the maximum, counted in UTF-8", () => {
    expect(isValidFilename("用".repeat(85))).toBe(true); // 255 bytes
    expect(isValidFilename("用".repeat(85) + "a")).toBe(false); // 256 bytes
  });
});

describe("contentDisposition", () => {
  const table: Array<[string, string]> = [
    ["a.pdf", 'attachment; filename="a.pdf"'],
    ["report final.pdf", 'attachment; filename="report final.pdf"'],
    ["Résumé.pdf", `attachment; filename="R_sum_.pdf"; filename*=UTF-8''R%C3%A9sum%C3%A9.pdf`],
    ["日本.txt", `attachment; filename="__.txt"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.txt`],
    ["𝒜.txt", `attachment; filename="_.txt"; filename*=UTF-8''%F0%9D%92%9C.txt`],
    ['a"b\\c', `attachment; filename="a_b_c"; filename*=UTF-8''a%22b%5Cc`],
    ["a\r\nb", `attachment; filename="a__b"; filename*=UTF-8''a%0D%0Ab`],
    ["it's (1)*.txt", `attachment; filename="it's (1)*.txt"`],
    ["ü it's (1)*", `attachment; filename="_ it's (1)*"; filename*=UTF-8''%C3%BC%20it%27s%20%281%29%2A`],
    ["a!#$&+-.^_`|~b", 'attachment; filename="a!#$&+-.^_`|~b"'],
  ];
  test.each(table)("%p", (name, header) => {
    expect(contentDisposition(name)).toBe(header);
  });

  test("the header value never contains a control character or a raw non-ASCII byte", () => {
    for (const name of ["a\u0000b", "é\u007F", "\u2028x", "a\uD800b"]) {
      expect(contentDisposition(name)).toMatch(/^[\x20-\x7E]+$/);
    }
  });
});
