// deploy/deploy.sh: --dry-run without a cluster or kubectl, the order of its steps, the
// Langfuse step failing with a warning only, the operator step, a CRD that deploy.sh did not
// install left alone, and one-line errors. A fake kubectl on PATH records each call (and the
// kinds it was fed on stdin), answers `get crd` with a given object, and fails on request.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { customSchemas, k8sDir, parseYaml, readYaml, root, sh, validateManifest } from './lib.mjs';

const script = join(root, 'deploy/deploy.sh');
const tmp = mkdtempSync(join(tmpdir(), 'deploy-script-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

// FAKE_FAIL: a substring of the logged line (arguments, then "<- KINDS" fed on stdin) that
// makes the call fail; FAKE_SECRET_EXISTS=1: `kubectl get secret` finds the Secret;
// FAKE_CRD_JSON: what `kubectl get crd` finds (unset: none; --ignore-not-found then prints
// nothing and exits 0, as kubectl does).
const bin = join(tmp, 'bin');
mkdirSync(bin);
writeFileSync(join(bin, 'kubectl'), `#!/usr/bin/env bash
line="$*"
if [[ " $* " == *" -f - "* ]]; then line+=" <- $(grep -o '^kind: .*' | sed 's/kind: //' | paste -sd,)"; fi
echo "$line" >>"$FAKE_LOG"
if [ -n "\${FAKE_FAIL:-}" ] && [[ "$line" == *"$FAKE_FAIL"* ]]; then echo "error: fake failure of $1" >&2; exit 1; fi
if [ "$1 $2" = "get crd" ]; then
  if [ -n "\${FAKE_CRD_JSON:-}" ]; then printf '%s\\n' "$FAKE_CRD_JSON"; exit 0; fi
  [[ " $* " == *" --ignore-not-found "* ]] && exit 0
  echo "Error from server (NotFound): customresourcedefinitions.apiextensions.k8s.io \\"$3\\" not found" >&2; exit 1
fi
if [ "$1" = get ]; then
  [ "\${FAKE_SECRET_EXISTS:-}" = 1 ] || { echo 'Error from server (NotFound): secrets "langfuse-keys" not found' >&2; exit 1; }
fi
exit 0
`);
chmodSync(join(bin, 'kubectl'), 0o755);

let runs = 0;
function deploy(args, env = {}, path = `${bin}:${process.env.PATH}`) {
  const log = join(tmp, `calls-${++runs}.log`);
  writeFileSync(log, '');
  const r = spawnSync('bash', [script, ...args], { env: { PATH: path, FAKE_LOG: log, ...env }, encoding: 'utf8' });
  return { ...r, calls: readFileSync(log, 'utf8').split('\n').filter(Boolean) };
}

const image = 'registry.example/ccrunner:0.2.0';
const crd = join(k8sDir, 'crd-agenticsession.yaml');
const cfg = join(k8sDir, 'langfuse-config.yaml');
const crdName = 'agenticsessions.vteam.ambient-code';
const lookup = `get crd ${crdName} --ignore-not-found -o json`;
// Every call of a first run in team-a, in order.
const fullRun = [
  lookup,
  'apply -f - <- Namespace',
  `apply -f ${crd}`,
  'apply -n team-a -f - <- ServiceAccount,ServiceAccount,Role,RoleBinding',
  `apply -n team-a -f ${cfg} -l app.kubernetes.io/component=langfuse-config`,
  'get secret langfuse-keys -n team-a',
  `create --save-config -n team-a -f ${cfg} -l app.kubernetes.io/component=langfuse-keys`,
  'apply -n team-a -f - <- Deployment',
];

// An AgenticSession CRD as `kubectl get crd -o json` prints it (keys sorted, 4-space indent),
// with these labels. Its last-applied annotation claims to be ours, as a CRD that was once
// ours and was then taken over would, and its schema has a "labels" object of its own: only
// metadata.labels may count.
function crdJson(labels) {
  const [ours] = structuredClone(readYaml(crd));
  ours.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.labels =
    { type: 'object', additionalProperties: { type: 'string' } };
  const lastApplied = JSON.stringify({ ...ours, metadata: { name: crdName, labels: { 'app.kubernetes.io/part-of': 'ccrunner' } } });
  const metadata = {
    annotations: { 'kubectl.kubernetes.io/last-applied-configuration': `${lastApplied}\n` },
    creationTimestamp: '2025-01-01T00:00:00Z',
    generation: 1,
    ...(labels ? { labels } : {}),
    managedFields: [{ fieldsV1: { 'f:metadata': { 'f:labels': { '.': {}, 'f:app.kubernetes.io/part-of': {} } } } }],
    name: crdName,
  };
  return JSON.stringify({ apiVersion: ours.apiVersion, kind: ours.kind, metadata, spec: ours.spec }, null, 4);
}

test('--dry-run prints every manifest, in order, valid, and calls no kubectl', async () => {
  const r = deploy(['--dry-run', '--namespace', 'team-a', '--image', image]);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.calls, []);
  const docs = parseYaml(r.stdout, 'deploy.sh --dry-run');
  const schemas = customSchemas();
  for (const d of docs) await validateManifest(d, schemas, `dry-run ${d.kind}`);
  assert.deepEqual(docs.map((d) => d.kind),
    ['Namespace', 'CustomResourceDefinition', 'ServiceAccount', 'ServiceAccount', 'Role', 'RoleBinding', 'ConfigMap', 'Secret', 'Deployment']);
  assert.equal(docs[0].metadata.name, 'team-a');
  assert.equal(docs.find((d) => d.kind === 'RoleBinding').subjects[0].namespace, 'team-a');
  for (const placeholder of ['${NAMESPACE}', '${IMAGE}']) assert.ok(!r.stdout.includes(placeholder), `${placeholder} was left`);
  // The operator runs the given image and starts the Jobs with it.
  const operator = docs.find((d) => d.kind === 'Deployment').spec.template.spec.containers[0];
  assert.equal(operator.image, image);
  assert.equal(operator.env.find((e) => e.name === 'RUNNER_IMAGE').value, image);
  // No backend and the runner's permission mode unless given.
  for (const name of ['WEBSOCKET_URL', 'PERMISSION_MODE'])
    assert.equal(operator.env.find((e) => e.name === name).value, '', name);
  for (const placeholder of ['${WEBSOCKET_URL}', '${PERMISSION_MODE}']) assert.ok(!r.stdout.includes(placeholder), `${placeholder} was left`);
  // Every object of the applied files, as in the files.
  const names = (list) => list.map((d) => `${d.kind}/${d.metadata.name}`);
  for (const f of ['crd-agenticsession.yaml', 'rbac.yaml', 'langfuse-config.yaml', 'operator.yaml'])
    for (const n of names(readYaml(join(k8sDir, f)))) assert.ok(names(docs).includes(n), `${n} of ${f}`);
  assert.deepEqual(docs.find((d) => d.kind === 'ConfigMap'), readYaml(join(k8sDir, 'langfuse-config.yaml'))[0]);
  // Each step has its header, numbered in order; the CRD's says it is applied only if ours.
  assert.deepEqual([...r.stdout.matchAll(/^# deploy\.sh step (\d)\/5/gm)].map((m) => m[1]), ['1', '2', '3', '4', '5']);
  assert.match(r.stdout, /^# kubectl get crd agenticsessions\.vteam\.ambient-code, then .*only if the cluster has none or ours/m);

  // Without the CRD and the operator: their steps say so, and hold no manifest.
  const bare = deploy(['--dry-run', '--namespace', 'team-a', '--no-operator', '--use-existing-crd']);
  assert.equal(bare.status, 0, bare.stderr);
  assert.deepEqual(parseYaml(bare.stdout, 'dry-run').map((d) => d.kind),
    ['Namespace', 'ServiceAccount', 'ServiceAccount', 'Role', 'RoleBinding', 'ConfigMap', 'Secret']);
  assert.match(bare.stdout, /^# deploy\.sh step 2\/5: AgenticSession CRD\n# not applied \(--use-existing-crd\)/m);
  assert.match(bare.stdout, /^# deploy\.sh step 5\/5: operator\n# not installed \(--no-operator\): AgenticSessions in team-a do not run/m);
});

test('--websocket-url and --permission-mode reach the operator as they were given', async () => {
  const url = 'wss://backend.example/api/projects/{namespace}/sessions/{name}/ws?via=a&b=c';
  const r = deploy(['--dry-run', '--namespace', 'team-a', '--image', image, '--websocket-url', url, '--permission-mode', 'plan']);
  assert.equal(r.status, 0, r.stderr);
  const deployment = parseYaml(r.stdout, 'dry-run').find((d) => d.kind === 'Deployment');
  await validateManifest(deployment, customSchemas(), 'dry-run Deployment');
  const env = deployment.spec.template.spec.containers[0].env;
  assert.equal(env.find((e) => e.name === 'WEBSOCKET_URL').value, url);
  assert.equal(env.find((e) => e.name === 'PERMISSION_MODE').value, 'plan');
});

test('looks up the CRD, applies namespace, CRD, RBAC, Langfuse, the operator; a re-run keeps the keys', () => {
  const first = deploy(['--namespace', 'team-a', '--image', image]);
  assert.equal(first.status, 0, first.stderr);
  assert.deepEqual(first.calls, fullRun);
  assert.doesNotMatch(first.stderr, /warning/);
  assert.match(first.stderr, /^deploy: \[5\/5\] operator \(registry\.example\/ccrunner:0\.2\.0\)$/m);
  // Second run: the CRD is ours now and the Secret exists (its keys may be filled), so the
  // CRD is applied again and the Secret is left alone.
  const again = deploy(['--namespace', 'team-a', `--image=${image}`],
    { FAKE_SECRET_EXISTS: '1', FAKE_CRD_JSON: crdJson({ 'app.kubernetes.io/part-of': 'ccrunner' }) });
  assert.equal(again.status, 0, again.stderr);
  assert.deepEqual(again.calls, fullRun.filter((c) => !c.startsWith('create')));
});

test('a CRD that deploy.sh did not install stops it, in one line, before anything is applied', () => {
  const cases = [
    [{ 'app.kubernetes.io/managed-by': 'Helm', 'app.kubernetes.io/part-of': 'vteam' },
      'labels: app.kubernetes.io/managed-by=Helm, app.kubernetes.io/part-of=vteam'],
    [undefined, 'labels: none'],
    // Only "ccrunner" itself is ours, not a value that contains it.
    [{ 'app.kubernetes.io/part-of': 'ccrunner-fork' }, 'labels: app.kubernetes.io/part-of=ccrunner-fork'],
  ];
  for (const [labels, shown] of cases) {
    const r = deploy(['--namespace', 'team-a', '--image', image], { FAKE_CRD_JSON: crdJson(labels) });
    assert.equal(r.status, 1, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /^deploy: error: the cluster has a CRD agenticsessions\.vteam\.ambient-code that deploy\.sh did not install \(/);
    assert.ok(r.stderr.includes(`(${shown}; probably the ambient-code platform's)`), r.stderr);
    assert.match(r.stderr, /rerun with --use-existing-crd/);
    assert.deepEqual(r.calls, [lookup]);
  }
  // Compact JSON is read the same.
  const compact = JSON.stringify(JSON.parse(crdJson({ 'app.kubernetes.io/part-of': 'vteam' })));
  const r = deploy(['--image', image], { FAKE_CRD_JSON: compact });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /\(labels: app\.kubernetes\.io\/part-of=vteam;/);
});

test('--use-existing-crd leaves the cluster\'s CRD alone and applies the rest', () => {
  const foreign = crdJson({ 'app.kubernetes.io/part-of': 'vteam' });
  const r = deploy(['--namespace', 'team-a', '--image', image, '--use-existing-crd'], { FAKE_CRD_JSON: foreign });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.calls, fullRun.filter((c) => c !== `apply -f ${crd}`));
  assert.match(r.stderr, /^deploy: \[2\/5\] AgenticSession CRD: the cluster's own, left as it is \(--use-existing-crd\)$/m);
  // With no CRD to use, it stops before applying anything.
  const none = deploy(['--image', image, '--use-existing-crd']);
  assert.equal(none.status, 1);
  assert.match(none.stderr.trim(), /^deploy: error: --use-existing-crd, but the cluster has no CRD agenticsessions\.vteam\.ambient-code; run without it to install ours$/);
  assert.deepEqual(none.calls, [lookup]);
});

test('--no-operator installs the rest and says sessions will not run', () => {
  const r = deploy(['--namespace', 'team-a', '--no-operator']);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.calls, fullRun.slice(0, -1));
  assert.match(r.stderr, /^deploy: \[5\/5\] operator: not installed \(--no-operator\); AgenticSessions in team-a do not run until an operator is$/m);
});

test('a failed Langfuse step is a warning, not a failure', () => {
  for (const fail of ['component=langfuse-config', 'component=langfuse-keys']) {
    const r = deploy(['--image', image], { FAKE_FAIL: fail });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /^deploy: warning: the Langfuse configuration was not applied in ccrunner; sessions run untraced/m);
    // The operator is still installed after it.
    assert.equal(r.calls.filter((c) => c.startsWith('apply')).length, 5, r.calls.join('\n'));
    assert.equal(r.calls.at(-1), 'apply -n ccrunner -f - <- Deployment');
  }
});

test('a failed CRD lookup, CRD step or operator step fails, and nothing after it runs', () => {
  for (const [fail, message, calls] of [
    ['get crd', /^deploy: error: could not look up the CRD agenticsessions\.vteam\.ambient-code/m, 1],
    ['crd-agenticsession', /^deploy: error: could not apply the AgenticSession CRD/m, 3],
    ['<- Deployment', /^deploy: error: could not apply deploy\/k8s\/operator\.yaml in ccrunner$/m, 8],
  ]) {
    const r = deploy(['--image', image], { FAKE_FAIL: fail });
    assert.equal(r.status, 1, `${fail}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.equal(r.calls.length, calls, r.calls.join('\n'));
  }
});

test('bad arguments and a missing kubectl: one line, exit 2, nothing applied', () => {
  // A PATH with what deploy.sh needs, and no kubectl.
  const bare = join(tmp, 'bare');
  mkdirSync(bare);
  for (const tool of ['bash', 'dirname', 'cat', 'sed']) symlinkSync(sh('bash', ['-c', `command -v ${tool}`]).trim(), join(bare, tool));
  const cases = [
    [['--bogus'], /^deploy: error: unknown argument '--bogus'; see deploy\.sh --help$/],
    [['--namespace'], /^deploy: error: --namespace needs a value$/],
    [['--namespace', 'Team_A', '--image', image], /^deploy: error: namespace 'Team_A' is invalid/],
    [[], /^deploy: error: --image IMAGE is required: the runner image, which the operator runs from \(or --no-operator to install none\)$/],
    [['--dry-run'], /^deploy: error: --image IMAGE is required/],
    [['--image'], /^deploy: error: --image needs a value$/],
    // Nothing that could break out of the manifest's YAML string; the error stays one line.
    [['--image', 'reg.example/x:1"\n  evil: x'], /^deploy: error: image 'reg\.example\/x:1"\? {2}evil: x' is invalid/],
    [['--image', 'reg.example/x:1 x'], /^deploy: error: image 'reg\.example\/x:1 x' is invalid: expected REGISTRY\/NAME:TAG/],
    [['--image', image, '--no-operator'], /^deploy: error: --image and --no-operator exclude each other/],
    [['--image', image, '--websocket-url', 'http://backend/ws'], /^deploy: error: --websocket-url 'http:\/\/backend\/ws' is invalid: expected ws:\/\/HOST\/PATH/],
    [['--image', image, '--websocket-url', 'ws://b/"\n  evil: x'], /^deploy: error: --websocket-url 'ws:\/\/b\/"\? {2}evil: x' is invalid/],
    [['--image', image, '--permission-mode', 'yolo'], /^deploy: error: --permission-mode 'yolo' is invalid: use default, acceptEdits/],
    [['--no-operator', '--websocket-url', 'ws://b/x'], /^deploy: error: --websocket-url and --permission-mode are the operator's/],
  ];
  for (const [args, message] of cases) {
    const r = deploy(args);
    assert.equal(r.status, 2, args.join(' '));
    assert.match(r.stderr.trim(), message);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    assert.deepEqual(r.calls, []);
  }
  const none = deploy(['--image', image], {}, bare);
  assert.equal(none.status, 2);
  assert.match(none.stderr.trim(), /^deploy: error: kubectl not found; install it, or use --dry-run/);
  const dry = deploy(['--dry-run', '--image', image], {}, bare);
  assert.equal(dry.status, 0, dry.stderr);
  const help = deploy(['--help']);
  assert.equal(help.status, 0);
  for (const flag of ['--dry-run', '--image IMAGE', '--no-operator', '--use-existing-crd', '--websocket-url URL', '--permission-mode MODE']) assert.ok(help.stdout.includes(flag), flag);
});
