// deploy/deploy.sh: --dry-run without a cluster or kubectl, the order of its steps, the
// Langfuse step failing with a warning only, and one-line errors. A fake kubectl on PATH
// records each call (and the kinds it was fed on stdin) and fails on request.
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

// FAKE_FAIL: a substring of the arguments that makes the call fail; FAKE_SECRET_EXISTS=1:
// `kubectl get secret` finds the Secret.
const bin = join(tmp, 'bin');
mkdirSync(bin);
writeFileSync(join(bin, 'kubectl'), `#!/usr/bin/env bash
line="$*"
if [[ " $* " == *" -f - "* ]]; then line+=" <- $(grep -o '^kind: .*' | sed 's/kind: //' | paste -sd,)"; fi
echo "$line" >>"$FAKE_LOG"
if [ -n "\${FAKE_FAIL:-}" ] && [[ "$*" == *"$FAKE_FAIL"* ]]; then echo "error: fake failure of $1" >&2; exit 1; fi
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

test('--dry-run prints every manifest, in order, valid, and calls no kubectl', async () => {
  const r = deploy(['--dry-run', '--namespace', 'team-a']);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.calls, []);
  const docs = parseYaml(r.stdout, 'deploy.sh --dry-run');
  const schemas = customSchemas();
  for (const d of docs) await validateManifest(d, schemas, `dry-run ${d.kind}`);
  assert.deepEqual(docs.map((d) => d.kind),
    ['Namespace', 'CustomResourceDefinition', 'ServiceAccount', 'ServiceAccount', 'Role', 'RoleBinding', 'ConfigMap', 'Secret']);
  assert.equal(docs[0].metadata.name, 'team-a');
  assert.equal(docs.find((d) => d.kind === 'RoleBinding').subjects[0].namespace, 'team-a');
  assert.ok(!r.stdout.includes('${NAMESPACE}'), 'a placeholder was left');
  // Every object of the applied files, as in the files.
  const names = (list) => list.map((d) => `${d.kind}/${d.metadata.name}`);
  for (const f of ['crd-agenticsession.yaml', 'rbac.yaml', 'langfuse-config.yaml'])
    for (const n of names(readYaml(join(k8sDir, f)))) assert.ok(names(docs).includes(n), `${n} of ${f}`);
  assert.deepEqual(docs.find((d) => d.kind === 'ConfigMap'), readYaml(join(k8sDir, 'langfuse-config.yaml'))[0]);
  // Each step has its header, numbered in order.
  assert.deepEqual([...r.stdout.matchAll(/^# deploy\.sh step (\d)\/4/gm)].map((m) => m[1]), ['1', '2', '3', '4']);
});

test('applies namespace, CRD, RBAC, then the Langfuse configuration; a re-run keeps the keys', () => {
  const first = deploy(['--namespace', 'team-a']);
  assert.equal(first.status, 0, first.stderr);
  const crd = join(k8sDir, 'crd-agenticsession.yaml');
  const cfg = join(k8sDir, 'langfuse-config.yaml');
  assert.deepEqual(first.calls, [
    'apply -f - <- Namespace',
    `apply -f ${crd}`,
    'apply -n team-a -f - <- ServiceAccount,ServiceAccount,Role,RoleBinding',
    `apply -n team-a -f ${cfg} -l app.kubernetes.io/component=langfuse-config`,
    'get secret langfuse-keys -n team-a',
    `create --save-config -n team-a -f ${cfg} -l app.kubernetes.io/component=langfuse-keys`,
  ]);
  assert.doesNotMatch(first.stderr, /warning/);
  // Second run: the Secret exists (its keys may be filled), so it is left alone.
  const again = deploy(['--namespace', 'team-a'], { FAKE_SECRET_EXISTS: '1' });
  assert.equal(again.status, 0, again.stderr);
  assert.deepEqual(again.calls, first.calls.slice(0, 5));
});

test('a failed Langfuse step is a warning, not a failure', () => {
  for (const fail of ['component=langfuse-config', 'component=langfuse-keys']) {
    const r = deploy([], { FAKE_FAIL: fail });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /^deploy: warning: the Langfuse configuration was not applied in ccrunner; sessions run untraced/m);
    assert.equal(r.calls.filter((c) => c.startsWith('apply')).length, 4, r.calls.join('\n'));
  }
});

test('a failed CRD step fails, and nothing after it runs', () => {
  const r = deploy([], { FAKE_FAIL: 'crd-agenticsession' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^deploy: error: could not apply the AgenticSession CRD/m);
  assert.equal(r.calls.length, 2);
});

test('bad arguments and a missing kubectl: one line, exit 2, nothing applied', () => {
  // A PATH with what deploy.sh needs, and no kubectl.
  const bare = join(tmp, 'bare');
  mkdirSync(bare);
  for (const tool of ['bash', 'dirname', 'cat', 'sed']) symlinkSync(sh('bash', ['-c', `command -v ${tool}`]).trim(), join(bare, tool));
  const cases = [
    [['--bogus'], /^deploy: error: unknown argument '--bogus'; see deploy\.sh --help$/],
    [['--namespace'], /^deploy: error: --namespace needs a value$/],
    [['--namespace', 'Team_A'], /^deploy: error: namespace 'Team_A' is invalid/],
  ];
  for (const [args, message] of cases) {
    const r = deploy(args);
    assert.equal(r.status, 2, args.join(' '));
    assert.match(r.stderr.trim(), message);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    assert.deepEqual(r.calls, []);
  }
  const none = deploy([], {}, bare);
  assert.equal(none.status, 2);
  assert.match(none.stderr.trim(), /^deploy: error: kubectl not found; install it, or use --dry-run/);
  const dry = deploy(['--dry-run'], {}, bare);
  assert.equal(dry.status, 0, dry.stderr);
  const help = deploy(['--help']);
  assert.equal(help.status, 0);
  assert.match(help.stdout, /--dry-run/);
});
