// Shared by the deploy tests: the repository's paths, YAML parsing as Kubernetes parses it,
// validation of any manifest against the Kubernetes API schemas (kubernetes-models, generated
// from Kubernetes' OpenAPI definitions) or, for custom resources, against the CRD's
// openAPIV3Schema (ajv), and rendering of the runner Job template.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ObjectMeta } from '@kubernetes-models/apimachinery/apis/meta/v1';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';
import { parseAllDocuments } from 'yaml';

export const root = fileURLToPath(new URL('../../', import.meta.url));
export const k8sDir = join(root, 'deploy/k8s');
export const templatePath = join(k8sDir, 'runner-job.template.yaml');

// Every YAML file under deploy/k8s, examples included.
export function manifestFiles(dir = k8sDir) {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? manifestFiles(join(dir, e.name)) : [join(dir, e.name)]))
    .filter((f) => /\.ya?ml$/.test(f))
    .sort();
}

// YAML 1.1 as Kubernetes reads it (so `yes` is a boolean); empty documents dropped.
export function parseYaml(text, source) {
  const docs = parseAllDocuments(text, { version: '1.1' });
  if (!Array.isArray(docs)) return [];
  return docs
    .filter((d) => d.errors.length || d.contents !== null)
    .map((d) => {
      if (d.errors.length) throw new Error(`${source}: ${d.errors[0].message}`);
      return d.toJS();
    });
}

export function readYaml(file) {
  return parseYaml(readFileSync(file, 'utf8'), file);
}

// Custom resource schemas from the CRDs in deploy/k8s, keyed "group/version/Kind". Kubernetes
// prunes unknown fields of a custom resource silently; here they are errors, so that a typo in
// an example or a test fixture is caught rather than dropped.
function strict(schema, isRoot) {
  if (schema === null || typeof schema !== 'object') return schema;
  const s = Array.isArray(schema) ? schema.map((x) => strict(x, false)) : { ...schema };
  if (Array.isArray(s)) return s;
  for (const k of ['items', 'additionalProperties']) if (s[k]) s[k] = strict(s[k], false);
  if (s.properties) {
    s.properties = Object.fromEntries(Object.entries(s.properties).map(([k, v]) => [k, strict(v, false)]));
    if (isRoot) s.properties = { apiVersion: { type: 'string' }, kind: { type: 'string' }, metadata: { type: 'object' }, ...s.properties };
    if (!s['x-kubernetes-preserve-unknown-fields'] && s.additionalProperties === undefined) s.additionalProperties = false;
  }
  return s;
}

export function customSchemas() {
  // strictRequired off: a structural schema states `anyOf: [{required: [a]}, {required: [b]}]`
  // without repeating the properties in each branch, as Kubernetes requires.
  const ajv = new Ajv({ allErrors: true, strict: true, strictRequired: false });
  addFormats(ajv);
  for (const k of ['x-kubernetes-preserve-unknown-fields', 'x-kubernetes-validations', 'x-kubernetes-int-or-string',
    'x-kubernetes-embedded-resource', 'x-kubernetes-list-type', 'x-kubernetes-list-map-keys', 'x-kubernetes-map-type'])
    ajv.addKeyword(k);
  const schemas = new Map();
  for (const file of manifestFiles())
    for (const doc of readYaml(file))
      if (doc?.kind === 'CustomResourceDefinition')
        for (const v of doc.spec.versions)
          schemas.set(`${doc.spec.group}/${v.name}/${doc.spec.names.kind}`, ajv.compile(strict(v.schema.openAPIV3Schema, true)));
  return schemas;
}

// Throws with the reasons when `doc` is not a valid object of its apiVersion and kind.
export async function validateManifest(doc, schemas, source = 'manifest') {
  if (!doc || typeof doc !== 'object') throw new Error(`${source}: not a Kubernetes object`);
  const { apiVersion, kind } = doc;
  if (typeof apiVersion !== 'string' || typeof kind !== 'string') throw new Error(`${source}: apiVersion and kind are required`);
  const custom = schemas.get(`${apiVersion}/${kind}`);
  if (custom) {
    if (!custom(doc)) throw new Error(`${source}: ${kind}: ${JSON.stringify(custom.errors)}`);
    if (!doc.metadata?.name) throw new Error(`${source}: metadata.name is required`);
    new ObjectMeta(doc.metadata).validate();
    return;
  }
  let mod;
  try {
    mod = await import(`kubernetes-models/${apiVersion}`);
  } catch {
    throw new Error(`${source}: unknown apiVersion ${apiVersion}`);
  }
  const Model = mod[kind];
  if (typeof Model !== 'function' || Model.kind !== kind) throw new Error(`${source}: unknown kind ${kind} in ${apiVersion}`);
  try {
    new Model(doc).validate();
  } catch (e) {
    throw new Error(`${source}: ${kind} ${doc.metadata?.name ?? ''}: ${e.message}`);
  }
}

// The sample session the Job template is rendered with.
export const sample = {
  SESSION_NAME: 'fix-failing-test',
  IMAGE: 'registry.example/ccrunner:0.1.0',
  INITIAL_PROMPT: 'Fix the failing test in tests/test_io.c',
  INTERACTIVE: 'false',
  TIMEOUT: '1800',
  LLM_MODEL: 'claude-sonnet-4-5',
  USER_ID: 'user-7',
  USER_NAME: 'Ada',
  WEBSOCKET_URL: 'ws://backend.example:8080/sessions/fix-failing-test/ws',
  SESSION_REPOS: 'https://github.com/example/project.git main',
};

// deploy/render-job.sh with exactly `vars` in its environment (plus PATH).
export function renderJob(vars) {
  return spawnSync('bash', [join(root, 'deploy/render-job.sh')], {
    env: { PATH: process.env.PATH, ...vars },
    encoding: 'utf8',
  });
}

export function renderedJob(vars = sample) {
  const r = renderJob(vars);
  if (r.status !== 0) throw new Error(`render-job.sh failed (${r.status}): ${r.stderr}`);
  const docs = parseYaml(r.stdout, 'rendered Job');
  if (docs.length !== 1) throw new Error(`render-job.sh printed ${docs.length} documents`);
  return docs[0];
}

// The environment variables ccrunner documents: every `NAME` in the README, which lists
// each option and variable of the contract (SPEC.md) with its meaning.
export function specEnvVars() {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  return new Set([...readme.matchAll(/`([A-Z][A-Z0-9_]{2,})`/g)].map((m) => m[1]));
}

export function sh(cmd, args, opts = {}) {
  return execFileSync(cmd, args, { encoding: 'utf8', ...opts });
}
