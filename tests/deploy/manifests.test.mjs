// deploy/k8s against the Kubernetes API schemas, and what the runner Job injects into
// ccrunner's environment. Run: node --test tests/deploy/manifests.test.mjs (after
// npm ci --prefix tests/deploy).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import {
  customSchemas, k8sDir, manifestFiles, parseYaml, readYaml, renderJob, renderedJob, root, sample,
  specEnvVars, templatePath, validateManifest,
} from './lib.mjs';

const schemas = customSchemas();
const byName = (list, name) => list.find((x) => x.name === name);
const runner = (job) => byName(job.spec.template.spec.containers, 'runner');
const operatorPath = join(k8sDir, 'operator.yaml');

// operator.yaml as deploy.sh applies it: the runner image in place of ${IMAGE}.
function operatorDeployment(image = sample.IMAGE) {
  const docs = parseYaml(readFileSync(operatorPath, 'utf8').replaceAll('${IMAGE}', image), operatorPath);
  assert.equal(docs.length, 1, 'operator.yaml holds one object');
  return docs[0];
}

// What ccoperator calls the API for (SPEC, "The operator"; src/operator/), "group/resource"
// to verbs: the ccrunner-operator Role must grant exactly this, no more and no less.
const operatorCalls = {
  'vteam.ambient-code/agenticsessions': ['get', 'list', 'watch'],
  'vteam.ambient-code/agenticsessions/status': ['get', 'update', 'patch'],
  'vteam.ambient-code/agenticsessions/finalizers': ['update'], // blockOwnerDeletion on its Jobs
  'batch/jobs': ['get', 'list', 'watch', 'create', 'delete'],
  '/pods': ['get', 'list', 'watch'],
};

// Kubernetes quantities, the subset the manifests use: "250m", "2", "512Mi", "2Gi".
function quantity(q) {
  const m = /^([0-9.]+)(m|Ki|Mi|Gi)?$/.exec(String(q));
  assert.ok(m, `unsupported quantity ${q}`);
  return Number(m[1]) * { m: 1e-3, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, undefined: 1 }[m[2]];
}

test('every manifest in deploy/k8s is valid for the Kubernetes API (the Job template once rendered)', async () => {
  const files = manifestFiles();
  for (const name of ['crd-agenticsession.yaml', 'langfuse-config.yaml', 'rbac.yaml', 'runner-job.template.yaml',
    'operator.yaml', 'examples/agenticsession.yaml'])
    assert.ok(files.includes(join(k8sDir, name)), `deploy/k8s/${name} is missing`);
  for (const file of files) {
    const docs = file === templatePath ? [renderedJob()] : file === operatorPath ? [operatorDeployment()] : readYaml(file);
    assert.ok(docs.length > 0, `${file} holds no manifest`);
    for (const doc of docs) await validateManifest(doc, schemas, file);
  }
});

test('the validator rejects broken manifests', async () => {
  const broken = [
    ['optional as a string', (j) => { runner(j).envFrom[0].secretRef.optional = 'true'; }],
    ['fieldRef without fieldPath', (j) => { runner(j).env[0].valueFrom.fieldRef = {}; }],
    ['grace period as a string', (j) => { j.spec.template.spec.terminationGracePeriodSeconds = '60'; }],
    ['unknown restartPolicy', (j) => { j.spec.template.spec.restartPolicy = 'Sometimes'; }],
    ['env value as a number', (j) => { byName(runner(j).env, 'TIMEOUT').value = 1800; }],
  ];
  for (const [what, breakIt] of broken) {
    const job = renderedJob();
    breakIt(job);
    await assert.rejects(validateManifest(job, schemas), `${what} was accepted`);
  }
  await assert.rejects(validateManifest({ apiVersion: 'v1', kind: 'Jobb', metadata: { name: 'x' } }, schemas), /unknown kind/);
  await assert.rejects(validateManifest({ apiVersion: 'example.com/v1', kind: 'Thing', metadata: { name: 'x' } }, schemas), /unknown apiVersion/);
  await assert.rejects(validateManifest({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' }, data: { A: 5 } }, schemas));
  // YAML 1.1 as Kubernetes reads it: an unquoted yes is a boolean, not a string.
  const [cm] = parseYaml('apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {LANGFUSE_ENABLED: yes}\n', 'inline');
  await assert.rejects(validateManifest(cm, schemas), /must be string/);
});

test('AgenticSessions are checked against the CRD schema', async () => {
  const [example] = readYaml(join(k8sDir, 'examples/agenticsession.yaml'));
  await validateManifest(example, schemas);
  const withStatus = structuredClone(example);
  withStatus.status = {
    phase: 'Completed', result: 'Fixed.', cost: 0.0123, numTurns: 3, turns: 3,
    traceId: 'af057338362333fe71852c59d99ae4b6', jobName: 'fix-it-job',
    usage: { input_tokens: 1200, output_tokens: 80, cache_read_input_tokens: 0, cache_creation_input_tokens: 10, service_tier: 'standard' },
  };
  await validateManifest(withStatus, schemas);
  const broken = [
    (s) => { s.spec.interactive = 'maybe'; },
    (s) => { s.spec.timeout = 0; },
    (s) => { s.spec.promtp = s.spec.prompt; },
    (s) => { s.spec.repos = [{ branch: 'main' }]; },
    (s) => { s.spec.llmSettings.model = 4; },
    (s) => { s.status = { phase: 'Done' }; },
    (s) => { s.status = { cost: 'cheap' }; },
    (s) => { s.status = { traceId: 'not-a-trace-id' }; },
    (s) => { s.status = { turns: -1 }; },
  ];
  for (const breakIt of broken) {
    const s = structuredClone(example);
    breakIt(s);
    await assert.rejects(validateManifest(s, schemas), `accepted ${JSON.stringify(s.spec)} ${JSON.stringify(s.status)}`);
  }
  const [crd] = readYaml(join(k8sDir, 'crd-agenticsession.yaml'));
  // The API server refuses a CRD whose name is not <plural>.<group>.
  assert.equal(crd.metadata.name, `${crd.spec.names.plural}.${crd.spec.group}`);
  assert.equal(`${crd.spec.group}/${crd.spec.versions[0].name}`, 'vteam.ambient-code/v1alpha1');
  const spec = crd.spec.versions[0].schema.openAPIV3Schema.properties;
  for (const f of ['prompt', 'interactive', 'timeout', 'repos', 'llmSettings']) assert.ok(spec.spec.properties[f], `spec.${f}`);
  assert.ok(spec.spec.properties.llmSettings.properties.model);
  // Every field the operator writes (SPEC, "The operator"): an API server drops the others.
  for (const f of ['phase', 'message', 'jobName', 'startTime', 'completionTime', 'result', 'cost',
    'usage', 'turns', 'traceId']) assert.ok(spec.status.properties[f], `status.${f}`);
});

test('the runner Job injects the contract\'s environment', () => {
  const job = renderedJob();
  const c = runner(job);
  const env = new Map(c.env.map((e) => [e.name, e]));
  assert.equal(env.size, c.env.length, 'an env name appears twice');
  const contract = specEnvVars();
  for (const name of env.keys()) assert.ok(contract.has(name), `${name} is not a variable ccrunner documents (README.md)`);

  for (const name of ['NAMESPACE', 'PROJECT_NAME'])
    assert.deepEqual(env.get(name).valueFrom, { fieldRef: { fieldPath: 'metadata.namespace' } }, name);
  const key = env.get('ANTHROPIC_API_KEY').valueFrom.secretKeyRef;
  assert.equal(key.key, 'ANTHROPIC_API_KEY');
  assert.equal(key.name, 'anthropic-api-key');
  assert.equal(env.get('BOT_TOKEN').valueFrom.secretKeyRef.key, 'BOT_TOKEN');
  // The session's variables carry the rendered values.
  const values = { SESSION_ID: sample.SESSION_NAME, INITIAL_PROMPT: sample.INITIAL_PROMPT, INTERACTIVE: 'false', TIMEOUT: '1800',
    LLM_MODEL: sample.LLM_MODEL, USER_ID: sample.USER_ID, USER_NAME: sample.USER_NAME, WEBSOCKET_URL: sample.WEBSOCKET_URL };
  for (const [name, value] of Object.entries(values)) assert.equal(env.get(name)?.value, value, name);
  // Langfuse keys come only from the Secret, never inline.
  for (const name of ['LANGFUSE_PUBLIC_KEY', 'LANGFUSE_SECRET_KEY']) assert.ok(!env.has(name), name);

  assert.deepEqual(c.envFrom, [
    { secretRef: { name: 'langfuse-keys', optional: true } },
    { configMapRef: { name: 'langfuse-config', optional: true } },
  ]);

  const pod = job.spec.template.spec;
  const flush = Number(env.get('LANGFUSE_FLUSH_TIMEOUT').value);
  assert.ok(flush > 0);
  // ccrunner's own stop after SIGTERM is bounded by ~25 s before the flush (src/runner/main.c:
  // 10 s for the interrupted turn, 10 s for Claude Code to exit, 5 s after its SIGTERM).
  assert.ok(pod.terminationGracePeriodSeconds > 25 + flush, `grace ${pod.terminationGracePeriodSeconds} s`);

  const mount = (path) => c.volumeMounts.find((m) => m.mountPath === path);
  for (const name of ['LANGFUSE_SPOOL_DIR', 'WORKSPACE_PATH']) {
    const m = mount(env.get(name).value);
    assert.ok(m, `nothing is mounted at ${name}`);
    assert.ok(pod.volumes.some((v) => v.name === m.name), `volume ${m.name}`);
  }

  assert.equal(pod.securityContext.runAsNonRoot, true);
  assert.ok(pod.securityContext.runAsUser > 0);
  assert.equal(c.securityContext.allowPrivilegeEscalation, false);
  assert.equal(pod.restartPolicy, 'Never');
  assert.equal(job.spec.backoffLimit, 0);

  // Measured: Claude Code 268 MiB peak RSS, ccrunner 4.5 MiB (README, "Benchmarks").
  const { requests, limits } = c.resources;
  assert.ok(quantity(requests.memory) >= (268 + 4.5) * 2 ** 20, `memory request ${requests.memory}`);
  assert.ok(quantity(limits.memory) >= quantity(requests.memory));
  assert.ok(quantity(limits.cpu) >= quantity(requests.cpu));

  // The Job runs as the runner ServiceAccount of rbac.yaml, which gets no API token.
  const sa = readYaml(join(k8sDir, 'rbac.yaml')).find((d) => d.kind === 'ServiceAccount' && d.metadata.name === pod.serviceAccountName);
  assert.ok(sa, `ServiceAccount ${pod.serviceAccountName} is not in rbac.yaml`);
  assert.equal(sa.automountServiceAccountToken, false);
});

test('the Job runs as the image\'s user', () => {
  const dockerfile = readFileSync(join(root, 'deploy/image/Dockerfile'), 'utf8');
  const user = [...dockerfile.matchAll(/^USER\s+(\d+)(?::(\d+))?\s*$/gm)].at(-1);
  assert.ok(user, 'the Dockerfile has no numeric USER');
  assert.equal(renderedJob().spec.template.spec.securityContext.runAsUser, Number(user[1]));
});

test('the Langfuse ConfigMap and Secret', () => {
  const docs = readYaml(join(k8sDir, 'langfuse-config.yaml'));
  const cm = docs.find((d) => d.kind === 'ConfigMap');
  const secret = docs.find((d) => d.kind === 'Secret');
  assert.equal(cm.metadata.name, 'langfuse-config');
  assert.equal(cm.data.LANGFUSE_ENABLED, 'true');
  assert.equal(cm.data.LANGFUSE_HOST, 'http://langfuse-web.langfuse.svc.cluster.local:3000');
  assert.equal(secret.metadata.name, 'langfuse-keys');
  assert.deepEqual(Object.keys(secret.stringData).sort(), ['LANGFUSE_PUBLIC_KEY', 'LANGFUSE_SECRET_KEY']);
  const contract = specEnvVars();
  for (const k of [...Object.keys(cm.data), ...Object.keys(secret.stringData)]) assert.ok(contract.has(k), k);
});

test('render-job.sh keeps every value one string, and refuses bad input in one line', () => {
  const tricky = 'Fix "this": {now}\n\t- $HOME ${IMAGE} `x` \\ done #not a comment\n---\nkind: Secret';
  const job = renderedJob({ ...sample, INITIAL_PROMPT: tricky, INTERACTIVE: 'true', TIMEOUT: '', LLM_MODEL: 'yes' });
  const env = new Map(runner(job).env.map((e) => [e.name, e.value]));
  assert.equal(env.get('INITIAL_PROMPT'), tricky);
  assert.equal(env.get('INTERACTIVE'), 'true');
  assert.equal(env.get('TIMEOUT'), '');
  assert.equal(env.get('LLM_MODEL'), 'yes');
  // The operator's name for a session's Job (SPEC, "The operator").
  assert.equal(job.metadata.name, `${sample.SESSION_NAME}-job`);
  assert.equal(byName(runner(renderedJob({ ...sample, IDLE_TIMEOUT: '900' })).env, 'IDLE_TIMEOUT').value, '900');
  // "<name>-job" fits a 63-character label with a name of 59; one more is refused.
  const longest = 'a'.repeat(59);
  assert.equal(renderedJob({ ...sample, SESSION_NAME: longest }).metadata.name, `${longest}-job`);

  for (const [vars, message] of [
    [{ ...sample, SESSION_NAME: 'Bad_Name' }, /SESSION_NAME=Bad_Name is invalid/],
    [{ ...sample, SESSION_NAME: 'a'.repeat(60) }, /SESSION_NAME=a{60} is invalid: use at most 59 /],
    [{ ...sample, SESSION_NAME: '' }, /SESSION_NAME is not set/],
    [{ ...sample, IMAGE: '' }, /IMAGE is not set/],
    [{ ...sample, INITIAL_PROMPT: 'a\u0007b' }, /INITIAL_PROMPT contains a control character/],
  ]) {
    const r = renderJob(vars);
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});

test('the clone-repos init container clones each listed repository into the workspace', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'deploy-clone-'));
  try {
    const git = (...args) => execFileSync('git', args, { cwd: tmp, encoding: 'utf8', stdio: 'pipe' });
    git('init', '-q', '-b', 'main', 'src');
    git('-C', 'src', '-c', 'user.name=t', '-c', 'user.email=t@example.com', 'commit', '-q', '--allow-empty', '-m', 'first');
    git('-C', 'src', 'branch', 'feature');
    git('clone', '-q', '--bare', 'src', 'lib.git');
    // One "URL [BRANCH]" a line; blank lines and a trailing slash are tolerated.
    const job = renderedJob({ ...sample, SESSION_REPOS: `file://${tmp}/src feature\n\nfile://${tmp}/lib.git/\n` });
    const init = byName(job.spec.template.spec.initContainers, 'clone-repos');
    const env = Object.fromEntries(init.env.map((e) => [e.name, e.value]));
    assert.equal(env.WORKSPACE_PATH, '/workspace');
    assert.ok(init.volumeMounts.some((m) => m.mountPath === env.WORKSPACE_PATH));
    execFileSync(init.command[0], [...init.command.slice(1), ...init.args], {
      env: { PATH: process.env.PATH, HOME: tmp, REPOS: env.REPOS, WORKSPACE_PATH: join(tmp, 'ws') },
      stdio: 'pipe',
    });
    assert.equal(git('-C', 'ws/src', 'rev-parse', '--abbrev-ref', 'HEAD').trim(), 'feature');
    assert.equal(git('-C', 'ws/lib', 'rev-parse', '--abbrev-ref', 'HEAD').trim(), 'main');
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('the operator Deployment runs ccoperator from the runner image, alone, unprivileged, probed', () => {
  const image = 'registry.example/ccrunner@sha256:' + 'ab'.repeat(32);
  const d = operatorDeployment(image);
  assert.equal(d.kind, 'Deployment');
  assert.equal(d.spec.replicas, 1);
  // Never two at once, not even during an upgrade.
  assert.equal(d.spec.strategy.type, 'Recreate');
  const labels = { 'app.kubernetes.io/name': 'ccoperator', 'app.kubernetes.io/part-of': 'ccrunner' };
  for (const [k, v] of Object.entries(labels)) {
    assert.equal(d.metadata.labels[k], v, k);
    assert.equal(d.spec.template.metadata.labels[k], v, k);
  }
  for (const [k, v] of Object.entries(d.spec.selector.matchLabels)) assert.equal(d.spec.template.metadata.labels[k], v, k);

  const pod = d.spec.template.spec;
  assert.equal(pod.containers.length, 1);
  const c = pod.containers[0];
  // The runner image, with the operator in place of the image's entrypoint (ccrunner).
  assert.equal(c.image, image);
  assert.deepEqual(c.command, ['/usr/local/bin/ccoperator']);
  const dockerfile = readFileSync(join(root, 'deploy/image/Dockerfile'), 'utf8');
  assert.match(dockerfile, /^COPY\b.*\/ccoperator\b.*\/usr\/local\/bin\/?$/m, 'the image does not install ccoperator');

  const env = new Map(c.env.map((e) => [e.name, e]));
  assert.deepEqual(env.get('WATCH_NAMESPACE').valueFrom, { fieldRef: { fieldPath: 'metadata.namespace' } });
  assert.equal(env.get('RUNNER_IMAGE').value, image);
  // Only variables ccoperator reads.
  const main = readFileSync(join(root, 'src/operator/main.c'), 'utf8');
  for (const name of env.keys()) assert.ok(main.includes(`"${name}"`), `ccoperator does not read ${name}`);

  // Both probes reach the health endpoint the operator serves (HEALTH_ADDR, default :8081).
  const port = Number((env.get('HEALTH_ADDR')?.value ?? '0.0.0.0:8081').split(':').pop());
  const health = readFileSync(join(root, 'src/operator/health.c'), 'utf8');
  for (const [probe, path] of [['livenessProbe', '/healthz'], ['readinessProbe', '/readyz']]) {
    const get = c[probe]?.httpGet;
    assert.equal(get?.path, path, probe);
    const probePort = typeof get.port === 'number' ? get.port : c.ports.find((p) => p.name === get.port)?.containerPort;
    assert.equal(probePort, port, `${probe} port`);
    assert.ok(health.includes(`"GET ${path} "`), `ccoperator does not serve ${path}`);
  }

  // The image's user, nothing it does not need.
  const user = [...dockerfile.matchAll(/^USER\s+(\d+)/gm)].at(-1);
  assert.equal(pod.securityContext.runAsNonRoot, true);
  assert.equal(pod.securityContext.runAsUser, Number(user[1]));
  assert.equal(pod.securityContext.seccompProfile.type, 'RuntimeDefault');
  assert.equal(c.securityContext.allowPrivilegeEscalation, false);
  assert.equal(c.securityContext.readOnlyRootFilesystem, true);
  assert.deepEqual(c.securityContext.capabilities.drop, ['ALL']);
  assert.notEqual(pod.automountServiceAccountToken, false, 'the operator needs its token');

  const { requests, limits } = c.resources;
  assert.ok(quantity(requests.cpu) <= 0.1, `cpu request ${requests.cpu}`);
  assert.ok(quantity(requests.memory) <= 64 * 2 ** 20, `memory request ${requests.memory}`);
  assert.ok(quantity(limits.memory) >= quantity(requests.memory));
  // A request is bounded to 10 s; the loop ends between two.
  assert.ok(pod.terminationGracePeriodSeconds >= 15 && pod.terminationGracePeriodSeconds <= 60);
});

test('the operator\'s Role grants exactly what ccoperator calls; the runner has no token and no role', () => {
  const rbac = readYaml(join(k8sDir, 'rbac.yaml'));
  const find = (kind, name) => rbac.find((d) => d.kind === kind && d.metadata.name === name);
  const sa = operatorDeployment().spec.template.spec.serviceAccountName;
  assert.equal(sa, 'ccrunner-operator');
  assert.ok(find('ServiceAccount', sa), `ServiceAccount ${sa} is not in rbac.yaml`);
  assert.notEqual(find('ServiceAccount', sa).automountServiceAccountToken, false);

  const binding = find('RoleBinding', 'ccrunner-operator');
  assert.deepEqual(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'ccrunner-operator' });
  assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: sa, namespace: '${NAMESPACE}' }]);

  const granted = {};
  for (const rule of find('Role', 'ccrunner-operator').rules) {
    assert.equal(rule.resourceNames, undefined);
    assert.equal(rule.nonResourceURLs, undefined);
    for (const group of rule.apiGroups)
      for (const resource of rule.resources) (granted[`${group}/${resource}`] ??= []).push(...rule.verbs);
  }
  const sorted = (o) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, [...new Set(v)].sort()]).sort());
  assert.deepEqual(sorted(granted), sorted(operatorCalls));
  assert.equal(rbac.filter((d) => d.kind === 'Role' || d.kind === 'ClusterRole').length, 1, 'one role, the operator\'s');

  // ccrunner never calls the API: no token, and no binding names it.
  assert.equal(find('ServiceAccount', 'ccrunner-runner').automountServiceAccountToken, false);
  for (const b of rbac.filter((d) => /Binding$/.test(d.kind)))
    assert.ok(!b.subjects.some((s) => s.name === 'ccrunner-runner'), `${b.metadata.name} binds the runner`);
});
