// Parse an AsyncAPI document with the reference parser (@asyncapi/parser) and print its
// diagnostics as JSON, one object per problem: {severity, code, message, path}. Severity 0 is
// an error (the document is invalid), 1 a warning, 2 information, 3 a hint.
// Usage: node tests/tools/check_asyncapi.mjs <document.json>
import { readFile } from "node:fs/promises";
import { Parser } from "@asyncapi/parser";

const text = await readFile(process.argv[2], "utf8");
const { document, diagnostics } = await new Parser().parse(text);
const found = diagnostics.map((d) => ({
  severity: d.severity,
  code: String(d.code),
  message: d.message,
  path: d.path.join("/"),
}));
process.stdout.write(JSON.stringify({ parsed: document !== undefined, diagnostics: found }));
