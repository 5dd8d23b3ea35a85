// The program's version: package.json's, so the binary, the logs and the docs agree.
import pkg from "../package.json" with { type: "json" };

export const VERSION: string = pkg.version;
