// Validates AsyncAPI documents with the official parser (@asyncapi/parser), which runs the
// AsyncAPI JSON Schema and the spec's Spectral rules. Usage: node validate.mjs FILE...
// Exits 1 when a file has a diagnostic of severity error (each one printed), 2 on bad usage.
// Warnings and hints are printed but do not fail the run.
import { resolve } from 'node:path';
import { DiagnosticSeverity, Parser, fromFile } from '@asyncapi/parser';

const SEVERITY = {
  [DiagnosticSeverity.Error]: 'error',
  [DiagnosticSeverity.Warning]: 'warning',
  [DiagnosticSeverity.Information]: 'info',
  [DiagnosticSeverity.Hint]: 'hint',
};

function describe(file, diagnostic) {
  const { start } = diagnostic.range ?? { start: { line: 0, character: 0 } };
  const where = `${file}:${start.line + 1}:${start.character + 1}`;
  const path = (diagnostic.path ?? []).join('.');
  const severity = SEVERITY[diagnostic.severity] ?? String(diagnostic.severity);
  return `${where} ${severity} ${diagnostic.code}: ${diagnostic.message}${path ? ` (at ${path})` : ''}`;
}

async function validate(file) {
  const parser = new Parser();
  const { document, diagnostics } = await fromFile(parser, resolve(file)).parse();
  const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
  for (const diagnostic of diagnostics) {
    const line = describe(file, diagnostic);
    if (diagnostic.severity === DiagnosticSeverity.Error) console.error(line);
    else console.log(line);
  }
  if (errors.length > 0 || document === undefined) {
    console.error(`${file}: invalid AsyncAPI document (${errors.length} error(s))`);
    return false;
  }
  console.log(`${file}: valid AsyncAPI ${document.version()} document`);
  return true;
}

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: node validate.mjs FILE...');
  process.exit(2);
}
let ok = true;
for (const file of files) {
  try {
    ok = (await validate(file)) && ok;
  } catch (error) {
    console.error(`${file}: ${error.message}`);
    ok = false;
  }
}
process.exit(ok ? 0 : 1);
