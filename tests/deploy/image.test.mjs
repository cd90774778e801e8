// The runner image's definition, exercised as far as a machine without a Docker engine
// allows: its package lists install on Debian 12 (apt's simulation, from a bare system), they
// provide every shared library ccrunner and claude load, claude needs no Node.js, and the
// entrypoint, exactly as declared, runs an installed ccrunner. (tests/image/ builds the image
// for real with buildah and runs it.)
// Environment: CCRUNNER (the ccrunner binary under test), CCRUNNER_BUILD_DIR (its build tree,
// where ccoperator is built too).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { root, sh } from './lib.mjs';

const imageDir = join(root, 'deploy/image');
const dockerfile = readFileSync(join(imageDir, 'Dockerfile'), 'utf8');
const ccrunner = process.env.CCRUNNER ?? join(root, 'build/ccrunner');
const buildDir = process.env.CCRUNNER_BUILD_DIR ?? join(root, 'build');
const ccoperator = join(buildDir, 'ccoperator');
const claude = join(root, 'node_modules/.bin/claude');

const listed = (file) => readFileSync(join(imageDir, file), 'utf8')
  .split('\n').map((l) => l.replace(/#.*/, '').trim()).filter(Boolean);

// The instructions of the Dockerfile's last stage (the runtime image).
const runtimeStage = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));

test('the Dockerfile: two Debian 12 stages, the package lists through install-packages.sh, a numeric non-root user, the three programs', () => {
  const froms = [...dockerfile.matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1]);
  assert.deepEqual(froms, ['debian:bookworm', 'debian:bookworm-slim']);
  for (const list of ['build-packages.txt', 'runtime-packages.txt'])
    assert.match(dockerfile, new RegExp(`^RUN --mount=type=secret,id=ca_bundle bash /tmp/deps/install-packages\\.sh /tmp/deps/${list.replace('.', '\\.')}`, 'm'), list);
  assert.match(runtimeStage, /^COPY deploy\/image\/install-packages\.sh deploy\/image\/runtime-packages\.txt /m);
  const user = /^USER\s+(\d+)(?::(\d+))?\s*$/m.exec(runtimeStage);
  assert.ok(user && Number(user[1]) > 0, 'the runtime stage needs USER <uid> with a non-zero uid');
  assert.match(runtimeStage, new RegExp(`install -d -o ${user[1]} -g ${user[2] ?? user[1]} /workspace /var/spool/ccrunner`));
  // claude (most of the image) in a layer of its own, which a rebuild of ccrunner reuses.
  const copies = [...runtimeStage.matchAll(/^COPY --from=build (.*)$/gm)].map((m) => m[1]);
  assert.deepEqual(copies, ['/usr/local/bin/claude /usr/local/bin/',
    '/usr/local/bin/ccrunner /usr/local/bin/ccoperator /usr/local/bin/']);
});

test('the build trusts a CA bundle only as the optional build secret, in no layer', () => {
  // npm ci and both package installs mount it; nothing copies it or names it in ENV.
  assert.equal([...dockerfile.matchAll(/^RUN --mount=type=secret,id=ca_bundle /gm)].length, 3);
  assert.match(dockerfile, /--mount=type=secret,id=ca_bundle \\\n.*NODE_EXTRA_CA_CERTS=\/run\/secrets\/ca_bundle.*\\\n.*npm ci /);
  for (const m of dockerfile.matchAll(/^(ENV|ARG|COPY|ADD)\s.*$/gm))
    assert.doesNotMatch(m[0], /ca_bundle|secrets|\.crt|\.pem/i, m[0]);
  const install = readFileSync(join(imageDir, 'install-packages.sh'), 'utf8');
  assert.match(install, /Acquire::https::CAInfo=\/run\/secrets\/ca_bundle/);
});

for (const list of ['runtime-packages.txt', 'build-packages.txt']) {
  test(`${list} installs on Debian 12`, () => {
    const r = spawnSync('bash', [join(imageDir, 'install-packages.sh'), '--simulate', join(imageDir, list)], { encoding: 'utf8' });
    assert.equal(r.status, 0, `apt-get refused ${list}:\n${r.stdout}\n${r.stderr}`);
    for (const p of listed(list)) {
      const inst = new RegExp(`^Inst ${p.replace(/[+.]/g, '\\$&')} \\(\\S+ [^)]*Debian[^)]*:12[^)]*\\)`, 'm');
      assert.match(r.stdout, inst, `${p} would not be installed from Debian 12`);
    }
  });
}

// The package that owns a library file, trying the /lib and /usr/lib spellings of merged-/usr.
function owner(path) {
  const candidates = new Set([path, realpathSync(path)]);
  for (const p of [...candidates]) {
    if (p.startsWith('/usr/lib/')) candidates.add(p.slice(4));
    else if (p.startsWith('/lib/')) candidates.add(`/usr${p}`);
  }
  for (const p of candidates) {
    const r = spawnSync('dpkg', ['-S', p], { encoding: 'utf8' });
    if (r.status === 0) return r.stdout.split(':')[0].trim();
  }
  throw new Error(`no Debian package owns ${path}`);
}

// The shared libraries a program loads: its NEEDED entries and theirs, resolved as ldd
// resolves them. A sanitizer runtime (the ASan build's) and what only it needs are left out:
// the image holds a normal (RelWithDebInfo, stripped) build.
function libraries(program) {
  const where = new Map();
  const ldd = sh('ldd', [program]);
  for (const m of ldd.matchAll(/^\s*(\S+) => (\/\S+)/gm)) where.set(m[1], m[2]);
  for (const m of ldd.matchAll(/^\s*(\/\S+\/([^/\s]+)) \(0x/gm)) where.set(m[2], m[1]); // the dynamic loader
  const needed = (file) => [...sh('readelf', ['-d', file]).matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
  const seen = new Map();
  const queue = needed(program);
  while (queue.length) {
    const name = queue.shift();
    if (seen.has(name) || /^lib(a|ub|l|t)san\.so/.test(name)) continue;
    const path = where.get(name);
    assert.ok(path, `${program}: ldd does not resolve ${name}`);
    seen.set(name, path);
    queue.push(...needed(path));
  }
  return seen;
}

// The packages apt installs for a list onto a bare system: the list and all it depends on.
function installs(list) {
  const r = spawnSync('bash', [join(imageDir, 'install-packages.sh'), '--simulate', join(imageDir, list)], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return new Set([...r.stdout.matchAll(/^Inst (\S+?)(?::\S+)? /gm)].map((m) => m[1]));
}

// A library may come from a package the list names or from one that apt installs for it
// (libcurl4's own libraries, which ccoperator loads through it).
test('runtime-packages.txt provides every library ccrunner, ccoperator and claude load', () => {
  const runtime = installs('runtime-packages.txt');
  for (const p of listed('runtime-packages.txt')) assert.ok(runtime.has(p), `apt would not install ${p}`);
  assert.ok(existsSync(claude), 'node_modules/.bin/claude is missing: run npm ci (scripts/install-deps.sh)');
  assert.ok(existsSync(ccoperator), `${ccoperator} is missing: build the project`);
  const operatorLibs = libraries(ccoperator);
  // ccoperator links these two (the Kubernetes API, YAML); a build without them is not it.
  assert.ok(operatorLibs.has('libcurl.so.4') && operatorLibs.has('libyaml-0.so.2'), [...operatorLibs.keys()].join(' '));
  const libs = new Map([...libraries(ccrunner), ...operatorLibs, ...libraries(realpathSync(claude))]);
  // dlopen()ed by liblangfuse for https:// hosts (src/langfuse/http_curl.c), invisible to ldd.
  const curl = /libcurl\.so\.4 \(libc6,x86-64\) => (\S+)/.exec(sh('/sbin/ldconfig', ['-p']));
  assert.ok(curl, 'libcurl.so.4 is not installed here');
  libs.set('libcurl.so.4', curl[1]);
  assert.ok(libs.has('libjansson.so.4') && libs.has('libc.so.6'), [...libs.keys()].join(' '));
  for (const [name, path] of libs) {
    const pkg = owner(path);
    assert.ok(runtime.has(pkg), `${name} (${path}) comes from ${pkg}, which runtime-packages.txt does not install`);
  }
});

test('claude runs without Node.js', () => {
  const version = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).dependencies['@anthropic-ai/claude-code'];
  const home = mkdtempSync(join(tmpdir(), 'deploy-claude-'));
  try {
    const r = spawnSync(claude, ['--version'], { env: { PATH: '/nonexistent', HOME: home }, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.ok(r.stdout.includes(version), r.stdout);
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

test('the entrypoint, as declared, runs the installed ccrunner', () => {
  const entrypoint = JSON.parse(/^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(runtimeStage)?.[1] ?? 'null');
  assert.ok(Array.isArray(entrypoint) && entrypoint.length > 0, 'the runtime stage needs an exec-form ENTRYPOINT');
  assert.equal(entrypoint.at(-1), '/usr/local/bin/ccrunner', 'ccrunner must be the program the entrypoint runs');
  const env = { PATH: '/usr/local/bin:/usr/bin:/bin' };
  for (const m of runtimeStage.matchAll(/^ENV\s+((?:.*\\\n)*.*)$/gm))
    for (const kv of m[1].matchAll(/([A-Z_][A-Z0-9_]*)=(\S+)/g)) env[kv[1]] = kv[2];
  assert.equal(env.HOME, '/home/runner');

  // The build stage installs with `cmake --install` into /usr/local; do the same into a
  // scratch root. Paths of the entrypoint resolve in that root first (files the image
  // copies), else on this machine (files from runtime-packages.txt, installed here too).
  const image = mkdtempSync(join(tmpdir(), 'deploy-image-'));
  try {
    sh('cmake', ['--install', buildDir, '--prefix', join(image, 'usr/local')]);
    const argv = entrypoint.map((a) => (a.startsWith('/') && existsSync(join(image, a)) ? join(image, a) : a));
    assert.notEqual(argv.at(-1), entrypoint.at(-1), 'cmake --install did not install ccrunner to /usr/local/bin');
    for (const a of argv.filter((x) => x.startsWith('/'))) assert.ok(existsSync(a), `${a} is missing (apt-get install it)`);
    const run = (...args) => spawnSync(argv[0], [...argv.slice(1), ...args], { env: { ...process.env, ...env }, encoding: 'utf8' });

    const help = run('--help');
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, /^usage: ccrunner /);
    // The exit code of a refused start passes through the init process.
    const refused = run();
    assert.equal(refused.status, 2, refused.stderr);
    assert.match(refused.stderr, /^ccrunner: error: /m);
  } finally {
    rmSync(image, { recursive: true, force: true });
  }
});
