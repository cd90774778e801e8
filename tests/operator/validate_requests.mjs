// Validates what ccoperator sent to the API stand-in: every Job it created against
// Kubernetes' schema (kubernetes-models), every AgenticSession it wrote (status updates)
// against the CRD's schema, strictly (an undeclared field is an error here, where a real
// API server would drop it silently). Usage: node validate_requests.mjs SENT.json, where
// SENT.json is the list of requests ({method, path, body}) from the stand-in's
// /_test/requests. Exit 0 when all are valid; else each problem on stderr, exit 1.
import { readFileSync } from 'node:fs';
import { customSchemas, validateManifest } from '../deploy/lib.mjs';

const sent = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const schemas = customSchemas();
let bad = 0;
let checked = 0;
for (const r of sent) {
  const body = typeof r.body === 'string' ? JSON.parse(r.body) : r.body;
  if (!body || typeof body !== 'object' || !body.kind) continue;
  try {
    await validateManifest(body, schemas, `${r.method} ${r.path}`);
    checked++;
  } catch (e) {
    bad++;
    console.error(`${r.method} ${r.path}: ${e.message}`);
  }
}
if (!checked) {
  console.error('no object sent by the operator was found to validate');
  process.exit(1);
}
console.log(`${checked} objects valid`);
process.exit(bad ? 1 : 0);
