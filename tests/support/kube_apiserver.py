#!/usr/bin/env python3
"""A Kubernetes API server, Job controller and kubelet stand-in, for ccoperator's tests.

No real Kubernetes API server can run on the test machines, so ccoperator (src/operator/) is
tested against this one process: it serves the part of the Kubernetes REST API the operator
uses, over plain HTTP on 127.0.0.1, following the conventions of a real API server (paths,
JSON shapes, status codes, ``Status`` error bodies, resourceVersions, watches, the status
subresource, owner-reference garbage collection), and runs each Job's Pod as local
processes the way a kubelet would run its containers.  Python 3.11 standard library only.

Usage::

    python3 tests/support/kube_apiserver.py --port 0 [--token T] [--image NAME=ARGV ...]
        [--image-env NAME=K=V ...] [--crd-json FILE] [--history N] [--bookmark-interval S]
        [--max-grace S] [--no-kubelet] [--workdir DIR] [--job-batch-period S]

prints ``listening on http://127.0.0.1:PORT`` on stdout once it listens, logs to stderr, and
runs until SIGTERM or SIGINT, which stop it and kill every process its Pods started.  As a
module: ``KubeApiServer(port=0, token=..., image=..., ...)`` with ``.start()``, ``.url`` and
``.stop()``, and for tests ``.create(obj)``, ``.get(path)``, ``.wait_for(predicate,
timeout)``, which read and write the store directly.

The API
=======
Resources: ``agenticsessions`` (``/apis/vteam.ambient-code/v1alpha1``), ``jobs``
(``/apis/batch/v1``), ``pods``, ``secrets``, ``configmaps`` (``/api/v1``), each under
``namespaces/{ns}/{plural}[/{name}]`` and, for list and watch, ``/{plural}`` across all
namespaces; ``.../status`` for sessions, Jobs and Pods; ``/api/v1/namespaces/{ns}/pods/{name}
/log`` (``container``, ``tailLines``, ``limitBytes``, ``follow``).  Namespaces exist as soon
as something is put in them.

* GET one; list (``labelSelector`` with ``k=v``, ``k==v``, ``k!=v``, ``k``, ``!k``, ``k in
  (a,b)``, ``k notin (a,b)``; ``fieldSelector`` on ``metadata.name``/``metadata.namespace``
  and a few per-kind fields; ``limit``/``continue``).  Lists of built-in kinds leave
  ``kind``/``apiVersion`` out of their items, as Kubernetes does.
* POST creates: ``uid``, ``creationTimestamp``, ``resourceVersion``, ``generation`` 1 for
  sessions and Jobs, ``generateName``; 409 AlreadyExists; 422 Invalid for a bad name.  A
  session's ``status`` is dropped on create, a Job's emptied, a Pod's set to Pending.
  Secrets: ``stringData`` is folded into ``data`` (base64).
* PUT replaces: 409 Conflict when ``metadata.resourceVersion`` is set and not current (absent
  or empty: unconditional).  PATCH: ``application/merge-patch+json`` (RFC 7386);
  ``application/strategic-merge-patch+json`` is a merge patch on built-in kinds (lists are
  replaced, not merged by key) and 415 on AgenticSessions, as for every custom resource.
  With a status subresource, writes to the object ignore ``status`` and writes to
  ``/status`` change only ``status``; ``generation`` grows only when ``spec`` changes.  A
  write that changes nothing keeps the resourceVersion and sends no event.
* DELETE with ``propagationPolicy`` (body or query; ``orphanDependents`` too):
  Background (the default; for batch/v1 Jobs the default is Orphan, with Kubernetes'
  warning header), Foreground (the owner gets ``deletionTimestamp`` and the
  ``foregroundDeletion`` finalizer and goes once its dependents are gone), Orphan (its
  dependents lose the owner reference).  Objects whose every owner is gone, or never
  existed, are deleted by the garbage collector, transitively.  ``metadata.finalizers``
  hold an object (with ``deletionTimestamp``) until an update empties them.  Pods being
  run are deleted gracefully (see the kubelet).  DELETE on a collection too.
* AgenticSessions against the CRD given with ``--crd-json`` (the CRD as JSON; the tests
  convert deploy/k8s/crd-agenticsession.yaml with node's ``yaml`` package): unknown fields
  are pruned silently (``x-kubernetes-preserve-unknown-fields`` honoured), nulls of
  non-nullable fields dropped, ``default`` values filled in, then the schema is validated
  (``type``, ``enum``, ``minimum``/``maximum``, ``minLength``/``maxLength``, ``pattern``,
  ``format: date-time``, ``required``, ``minItems``/``maxItems``) with a 422 Invalid in
  Kubernetes' words.  Without ``--crd-json``: none of this.
* resourceVersion: one global counter, as a string, for every change; each change is kept in
  a history of ``--history`` events (default 1000).
* Watch (``watch=1``/``true`` on a collection): chunked ``application/json``, one
  ``{"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": ...}`` a line.  From
  ``resourceVersion=RV``: the history after RV, then live; RV older than the history: one
  ERROR event with a 410 Expired Status, then the end of the stream.  Without RV or with
  "0": ADDED for everything there, then live (``sendInitialEvents=true`` adds the
  ``k8s.io/initial-events-end`` bookmark).  ``allowWatchBookmarks=true``: a BOOKMARK every
  ``--bookmark-interval`` seconds (default 5).  ``timeoutSeconds`` ends the stream.
  Selectors apply, and an object leaving the selection is sent as DELETED (its last
  selected state), one entering it as ADDED.
* ``--token T``: every request outside ``/_test/`` needs ``Authorization: Bearer T``, else
  401.  ``/healthz``, ``/livez``, ``/readyz``, ``/version`` answer too.

Test hooks (no token): ``POST /_test/drop-watches`` (every open watch stream is cut, as by an
API server restart: no final chunk), ``POST /_test/compact`` (the history is forgotten, so
any older resourceVersion gets 410), ``POST /_test/fail?path=REGEX&status=N&count=N
[&method=M]`` (the next N matching requests answer that status with a Status body),
``POST /_test/conflict?path=REGEX&count=N`` (the next N PUT/PATCH on a matching path get 409
Conflict even when current), ``GET /_test/requests`` (every request so far: method, path,
query, contentType, body (parsed when JSON), agent, status).

The Job controller and the kubelet
==================================
A new Job gets one Pod, ``<job>-<5 random characters>``, from its template: the template's
labels plus ``job-name``, ``controller-uid`` (and their ``batch.kubernetes.io/`` forms), a
controller owner reference to the Job; the Job gets ``status.startTime``, ``active: 1`` and
``ready``.  When the Pod ends the Job gets ``succeeded: 1``, a ``Complete`` condition and
``completionTime`` (all containers exited 0), or ``failed: 1`` and a ``Failed`` condition
with reason ``BackoffLimitExceeded``; a Pod deleted before it ends fails the Job likewise.
As Kubernetes' Job controller, it batches a Job's Pod changes for ``--job-batch-period``
seconds (default 1, as ``syncJobBatchPeriod``) before it updates the Job, so a Job's status
lags its Pod's by about that; a new Job gets its Pod at once.
``--no-kubelet``: Jobs are only stored (no Pods, no status).

The kubelet runs each Pod's init containers in order, then its containers together, as
local processes, each in a session of its own:

* ``--image NAME=ARGV`` (a JSON list or one path) is the image's ENTRYPOINT; ``command``
  replaces it and ``args`` are appended, with ``$(VAR)`` expanded from the container's env
  (``$$`` escapes).  ``--image-env NAME=K=V`` is the image's ENV.  An image not in the map:
  the container waits with ``ErrImagePull`` then ``ImagePullBackOff`` naming the image, the
  Pod stays Pending and its Job active.  A command that cannot be executed ends the
  container at once with ``StartError`` (exit code 128).
* The environment: PATH (the host's), HOME (a per-Pod directory) and HOSTNAME (the Pod's
  name), then the image's ENV, then ``envFrom`` (Secrets and ConfigMaps, ``prefix``,
  ``optional``), then ``env`` (``value`` with ``$(VAR)`` expansion of earlier variables;
  ``valueFrom`` ``fieldRef`` (metadata.name/namespace/uid, metadata.labels['k'],
  metadata.annotations['k'], spec.nodeName, spec.serviceAccountName, status.hostIP(s),
  status.podIP(s)), ``secretKeyRef``, ``configMapKeyRef``, ``optional``); later wins.
  Nothing else of the host's environment.  A required reference that is missing keeps the
  container waiting with ``CreateContainerConfigError`` and Kubernetes' message (``secret
  "x" not found``, ``couldn't find key K in Secret ns/x``); it starts once the reference
  appears.
* Volumes: every ``volumeMount`` is a per-Pod directory, one per volume (an emptyDir,
  whatever the volume's type; ``subPath`` honoured).  Since the processes run on the host,
  an env value, an argument or the ``workingDir`` that is a mountPath or starts with one
  and ``/`` is rewritten to the local directory.  The working directory is the mapped
  ``workingDir`` (an unmapped one is made under the Pod's directory), else a per-Pod
  directory.
* The termination message: ``TERMINATION_LOG`` names a per-container file (for
  /dev/termination-log; the container's ``terminationMessagePath`` is rewritten to it too),
  of which at most 4096 bytes go to ``state.terminated.message``; with
  ``terminationMessagePolicy: FallbackToLogsOnError``, an empty file and a non-zero exit,
  the log's last 80 lines (at most 2048 bytes), as the kubelet does.
* stdout and stderr go to one log file per container, served by ``/log``.
* Pod status as the kubelet writes it, each change a MODIFIED event: ``phase`` Pending,
  Running, Succeeded or Failed; ``startTime``, ``hostIP``, ``podIP``; conditions
  Initialized, Ready, ContainersReady, PodScheduled; ``initContainerStatuses`` and
  ``containerStatuses`` with ``state.waiting|running|terminated`` (``exitCode``, ``reason``
  Completed or Error, ``message``, ``startedAt``, ``finishedAt``), ``ready``,
  ``restartCount``, ``image``, ``started``, ``containerID``.
* When a container's main process exits, every process left in its session (and its
  descendants) is SIGKILLed, as a container's cgroup would be.
* Deleting a Pod whose containers run (directly or by garbage collection): the Pod gets
  ``deletionTimestamp`` (MODIFIED), each container's main process gets SIGTERM, as
  Kubernetes sends it to a container's PID 1 (the rest of the session does not), and what
  is still there after ``gracePeriodSeconds`` (the delete's, else the Pod's
  ``terminationGracePeriodSeconds``, default 30; ``--max-grace`` caps it) is SIGKILLed;
  then the final status (MODIFIED) and DELETED.  Stopping the stand-in SIGKILLs everything
  at once.  Each container's main process is started under ``setpriv --pdeathsig KILL``
  (util-linux) when there is one, so it dies with the stand-in even when that is killed.

What it leaves out, compared with a real API server and cluster
===============================================================
No admission (webhooks, LimitRange, ResourceQuota, Pod Security), no RBAC or any
authorization, no authentication beyond one bearer token, no TLS, HTTP/1.1 only.  No
defaulting of built-in kinds (a Pod or Job reads back as it was sent; only a CRD's own
``default``s are applied), no server-side apply, no JSON patch (415), no strategic-merge
semantics, no protobuf, YAML or CBOR bodies (415), no ``dryRun``, no managedFields.  Most
validation: names must be DNS subdomains, Pods need containers with images, Job templates a
``restartPolicy`` of Never or OnFailure, AgenticSessions their CRD schema; nothing else (no
immutable fields, no label syntax, no CEL rules).  Lists are always of the current state:
no list at a past resourceVersion, ``continue`` tokens are not snapshots and never expire;
a watch from a resourceVersion newer than the current one simply waits.  No Events API, no
Namespace objects, no discovery, no Services or DNS, no ``exec``/``attach``/port-forward,
no API priority and fairness (429 only when injected).  The cluster: one pretend node, no
scheduling, no real images (a map from image name to a local command), no isolation (the
processes run as the caller, on the host's filesystem, network and PID space), no cgroups
(resources are not enforced and nothing is ever OOMKilled), no probes, no restarts
(``restartPolicy`` is always Never, a Job runs one Pod whatever its ``backoffLimit``,
``completions`` or ``parallelism``), no ``activeDeadlineSeconds``,
``ttlSecondsAfterFinished``, ``suspend``, pod failure policy, Job tracking finalizers or the
newer SuccessCriteriaMet/FailureTarget conditions; volumes of any type are empty
directories; service-account tokens are never mounted.  A process that leaves its session
and its parent (``setsid`` and double fork) escapes the kill at the end of its container.
"""

import argparse
import base64
import binascii
import heapq
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import uuid
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Kubernetes' generated-name alphabet (apimachinery's utilrand: no vowels, no 0/1/3).
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
MAX_GENERATE_NAME_BASE = 58        # 63 minus the 5 random characters
MAX_BODY = 8 << 20                 # a request body larger than this gets 413
MAX_REQUEST_LOG = 100_000          # /_test/requests keeps this many, then counts
DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
OBJECT_META_FIELDS = frozenset((
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
    "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
    "annotations", "ownerReferences", "finalizers", "managedFields"))
NODE_NAME = "standin-node"
NODE_IP = "127.0.0.1"
TERMINATION_MESSAGE_MAX = 4096     # kubelet: bytes of the termination-log file kept
FALLBACK_LOG_LINES = 80            # kubelet: FallbackToLogsOnError takes the log's last lines
FALLBACK_LOG_BYTES = 2048          # ... and at most this many bytes of them
DEFAULT_GRACE_S = 30
JOB_ORPHAN_WARNING = ('299 - "child pods are preserved by default when jobs are deleted; '
                      'set propagationPolicy=Background to remove them"')
SETPRIV = shutil.which("setpriv")


def now_ts():
    """A metav1.Time: RFC 3339, seconds, UTC."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def clone(obj):
    return json.loads(json.dumps(obj))


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"))


def random_suffix():
    return "".join(random.choice(NAME_ALPHABET) for _ in range(5))


class Resource:
    """One kind the server stores: where it sits in the URL space and how it behaves."""

    def __init__(self, group, version, plural, kind, status_subresource, generation,
                 fields=(), custom=False):
        self.group, self.version, self.plural, self.kind = group, version, plural, kind
        self.status_subresource = status_subresource
        self.generation = generation   # metadata.generation kept (bumped on spec changes)
        self.custom = custom           # a custom resource (CRD), not a built-in kind
        self.api_version = f"{group}/{version}" if group else version
        self.qualified = f"{plural}.{group}" if group else plural          # "jobs.batch"
        self.kind_qualified = f"{kind}.{group}" if group else kind         # "Job.batch"
        self.fields = frozenset(("metadata.name", "metadata.namespace", *fields))

    def details(self, name):
        d = {"name": name}
        if self.group:
            d["group"] = self.group
        d["kind"] = self.plural
        return d


SESSIONS = Resource("vteam.ambient-code", "v1alpha1", "agenticsessions", "AgenticSession",
                    True, True, custom=True)
JOBS = Resource("batch", "v1", "jobs", "Job", True, True, ("status.successful",))
PODS = Resource("", "v1", "pods", "Pod", True, False,
                ("spec.nodeName", "spec.restartPolicy", "spec.serviceAccountName",
                 "status.phase", "status.podIP"))
SECRETS = Resource("", "v1", "secrets", "Secret", False, False, ("type",))
CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap", False, False)
RESOURCES = (SESSIONS, JOBS, PODS, SECRETS, CONFIGMAPS)
BY_URL = {(r.group, r.version, r.plural): r for r in RESOURCES}
BY_PLURAL = {r.plural: r for r in RESOURCES}
BY_KIND = {(r.api_version, r.kind): r for r in RESOURCES}


# ---------------------------------------------------------------------------------------
# Errors: Kubernetes' Status bodies

REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
           405: "MethodNotAllowed", 406: "NotAcceptable", 409: "Conflict", 410: "Expired",
           413: "RequestEntityTooLarge", 415: "UnsupportedMediaType", 422: "Invalid",
           429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable",
           504: "Timeout"}


class ApiError(Exception):
    """An API failure, answered as a Status."""

    def __init__(self, code, reason, message, details=None, headers=None):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
        self.details, self.headers = details, headers or {}

    def status(self):
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason}
        if self.details:
            body["details"] = self.details
        body["code"] = self.code
        return body


def bad_request(message):
    return ApiError(400, "BadRequest", message)


def not_found(res, name):
    return ApiError(404, "NotFound", f'{res.qualified} "{name}" not found', res.details(name))


def conflict(res, name, why="the object has been modified; please apply your changes to "
                            "the latest version and try again"):
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {res.qualified} '
                    f'"{name}": {why}', res.details(name))


def invalid(res, name, errors):
    """errors: (field, cause reason, detail) triples, as field.ErrorList gives them."""
    texts = [f"{field}: {detail}" for field, _, detail in errors]
    joined = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    details = res.details(name)
    details["kind"] = res.kind
    details["causes"] = [{"reason": reason, "message": detail, "field": field}
                         for field, reason, detail in errors]
    return ApiError(422, "Invalid", f'{res.kind_qualified} "{name}" is invalid: {joined}',
                    details)


class ConfigError(Exception):
    """A container that cannot be configured yet (CreateContainerConfigError)."""


# ---------------------------------------------------------------------------------------
# Selectors

def split_terms(text):
    """Splits a selector at commas outside parentheses."""
    terms, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    terms.append("".join(cur))
    return [t.strip() for t in terms if t.strip()]


KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"


def parse_label_selector(text):
    """A label selector as predicates over a labels dict; 400 when it does not parse."""
    preds = []
    for term in split_terms(text or ""):
        m = re.fullmatch(rf"({KEY})\s*(==|=|!=)\s*([-A-Za-z0-9_.]*)", term)
        if m:
            k, op, v = m.groups()
            preds.append((lambda lb, k=k, v=v: lb.get(k) == v) if op != "!=" else
                         (lambda lb, k=k, v=v: lb.get(k) != v))
            continue
        m = re.fullmatch(rf"({KEY})\s+(in|notin)\s*\(([^()]*)\)", term)
        if m:
            k, op, vals = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            preds.append((lambda lb, k=k, s=vals: k in lb and lb[k] in s) if op == "in" else
                         (lambda lb, k=k, s=vals: lb.get(k) not in s))
            continue
        m = re.fullmatch(rf"!\s*({KEY})", term)
        if m:
            preds.append(lambda lb, k=m.group(1): k not in lb)
            continue
        if re.fullmatch(KEY, term):
            preds.append(lambda lb, k=term: k in lb)
            continue
        raise bad_request(f'unable to parse requirement: invalid label selector: "{term}"')
    return preds


def field_value(obj, path):
    cur = obj
    for part in path.split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def parse_field_selector(res, text):
    preds = []
    for term in split_terms(text or ""):
        m = re.fullmatch(r"([A-Za-z.]+)\s*(==|=|!=)\s*(.*)", term)
        if not m:
            raise bad_request(f'invalid field selector: "{term}"')
        field, op, value = m.groups()
        if field not in res.fields:
            raise bad_request(f'field label not supported: {field}')
        preds.append((lambda o, f=field, v=value: field_value(o, f) == v) if op != "!=" else
                     (lambda o, f=field, v=value: field_value(o, f) != v))
    return preds


class Selector:
    """A label and a field selector together, as a list or a watch applies them."""

    def __init__(self, res, labels="", fields=""):
        self.labels = parse_label_selector(labels)
        self.fields = parse_field_selector(res, fields)

    def matches(self, obj):
        lb = (obj.get("metadata") or {}).get("labels") or {}
        return all(p(lb) for p in self.labels) and all(p(obj) for p in self.fields)


# ---------------------------------------------------------------------------------------
# Merge patch (RFC 7386)

def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return clone(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


# ---------------------------------------------------------------------------------------
# A CRD's structural schema: pruning, defaults, validation

DATE_TIME = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)")


def load_crd_schema(path, res):
    """The openAPIV3Schema of res's version in the CRD at path (JSON)."""
    with open(path, encoding="utf-8") as f:
        crd = json.load(f)
    spec = crd.get("spec") or {}
    if spec.get("group") != res.group or (spec.get("names") or {}).get("plural") != res.plural:
        raise ValueError(f"{path}: not the CRD of {res.qualified}")
    for v in spec.get("versions") or []:
        if v.get("name") == res.version:
            schema = (v.get("schema") or {}).get("openAPIV3Schema")
            if isinstance(schema, dict):
                return schema
    raise ValueError(f"{path}: no openAPIV3Schema for version {res.version}")


def structural(value, schema):
    """value with the fields the schema does not declare dropped (unless it preserves
    unknown fields), nulls of non-nullable fields dropped, and defaults filled in."""
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        addl = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
        out = {}
        for k, v in value.items():
            sub = props.get(k)
            if sub is None and isinstance(addl, dict):
                sub = addl
            if sub is None:
                if preserve or addl is True:
                    out[k] = v
                continue
            if v is None and not sub.get("nullable"):
                continue
            out[k] = structural(v, sub)
        for k, sub in props.items():
            if k not in out and "default" in sub:
                out[k] = structural(clone(sub["default"]), sub)
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [structural(v, schema["items"]) for v in value]
    return value


def json_type(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def literal(value):
    return json.dumps(value) if isinstance(value, str) else dumps(value)


def validate(value, schema, path, errs):
    """Appends (field, reason, detail) for each way value breaks schema (a subset of
    OpenAPI v3 as Kubernetes checks it, with its messages)."""
    if value is None:
        return
    want, got = schema.get("type"), json_type(value)
    if want and not (want == got or (want == "number" and got == "integer")):
        errs.append((path, "FieldValueTypeInvalid",
                     f'Invalid value: "{got}": {path} in body must be of type {want}: "{got}"'))
        return
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(literal(v) for v in schema["enum"])
        errs.append((path, "FieldValueNotSupported",
                     f"Unsupported value: {literal(value)}: supported values: {allowed}"))
    if got in ("integer", "number"):
        lo, hi = schema.get("minimum"), schema.get("maximum")
        lo_x, hi_x = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
        if lo is not None and (value < lo or (lo_x and value == lo)):
            errs.append((path, "FieldValueInvalid", f"Invalid value: {literal(value)}: {path} "
                         f"in body should be greater than {'' if lo_x else 'or equal to '}{lo}"))
        if hi is not None and (value > hi or (hi_x and value == hi)):
            errs.append((path, "FieldValueInvalid", f"Invalid value: {literal(value)}: {path} "
                         f"in body should be less than {'' if hi_x else 'or equal to '}{hi}"))
    if got == "string":
        n = len(value)
        if "minLength" in schema and n < schema["minLength"]:
            errs.append((path, "FieldValueInvalid", f"Invalid value: {literal(value)}: {path} "
                         f"in body should be at least {schema['minLength']} chars long"))
        if "maxLength" in schema and n > schema["maxLength"]:
            errs.append((path, "FieldValueTooLong", f"Too long: may not be more than "
                         f"{schema['maxLength']} bytes"))
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errs.append((path, "FieldValueInvalid", f"Invalid value: {literal(value)}: {path} "
                         f"in body should match '{schema['pattern']}'"))
        if schema.get("format") == "date-time" and not DATE_TIME.fullmatch(value):
            errs.append((path, "FieldValueInvalid", f"Invalid value: {literal(value)}: {path} "
                         f"in body must be of type date-time: {literal(value)}"))
    if got == "array":
        if "minItems" in schema and len(value) < schema["minItems"]:
            errs.append((path, "FieldValueInvalid", f"Invalid value: {len(value)}: {path} "
                         f"in body should have at least {schema['minItems']} items"))
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errs.append((path, "FieldValueTooMany", f"Too many: {len(value)}: must have at "
                         f"most {schema['maxItems']} items"))
        if isinstance(schema.get("items"), dict):
            for i, v in enumerate(value):
                validate(v, schema["items"], f"{path}[{i}]", errs)
    if got == "object":
        props = schema.get("properties") or {}
        for k in schema.get("required") or []:
            if k not in value:
                errs.append((f"{path}.{k}" if path else k, "FieldValueRequired", "Required value"))
        addl = schema.get("additionalProperties")
        for k, v in value.items():
            sub = props.get(k) or (addl if isinstance(addl, dict) else None)
            if sub is not None:
                validate(v, sub, f"{path}.{k}" if path else k, errs)


# ---------------------------------------------------------------------------------------
# The store: objects, resourceVersions, history, watches, garbage collection

class Event:
    __slots__ = ("rv", "res", "ns", "type", "obj", "prev")

    def __init__(self, rv, res, ns, etype, obj, prev):
        self.rv, self.res, self.ns, self.type, self.obj, self.prev = rv, res, ns, etype, obj, prev


class Watcher:
    """One open watch: the events for it not yet written (filled under the store's lock)."""

    def __init__(self, res, ns, selector):
        self.res, self.ns, self.selector = res, ns, selector
        self.pending = []
        self.dropped = False   # cut (drop-watches, stop): end without the final chunk

    def offer(self, ev):
        if ev.res is not self.res or (self.ns is not None and ev.ns != self.ns):
            return
        now = ev.type != "DELETED" and self.selector.matches(ev.obj)
        before = ev.prev is not None and self.selector.matches(ev.prev)
        if now and before:
            self.pending.append(("MODIFIED", ev.obj))
        elif now:
            self.pending.append(("ADDED", ev.obj))
        elif before:
            # Leaving the selection (or deleted): its last selected state at this RV.
            if ev.type == "DELETED":
                self.pending.append(("DELETED", ev.obj))
            else:
                gone = clone(ev.prev)
                gone["metadata"]["resourceVersion"] = str(ev.rv)
                self.pending.append(("DELETED", gone))


def owner_uids(obj):
    return [r.get("uid") for r in (obj["metadata"].get("ownerReferences") or [])
            if isinstance(r, dict)]


def qos_class(pod):
    spec = pod.get("spec") or {}
    cs = (spec.get("containers") or []) + (spec.get("initContainers") or [])
    any_set, guaranteed = False, bool(cs)
    for c in cs:
        res = c.get("resources") or {} if isinstance(c, dict) else {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        if any(k in req or k in lim for k in ("cpu", "memory")):
            any_set = True
        for k in ("cpu", "memory"):
            if k not in lim or req.get(k, lim[k]) != lim[k]:
                guaranteed = False
    return "Guaranteed" if any_set and guaranteed else "Burstable" if any_set else "BestEffort"


class Store:
    """Every object, the resourceVersion counter, the history of changes and the open
    watches, under one re-entrant lock.  Stored objects are never changed in place: a
    change stores a new dict, so events and readers may keep references."""

    def __init__(self, history=1000, schema=None):
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)   # notified on every change
        self.objects = {}        # (plural, namespace, name) -> object
        self.by_uid = {}         # uid -> key
        self.rv = 0
        self.history = deque()
        self.history_max = max(1, int(history))
        self.floor = 0           # events after this RV are all in the history
        self.watchers = set()
        self.listeners = []      # called with each Event, under the lock; must not block
        self.schema = schema     # AgenticSession openAPIV3Schema, or None
        self.kubelet = None

    # -- reading
    def get(self, res, ns, name):
        return self.objects.get((res.plural, ns, name))

    def must_get(self, res, ns, name):
        obj = self.get(res, ns, name)
        if obj is None:
            raise not_found(res, name)
        return obj

    def select(self, res, ns, selector=None):
        with self.lock:
            items = [o for (p, n, _), o in self.objects.items()
                     if p == res.plural and (ns is None or n == ns)
                     and (selector is None or selector.matches(o))]
        return sorted(items, key=lambda o: (o["metadata"]["namespace"], o["metadata"]["name"]))

    def dependents(self, uid):
        return [k for k, o in self.objects.items() if uid in owner_uids(o)]

    def owner_exists(self, uid, ns):
        key = self.by_uid.get(uid)
        return key is not None and key[1] == ns

    # -- the one place a change happens
    def _commit(self, res, ns, name, obj, etype):
        key = (res.plural, ns, name)
        prev = self.objects.get(key)
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        uid = obj["metadata"]["uid"]
        if etype == "DELETED":
            del self.objects[key]
            self.by_uid.pop(uid, None)
        else:
            self.objects[key] = obj
            self.by_uid[uid] = key
        ev = Event(self.rv, res, ns, etype, obj, prev)
        self.history.append(ev)
        while len(self.history) > self.history_max:
            self.floor = self.history.popleft().rv
        for w in self.watchers:
            w.offer(ev)
        for listener in self.listeners:
            listener(ev)
        self.changed.notify_all()

    def compact(self):
        with self.lock:
            self.history.clear()
            self.floor = self.rv
            return self.rv

    # -- what every write passes
    def _decode(self, res, body):
        if not isinstance(body, dict):
            raise bad_request("the body of the request is not a JSON object")
        obj = clone(body)
        av, kind = obj.get("apiVersion"), obj.get("kind")
        if av and av != res.api_version:
            raise bad_request(f"the API version in the data ({av}) does not match the "
                              f"expected API version ({res.api_version})")
        if kind and kind != res.kind:
            raise bad_request(f"the kind in the data ({kind}) does not match the expected "
                              f"kind ({res.kind})")
        obj.pop("apiVersion", None)
        obj.pop("kind", None)
        obj = {"apiVersion": res.api_version, "kind": res.kind, **obj}
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata is not a JSON object")
        obj["metadata"] = {k: v for k, v in meta.items() if k in OBJECT_META_FIELDS}
        return obj

    def _admit(self, res, obj, name):
        """Secret folding, CRD pruning and defaults, and validation; returns the object to
        store or raises 422."""
        errs = []
        if res is SECRETS:
            data = obj.get("data") or {}
            for k, v in data.items():
                try:
                    base64.b64decode(v, validate=True)
                except (binascii.Error, TypeError, ValueError):
                    raise bad_request(f"Secret in version \"v1\" cannot be handled as a Secret: "
                                      f"illegal base64 data in data.{k}")
            for k, v in (obj.pop("stringData", None) or {}).items():
                data[k] = base64.b64encode(str(v).encode()).decode()
            if data:
                obj["data"] = data
            obj.setdefault("type", "Opaque")
        if res is SESSIONS and self.schema is not None:
            top = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
            top = structural(top, self.schema)
            obj = {"apiVersion": obj["apiVersion"], "kind": obj["kind"],
                   "metadata": obj["metadata"], **top}
            validate(top, self.schema, "", errs)
        if res is JOBS:
            tspec = ((obj.get("spec") or {}).get("template") or {}).get("spec")
            if not isinstance(tspec, dict):
                errs.append(("spec.template.spec.containers", "FieldValueRequired",
                             "Required value"))
            else:
                errs += container_errors(tspec, "spec.template.spec")
                policy = tspec.get("restartPolicy")
                field = "spec.template.spec.restartPolicy"
                if policy is None:
                    errs.append((field, "FieldValueRequired",
                                 'Required value: valid values: "OnFailure", "Never"'))
                elif policy not in ("Never", "OnFailure"):
                    errs.append((field, "FieldValueNotSupported", f'Unsupported value: '
                                 f'"{policy}": supported values: "OnFailure", "Never"'))
        if res is PODS:
            errs += container_errors(obj.get("spec") or {}, "spec")
        if errs:
            raise invalid(res, name, errs)
        return obj

    # -- the verbs
    def create(self, res, ns, body):
        obj = self._decode(res, body)
        m = obj["metadata"]
        if m.get("namespace") not in (None, "", ns):
            raise bad_request("the namespace of the provided object does not match the "
                              "namespace sent on the request")
        if m.get("resourceVersion"):
            raise ApiError(500, "InternalError",
                           "resourceVersion should not be set on objects to be created")
        with self.lock:
            name = m.get("name") or ""
            if not name:
                base = m.get("generateName") or ""
                if not base:
                    raise invalid(res, "", [("metadata.name", "FieldValueRequired",
                                             "Required value: name or generateName is required")])
                for _ in range(100):
                    name = base[:MAX_GENERATE_NAME_BASE] + random_suffix()
                    if self.get(res, ns, name) is None:
                        break
            if len(name) > 253 or not DNS1123_SUBDOMAIN.fullmatch(name):
                raise invalid(res, name, [(
                    "metadata.name", "FieldValueInvalid",
                    f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of '
                    "lower case alphanumeric characters, '-' or '.', and must start and end "
                    "with an alphanumeric character (e.g. 'example.com', regex used for "
                    r"validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*"
                    r"[a-z0-9])?)*')")])
            for k in ("deletionTimestamp", "deletionGracePeriodSeconds", "generation",
                      "selfLink"):
                m.pop(k, None)
            m.update(name=name, namespace=ns, uid=str(uuid.uuid4()),
                     creationTimestamp=now_ts())
            if res.generation:
                m["generation"] = 1
            if res is SESSIONS:
                obj.pop("status", None)
            elif res is JOBS:
                obj["status"] = {}
            elif res is PODS:
                obj["status"] = {"phase": "Pending", "qosClass": qos_class(obj)}
            obj = self._admit(res, obj, name)
            if self.get(res, ns, name) is not None:
                raise ApiError(409, "AlreadyExists",
                               f'{res.qualified} "{name}" already exists', res.details(name))
            self._commit(res, ns, name, obj, "ADDED")
            return obj

    def replace(self, res, ns, name, body, sub=None):
        obj = self._decode(res, body)
        m = obj["metadata"]
        if m.get("name") != name:
            raise bad_request(f"the name of the object ({m.get('name', '')}) does not match "
                              f"the name on the URL ({name})")
        if m.get("namespace") not in (None, "", ns):
            raise bad_request("the namespace of the provided object does not match the "
                              "namespace sent on the request")
        with self.lock:
            cur = self.must_get(res, ns, name)
            cm = cur["metadata"]
            rv = m.get("resourceVersion")
            if rv and rv != cm["resourceVersion"]:
                raise conflict(res, name)
            if m.get("uid") and m["uid"] != cm["uid"]:
                raise conflict(res, name, f"Precondition failed: UID in precondition: "
                                          f"{m['uid']}, UID in object meta: {cm['uid']}")
            if sub == "status":
                new = clone(cur)
                if "status" in obj:
                    new["status"] = obj["status"]
                else:
                    new.pop("status", None)
            else:
                new = obj
                for k in ("uid", "creationTimestamp", "deletionTimestamp",
                          "deletionGracePeriodSeconds", "generation"):
                    if k in cm:
                        m[k] = cm[k]
                    else:
                        m.pop(k, None)
                m["namespace"] = ns
                if res.status_subresource:
                    if "status" in cur:
                        new["status"] = cur["status"]
                    else:
                        new.pop("status", None)
            new = self._admit(res, new, name)
            nm = new["metadata"]
            if res.generation:
                nm["generation"] = cm.get("generation", 1) + (new.get("spec") != cur.get("spec"))
            nm["resourceVersion"] = cm["resourceVersion"]
            if new == cur:
                return cur
            self._commit(res, ns, name, new, "MODIFIED")
            self._finalize_if_done(res, new)
            return new

    def patch(self, res, ns, name, patch, sub=None):
        if not isinstance(patch, dict):
            raise bad_request("a merge patch must be a JSON object")
        with self.lock:
            cur = self.must_get(res, ns, name)
            merged = merge_patch(clone(cur), patch)
            if not isinstance(merged.get("metadata"), dict):
                merged["metadata"] = {}
            if "resourceVersion" not in (patch.get("metadata") or {}):
                merged["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"]
            return self.replace(res, ns, name, merged, sub)

    def delete(self, res, ns, name, policy=None, grace=None, preconditions=None):
        with self.lock:
            cur = self.must_get(res, ns, name)
            cm, pre = cur["metadata"], preconditions or {}
            if pre.get("uid") and pre["uid"] != cm["uid"]:
                raise conflict(res, name, f"Precondition failed: UID in precondition: "
                                          f"{pre['uid']}, UID in object meta: {cm['uid']}")
            if pre.get("resourceVersion") and pre["resourceVersion"] != cm["resourceVersion"]:
                raise conflict(res, name, "Precondition failed: ResourceVersion in precondition: "
                                          f"{pre['resourceVersion']}, ResourceVersion in object "
                                          f"meta: {cm['resourceVersion']}")
            if policy is None:
                policy = "Orphan" if res is JOBS else "Background"
            return self._delete(res, cur, policy, grace)

    def _delete(self, res, cur, policy, grace=None):
        m = cur["metadata"]
        ns, name, uid = m["namespace"], m["name"], m["uid"]
        if m.get("deletionTimestamp"):
            if res is PODS and self.kubelet is not None:
                self.kubelet.request_delete(uid, grace)   # a shorter grace period wins
            return cur
        if policy == "Orphan":
            for key in self.dependents(uid):
                dep = clone(self.objects[key])
                refs = [r for r in dep["metadata"]["ownerReferences"] if r.get("uid") != uid]
                if refs:
                    dep["metadata"]["ownerReferences"] = refs
                else:
                    del dep["metadata"]["ownerReferences"]
                self._commit(BY_PLURAL[key[0]], key[1], key[2], dep, "MODIFIED")
        finalizers = list(m.get("finalizers") or [])
        if policy == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        graceful = res is PODS and self.kubelet is not None and self.kubelet.running(uid)
        if not finalizers and not graceful:
            self._remove(res, cur)
            return cur
        new = clone(cur)
        nm = new["metadata"]
        nm["deletionTimestamp"] = now_ts()
        if res is PODS:
            spec_grace = (cur.get("spec") or {}).get("terminationGracePeriodSeconds")
            nm["deletionGracePeriodSeconds"] = int(
                grace if grace is not None else spec_grace if spec_grace is not None
                else DEFAULT_GRACE_S)
        else:
            nm["deletionGracePeriodSeconds"] = 0
        if finalizers:
            nm["finalizers"] = finalizers
        self._commit(res, ns, name, new, "MODIFIED")
        if graceful:
            self.kubelet.request_delete(uid, grace)
        if policy == "Foreground":
            for key in self.dependents(uid):
                dep = self.objects.get(key)
                if dep is not None:
                    self._delete(BY_PLURAL[key[0]], dep, "Foreground")
        return self._finalize_if_done(res, self.objects.get((res.plural, ns, name)) or new)

    def _finalize_if_done(self, res, obj):
        """A deleting object goes once its finalizers are gone (foregroundDeletion: once
        its dependents are gone) and, for a Pod, once the kubelet is done with it."""
        m = obj["metadata"]
        if not m.get("deletionTimestamp"):
            return obj
        cur = self.get(res, m["namespace"], m["name"])
        if cur is None or cur["metadata"]["uid"] != m["uid"]:
            return obj
        fin = cur["metadata"].get("finalizers") or []
        if "foregroundDeletion" in fin and not self.dependents(m["uid"]):
            cur = clone(cur)
            rest = [f for f in fin if f != "foregroundDeletion"]
            if rest:
                cur["metadata"]["finalizers"] = rest
            else:
                del cur["metadata"]["finalizers"]
            self._commit(res, m["namespace"], m["name"], cur, "MODIFIED")
        if cur["metadata"].get("finalizers"):
            return cur
        if res is PODS and self.kubelet is not None and self.kubelet.running(m["uid"]):
            return cur
        self._remove(res, cur)
        return cur

    def _remove(self, res, cur):
        m = cur["metadata"]
        self._commit(res, m["namespace"], m["name"], clone(cur), "DELETED")
        # The garbage collector: dependents none of whose owners is left go too...
        for key in self.dependents(m["uid"]):
            dep = self.objects.get(key)
            if dep is not None and not any(self.owner_exists(u, key[1]) for u in owner_uids(dep)):
                self._delete(BY_PLURAL[key[0]], dep, "Background")
        # ... and owners deleted in the foreground may now be free to go.
        for u in owner_uids(cur):
            key = self.by_uid.get(u)
            if key is not None:
                self._finalize_if_done(BY_PLURAL[key[0]], self.objects[key])

    def collect_if_orphaned(self, res, ns, name, uid):
        """The garbage collector's check of an object whose owners may never have existed."""
        with self.lock:
            obj = self.get(res, ns, name)
            if obj is None or obj["metadata"]["uid"] != uid \
                    or obj["metadata"].get("deletionTimestamp"):
                return
            owners = owner_uids(obj)
            if owners and not any(self.owner_exists(u, ns) for u in owners):
                self._delete(res, obj, "Background")

    def set_status(self, res, ns, name, uid, status, node_name=None):
        """A controller's or the kubelet's own status write; False when the object is gone."""
        with self.lock:
            cur = self.get(res, ns, name)
            if cur is None or cur["metadata"]["uid"] != uid:
                return False
            new = clone(cur)
            new["status"] = status
            if node_name and not (new.get("spec") or {}).get("nodeName"):
                new.setdefault("spec", {})["nodeName"] = node_name
            if new != cur:
                self._commit(res, ns, name, new, "MODIFIED")
            return True


def container_errors(spec, path):
    cs = spec.get("containers")
    if not isinstance(cs, list) or not cs:
        return [(f"{path}.containers", "FieldValueRequired", "Required value")]
    errs = []
    for kind in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(kind) or []):
            if not isinstance(c, dict) or not c.get("name"):
                errs.append((f"{path}.{kind}[{i}].name", "FieldValueRequired", "Required value"))
            elif not c.get("image"):
                errs.append((f"{path}.{kind}[{i}].image", "FieldValueRequired", "Required value"))
    return errs


# ---------------------------------------------------------------------------------------
# The Job controller and the garbage collector's sweep of dangling owner references

def ctrl_job_name(pod):
    for r in pod["metadata"].get("ownerReferences") or []:
        if r.get("controller") and r.get("kind") == "Job" and r.get("apiVersion") == "batch/v1":
            return r.get("name"), r.get("uid")
    return None, None


class Controller:
    """Reacts to store events on its own thread: Jobs get their Pod and their status, Pods
    are handed to the kubelet, objects with dangling owner references are collected.

    Work is a delayed queue with one entry per item, as client-go's workqueue: a new Job is
    synced at once, but a Job's Pod changes (and its own updates) are batched for
    batch_period seconds, as Kubernetes' Job controller does (syncJobBatchPeriod, 1 s), so
    a Job's status follows its Pod's by about that much, as in a real cluster."""

    def __init__(self, store, kubelet, log, batch_period=1.0):
        self.store, self.kubelet, self.log = store, kubelet, log
        self.batch_period = batch_period
        self.cv = threading.Condition()   # taken after the store lock, never before
        self.heap = []                    # (due, sequence, item)
        self.due = {}                     # item -> its earliest due time
        self.seq = 0
        self.stopping = False
        self.thread = threading.Thread(target=self.run, name="controller", daemon=True)

    def put(self, item, delay=0.0):
        due = time.monotonic() + delay
        with self.cv:
            if item in self.due and self.due[item] <= due:
                return
            self.due[item] = due
            self.seq += 1
            heapq.heappush(self.heap, (due, self.seq, item))
            self.cv.notify()

    def on_event(self, ev):   # under the store lock: only enqueue
        m = ev.obj["metadata"]
        if ev.res is JOBS and ev.type != "DELETED":
            self.put(("job", ev.ns, m["name"]), 0.0 if ev.type == "ADDED" else self.batch_period)
        elif ev.res is PODS:
            if ev.type == "ADDED" and self.kubelet is not None:
                self.put(("pod", ev.ns, m["name"]))
            job, _ = ctrl_job_name(ev.obj)
            if job:
                self.put(("job", ev.ns, job), self.batch_period)
        if ev.type != "DELETED":
            owners = owner_uids(ev.obj)
            if owners and not any(self.store.owner_exists(u, ev.ns) for u in owners):
                self.put(("gc", ev.res, ev.ns, m["name"], m["uid"]))

    def next_item(self):
        """The next item due, or None once stopping."""
        with self.cv:
            while not self.stopping:
                now = time.monotonic()
                if self.heap and self.heap[0][0] <= now:
                    due, _, item = heapq.heappop(self.heap)
                    if self.due.get(item) == due:   # else superseded by an earlier entry
                        del self.due[item]
                        return item
                    continue
                self.cv.wait(self.heap[0][0] - now if self.heap else None)
        return None

    def run(self):
        while True:
            item = self.next_item()
            if item is None:
                return
            try:
                if item[0] == "job":
                    self.sync_job(item[1], item[2])
                elif item[0] == "pod":
                    self.kubelet.start_pod(item[1], item[2])
                else:
                    self.store.collect_if_orphaned(*item[1:])
            except Exception:   # a bug here must not stop every later Job
                self.log(f"controller: {item}: {traceback.format_exc()}")

    def stop(self):
        with self.cv:
            self.stopping = True
            self.cv.notify()
        if self.thread.is_alive():
            self.thread.join(5)

    def sync_job(self, ns, name):
        st = self.store
        with st.lock:
            job = st.get(JOBS, ns, name)
            if job is None or job["metadata"].get("deletionTimestamp"):
                return
            status = job.get("status") or {}
            if any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
                   for c in status.get("conditions") or []):
                return
            uid = job["metadata"]["uid"]
            if not status.get("startTime"):
                if self.kubelet is None:
                    return   # --no-kubelet: Jobs are only stored
                try:
                    pod = st.create(PODS, ns, pod_for_job(job))
                except ApiError as e:
                    self.log(f"job {ns}/{name}: creating its Pod failed: {e.message}")
                    return
                self.log(f"job {ns}/{name}: created Pod {pod['metadata']['name']}")
                st.set_status(JOBS, ns, name, uid, {"startTime": now_ts(), "active": 1, "ready": 0})
                return
            pods = [p for p in st.select(PODS, ns) if ctrl_job_name(p)[1] == uid]
            phase = pods[-1]["status"].get("phase") if pods else None
            new = {k: v for k, v in status.items() if k in ("startTime",)}
            t = now_ts()
            if phase == "Succeeded":
                new.update(ready=0, succeeded=1, completionTime=t, conditions=[
                    {"type": "Complete", "status": "True", "lastProbeTime": t,
                     "lastTransitionTime": t}])
            elif phase == "Failed" or not pods:
                new.update(ready=0, failed=1, conditions=[
                    {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                     "message": "Job has reached the specified backoff limit",
                     "lastProbeTime": t, "lastTransitionTime": t}])
            else:
                ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                            for c in pods[-1]["status"].get("conditions") or [])
                new.update(active=1, ready=int(ready))
            if new != status:
                st.set_status(JOBS, ns, name, uid, new)


def pod_for_job(job):
    jm = job["metadata"]
    tmpl = job["spec"].get("template") or {}
    tm = tmpl.get("metadata") or {}
    labels = dict(tm.get("labels") or {})
    labels.update({"controller-uid": jm["uid"], "job-name": jm["name"],
                   "batch.kubernetes.io/controller-uid": jm["uid"],
                   "batch.kubernetes.io/job-name": jm["name"]})
    meta = {"generateName": jm["name"] + "-", "labels": labels,
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": jm["name"],
                                 "uid": jm["uid"], "controller": True,
                                 "blockOwnerDeletion": True}]}
    if tm.get("annotations"):
        meta["annotations"] = dict(tm["annotations"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": clone(tmpl.get("spec") or {})}


# ---------------------------------------------------------------------------------------
# The kubelet

def expand(text, lookup):
    """Kubernetes' $(VAR) expansion: a defined VAR is replaced, an undefined one is left as
    written, $$ is a literal $, any other $ stays."""
    out, i, n = [], 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "$" or i + 1 == n:
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            j = text.find(")", i + 2)
            if j < 0:
                out.append("$(")
                i += 2
                continue
            var = text[i + 2:j]
            val = lookup(var)
            out.append(val if val is not None else f"$({var})")
            i = j + 1
        else:
            out.append("$" + nxt)
            i += 2
    return "".join(out)


def secret_data(obj):
    return {k: base64.b64decode(v).decode("utf-8", "surrogateescape")
            for k, v in (obj.get("data") or {}).items()}


FIELD_LABEL = re.compile(r"""metadata\.(labels|annotations)\[['"](.+)['"]\]""")


def field_ref(pod, path):
    m, spec = pod["metadata"], pod.get("spec") or {}
    simple = {"metadata.name": m["name"], "metadata.namespace": m["namespace"],
              "metadata.uid": m["uid"], "spec.nodeName": spec.get("nodeName") or NODE_NAME,
              "spec.serviceAccountName": spec.get("serviceAccountName") or "default",
              "status.hostIP": NODE_IP, "status.hostIPs": NODE_IP, "status.podIP": NODE_IP,
              "status.podIPs": NODE_IP}
    if path in simple:
        return simple[path]
    lm = FIELD_LABEL.fullmatch(path)
    if lm:
        return (m.get(lm.group(1)) or {}).get(lm.group(2), "")
    raise ConfigError(f"unsupported fieldPath: {path}")


def container_pids(main_pid):
    """The live processes of a container: its session (the main process leads it) and the
    descendants of those, found in /proc."""
    procs = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != b"Z":
            procs[int(d)] = (int(fields[1]), int(fields[3]))   # ppid, session
    found = {p for p, (_, sid) in procs.items() if sid == main_pid}
    if main_pid in procs:
        found.add(main_pid)
    stack = list(found)
    while stack:
        parent = stack.pop()
        for p, (ppid, _) in procs.items():
            if ppid == parent and p not in found:
                found.add(p)
                stack.append(p)
    return found


def kill_container(main_pid):
    """SIGKILLs every process of the container until none is left (bounded)."""
    for _ in range(50):
        pids = container_pids(main_pid)
        if not pids:
            return
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.01)


class Container:
    """One container of a Pod as the kubelet runs it."""

    def __init__(self, spec, init, pod_dir):
        self.spec, self.init = spec, init
        self.name = spec.get("name") or "?"
        self.image = spec.get("image") or ""
        self.state = {"waiting": {"reason": "PodInitializing" if init else "ContainerCreating"}}
        self.ready = self.started = False
        self.proc = None
        self.exited = False      # the main process has exited (not yet reaped)
        self.reaped = False
        self.exit_code = None
        self.started_at = None
        self.log_file = None
        self.log_path = os.path.join(pod_dir, "logs", f"{self.name}.log")
        self.term_path = os.path.join(pod_dir, "term", self.name)

    def status(self):
        s = {"name": self.name, "state": self.state, "lastState": {}, "ready": self.ready,
             "restartCount": 0, "image": self.image, "imageID": "", "started": self.started}
        if self.proc is not None:
            s["containerID"] = f"standin://{self.proc.pid}"
        return s

    def waiting(self, reason, message=None):
        w = {"reason": reason}
        if message:
            w["message"] = message
        self.state = {"waiting": w}

    def terminated(self, code, reason, message=None):
        t = {"exitCode": code, "reason": reason}
        if message:
            t["message"] = message
        t["startedAt"] = self.started_at or now_ts()
        t["finishedAt"] = now_ts()
        if self.proc is not None:
            t["containerID"] = f"standin://{self.proc.pid}"
        self.state = {"terminated": t}
        self.exit_code = code
        self.ready = self.started = False


class PodWorker(threading.Thread):
    """Runs one Pod from start to end; every wait is on the store's condition, so a
    deletion, a process exit or a new Secret wakes it."""

    def __init__(self, kubelet, pod):
        m = pod["metadata"]
        super().__init__(name=f"pod-{m['name']}", daemon=True)
        self.kubelet, self.store = kubelet, kubelet.store
        self.ns, self.pod_name, self.uid = m["namespace"], m["name"], m["uid"]
        self.pod = pod
        self.spec = pod.get("spec") or {}
        self.dir = kubelet.pod_dir(self.ns, self.pod_name, self.uid)
        self.inits = [Container(c, True, self.dir) for c in self.spec.get("initContainers") or []]
        self.mains = [Container(c, False, self.dir) for c in self.spec.get("containers") or []]
        for c in self.mains if self.inits else ():
            c.waiting("PodInitializing")
        self.phase = "Pending"
        self.start_time = now_ts()
        self.qos = (pod.get("status") or {}).get("qosClass", "BestEffort")
        self.transitions = {}    # condition type -> (status, lastTransitionTime)
        self.deleting = False
        self.grace = None        # seconds, once deleting
        self.kill_at = None      # monotonic time of the SIGKILL, once deleting

    # -- called under the store lock
    def request_delete(self, grace):
        if grace is None:
            g = self.spec.get("terminationGracePeriodSeconds")
            grace = DEFAULT_GRACE_S if g is None else g
        grace = max(0.0, float(grace))
        if self.kubelet.max_grace is not None:
            grace = min(grace, self.kubelet.max_grace)
        if self.grace is None or grace < self.grace:
            self.grace = grace
            self.kill_at = time.monotonic() + grace
        self.deleting = True
        self.store.changed.notify_all()

    def stopped(self):
        return self.deleting or self.kubelet.stopping

    def wait(self, until, timeout):
        """Waits (bounded) for until() under the store lock; returns its value."""
        deadline = time.monotonic() + timeout
        with self.store.lock:
            while not until():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.store.changed.wait(left)
            return until()

    # -- status
    def condition(self, ctype, ok, reason=None, message=None):
        value = "True" if ok else "False"
        prev = self.transitions.get(ctype)
        if prev is None or prev[0] != value:
            self.transitions[ctype] = prev = (value, now_ts())
        c = {"type": ctype, "status": value, "lastProbeTime": None, "lastTransitionTime": prev[1]}
        if not ok and reason:
            c["reason"] = reason
            if message:
                c["message"] = message
        return c

    def push(self):
        terminal = self.phase in ("Succeeded", "Failed")
        incomplete = [c.name for c in self.inits if c.exit_code != 0]
        unready = [c.name for c in self.mains if not c.ready]
        if terminal:
            init_why = ready_why = ("PodCompleted", None)
        else:
            init_why = ("ContainersNotInitialized",
                        f"containers with incomplete status: [{' '.join(incomplete)}]")
            ready_why = ("ContainersNotReady",
                         f"containers with unready status: [{' '.join(unready)}]")
        conds = [self.condition("Initialized", not incomplete, *init_why),
                 self.condition("Ready", not unready, *ready_why),
                 self.condition("ContainersReady", not unready, *ready_why),
                 self.condition("PodScheduled", True)]
        status = {"phase": self.phase, "conditions": conds, "hostIP": NODE_IP,
                  "hostIPs": [{"ip": NODE_IP}], "podIP": NODE_IP, "podIPs": [{"ip": NODE_IP}],
                  "startTime": self.start_time}
        if self.inits:
            status["initContainerStatuses"] = [clone(c.status()) for c in self.inits]
        status["containerStatuses"] = [clone(c.status()) for c in self.mains]
        status["qosClass"] = self.qos
        self.store.set_status(PODS, self.ns, self.pod_name, self.uid, status, NODE_NAME)

    # -- the run
    def run(self):
        try:
            self.run_pod()
        except Exception:
            self.kubelet.log(f"kubelet: {self.ns}/{self.pod_name}: {traceback.format_exc()}")
        finally:
            for c in self.inits + self.mains:
                if c.proc is not None and not c.reaped:
                    self.reap(c)
            self.kubelet.worker_done(self)

    def run_pod(self):
        for sub in ("home", "cwd", "logs", "term", "volumes", "root"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        self.push()
        for c in self.inits:
            if not self.launch(c):
                return
            self.wait_exit([c])
            if c.exit_code != 0:
                self.finish()
                return
        for c in self.mains:
            if not self.launch(c):
                # deleted while waiting: the others that run are stopped by wait_exit
                break
        self.wait_exit(self.mains)
        self.finish()

    def finish(self):
        if self.stopped() and not any(c.proc for c in self.inits + self.mains):
            return   # deleted before anything ran: the Pod simply goes
        codes = [c.exit_code for c in self.inits + self.mains if c.exit_code is not None]
        all_done = all(c.exit_code is not None for c in self.mains)
        self.phase = "Failed" if any(codes) or not all_done else "Succeeded"
        self.push()

    def launch(self, c):
        """Starts c once its image and configuration allow; False when the Pod is deleted
        (or the kubelet stops) first."""
        reported_pull = False
        while True:
            if self.stopped():
                return False
            entrypoint = self.kubelet.images.get(c.image)
            if entrypoint is None:
                if not reported_pull:
                    reported_pull = True
                    c.waiting("ErrImagePull",
                              f'rpc error: code = NotFound desc = failed to pull and unpack image '
                              f'"{c.image}": failed to resolve reference "{c.image}": {c.image}: '
                              f'not found')
                    self.push()
                    if self.wait(self.stopped, 0.5):
                        return False
                    c.waiting("ImagePullBackOff", f'Back-off pulling image "{c.image}"')
                    self.push()
                self.wait(self.stopped, 5)
                continue
            try:
                with self.store.lock:
                    env = self.container_env(c)
            except ConfigError as e:
                c.waiting("CreateContainerConfigError", str(e))
                self.push()
                rv = self.store.rv
                self.wait(lambda: self.stopped() or self.store.rv != rv, 1.0)
                continue
            break
        self.start_container(c, entrypoint, env)
        return True

    def ref_data(self, res, ref):
        """The data of the Secret or ConfigMap `ref` names; None when it is absent and
        optional, ConfigError when it is absent and required."""
        obj = self.store.get(res, self.ns, ref.get("name", ""))
        if obj is None:
            if ref.get("optional"):
                return None
            raise ConfigError(f'{res.kind.lower()} "{ref.get("name", "")}" not found')
        return secret_data(obj) if res is SECRETS else (obj.get("data") or {})

    def container_env(self, c):
        """envFrom then env, resolved as the kubelet does (under the store lock)."""
        out = {}
        for src in c.spec.get("envFrom") or []:
            prefix = src.get("prefix") or ""
            if "secretRef" in src:
                ref, res = src["secretRef"], SECRETS
            elif "configMapRef" in src:
                ref, res = src["configMapRef"], CONFIGMAPS
            else:
                continue
            data = self.ref_data(res, ref)
            if data is None:
                continue
            for k, v in data.items():
                if k and "=" not in k:
                    out[prefix + k] = v
        for e in c.spec.get("env") or []:
            name = e.get("name")
            if not name:
                continue
            vf = e.get("valueFrom")
            if vf is None:
                out[name] = expand(str(e.get("value", "")), out.get)
                continue
            if "fieldRef" in vf:
                out[name] = field_ref(self.pod, (vf["fieldRef"] or {}).get("fieldPath", ""))
                continue
            if "secretKeyRef" in vf or "configMapKeyRef" in vf:
                res = SECRETS if "secretKeyRef" in vf else CONFIGMAPS
                ref = vf["secretKeyRef"] if res is SECRETS else vf["configMapKeyRef"]
                data = self.ref_data(res, ref)
                if data is None:
                    continue
                if ref.get("key") not in data:
                    if ref.get("optional"):
                        continue
                    raise ConfigError(f"couldn't find key {ref.get('key')} in {res.kind} "
                                      f"{self.ns}/{ref.get('name')}")
                out[name] = data[ref["key"]]
                continue
            raise ConfigError(f"env {name}: this valueFrom is not supported by the stand-in")
        return out

    def mounts(self, c):
        """(path in the container, local path) pairs, longest first."""
        out = []
        for vm in c.spec.get("volumeMounts") or []:
            mp = (vm.get("mountPath") or "").rstrip("/")
            if not mp:
                continue
            local = os.path.join(self.dir, "volumes", vm.get("name") or "unnamed")
            if vm.get("subPath"):
                local = os.path.join(local, vm["subPath"])
            os.makedirs(local, exist_ok=True)
            out.append((mp, local))
        out.append((c.spec.get("terminationMessagePath") or "/dev/termination-log", c.term_path))
        return sorted(out, key=lambda p: -len(p[0]))

    @staticmethod
    def rewrite(value, mounts):
        for mp, local in mounts:
            if value == mp or value.startswith(mp + "/"):
                return local + value[len(mp):]
        return value

    def start_container(self, c, entrypoint, cenv):
        mounts = self.mounts(c)
        spec = c.spec
        if spec.get("command"):
            argv = [expand(str(a), cenv.get) for a in spec["command"]]
            argv += [expand(str(a), cenv.get) for a in spec.get("args") or []]
        else:
            argv = list(entrypoint) + [expand(str(a), cenv.get) for a in spec.get("args") or []]
        argv = [self.rewrite(a, mounts) for a in argv]
        env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
               "HOME": os.path.join(self.dir, "home"), "HOSTNAME": self.pod_name}
        env.update(self.kubelet.image_env.get(c.image, {}))
        env.update(cenv)
        env = {k: self.rewrite(v, mounts) for k, v in env.items()}
        env["TERMINATION_LOG"] = c.term_path
        if spec.get("workingDir"):
            cwd = self.rewrite(spec["workingDir"], mounts)
            if cwd == spec["workingDir"]:
                cwd = os.path.join(self.dir, "root", spec["workingDir"].lstrip("/"))
        else:
            cwd = os.path.join(self.dir, "cwd")
        os.makedirs(cwd, exist_ok=True)
        open(c.term_path, "wb").close()
        c.log_file = open(c.log_path, "ab")
        c.started_at = now_ts()
        exe = argv[0] if argv else ""
        found = (os.path.join(cwd, exe) if "/" in exe else
                 shutil.which(exe, path=env.get("PATH")) if exe else None)
        if not found or not os.access(found, os.X_OK) or os.path.isdir(found):
            why = (f'exec: "{exe}": executable file not found in $PATH' if "/" not in exe else
                   f"exec: {exe}: no such file or directory")
            c.log_file.close()
            c.terminated(128, "StartError", "failed to create containerd task: failed to create "
                         "shim task: OCI runtime create failed: runc create failed: unable to "
                         f"start container process: {why}: unknown")
            c.reaped = True
            self.push()
            return
        try:
            c.proc = subprocess.Popen(
                ([SETPRIV, "--pdeathsig", "KILL", "--"] if SETPRIV else []) + argv,
                env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=c.log_file,
                stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
        except OSError as e:
            c.log_file.close()
            c.terminated(128, "StartError", f"failed to start container process: {e}")
            c.reaped = True
            self.push()
            return
        c.state = {"running": {"startedAt": c.started_at}}
        c.started = True
        c.ready = not c.init
        if not c.init:
            self.phase = "Running"
        self.kubelet.log(f"kubelet: {self.ns}/{self.pod_name}: container {c.name} started, "
                         f"pid {c.proc.pid}: {argv}")
        threading.Thread(target=self.watch_exit, args=(c,), daemon=True).start()
        self.push()

    def watch_exit(self, c):
        # WNOWAIT: the process stays a zombie, so its pid (and session id) cannot be reused
        # before reap() has killed what it left behind.
        try:
            os.waitid(os.P_PID, c.proc.pid, os.WEXITED | os.WNOWAIT)
        except ChildProcessError:
            pass
        with self.store.lock:
            c.exited = True
            self.store.changed.notify_all()

    def wait_exit(self, cs):
        """Waits until every started container of cs has exited and been reaped; a deletion
        or a stop sends SIGTERM to their main processes, then SIGKILL at the deadline."""
        termed = False
        while True:
            with self.store.lock:
                live = [c for c in cs if c.proc is not None and not c.reaped]
                exited = [c for c in live if c.exited]
                stopping = self.kubelet.stopping
                kill = stopping or (self.deleting and time.monotonic() >= self.kill_at)
                term = self.deleting and not termed and not kill
            for c in exited:
                self.reap(c)
                self.push()
            live = [c for c in live if not c.reaped]
            if not live:
                return
            if term:
                termed = True
                for c in live:
                    self.kubelet.log(f"kubelet: {self.ns}/{self.pod_name}: SIGTERM to "
                                     f"container {c.name} (grace {self.grace:g}s)")
                    try:
                        os.kill(c.proc.pid, signal.SIGTERM)
                    except OSError:
                        pass
            if kill:
                for c in live:
                    kill_container(c.proc.pid)
            with self.store.lock:
                if not any(c.exited for c in live):
                    left = 1.0 if self.kill_at is None else self.kill_at - time.monotonic()
                    self.store.changed.wait(min(1.0, max(0.01, left)))

    def reap(self, c):
        kill_container(c.proc.pid)   # what the container left behind dies with it
        code = c.proc.wait()
        if code < 0:
            code = 128 - code
        c.log_file.close()
        with self.store.lock:
            c.reaped = True
        try:
            with open(c.term_path, "rb") as f:
                msg = f.read(TERMINATION_MESSAGE_MAX)
        except OSError:
            msg = b""
        fallback = c.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError"
        if not msg and code != 0 and fallback:
            try:
                with open(c.log_path, "rb") as f:
                    tail = b"".join(f.read().splitlines(keepends=True)[-FALLBACK_LOG_LINES:])
                msg = tail[-FALLBACK_LOG_BYTES:]
            except OSError:
                pass
        c.terminated(code, "Completed" if code == 0 else "Error",
                     msg.decode("utf-8", "replace") or None)
        self.kubelet.log(f"kubelet: {self.ns}/{self.pod_name}: container {c.name} exited {code}")


class Kubelet:
    """Starts a PodWorker for each Pod and answers the store about running Pods."""

    def __init__(self, store, images, image_env, workdir, max_grace, log):
        self.store, self.images, self.image_env = store, images, image_env
        self.workdir, self.max_grace, self.log = workdir, max_grace, log
        self.workers = {}        # pod uid -> PodWorker, while it runs
        self.stopping = False

    def pod_dir(self, ns, name, uid):
        return os.path.join(self.workdir, "pods", f"{ns}_{name}_{uid[:8]}")

    def start_pod(self, ns, name):
        with self.store.lock:
            pod = self.store.get(PODS, ns, name)
            if self.stopping or pod is None or pod["metadata"]["uid"] in self.workers \
                    or pod["metadata"].get("deletionTimestamp") \
                    or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                return
            w = PodWorker(self, pod)
            self.workers[w.uid] = w
            w.start()

    def running(self, uid):   # under the store lock
        return uid in self.workers

    def request_delete(self, uid, grace):   # under the store lock
        w = self.workers.get(uid)
        if w is not None:
            w.request_delete(grace)

    def worker_done(self, w):
        with self.store.lock:
            self.workers.pop(w.uid, None)
            pod = self.store.get(PODS, w.ns, w.pod_name)
            if pod is not None and pod["metadata"]["uid"] == w.uid:
                self.store._finalize_if_done(PODS, pod)

    def container_state(self, ns, name, cname):
        """(log path, running) of a container, or None before it started."""
        with self.store.lock:
            pod = self.store.get(PODS, ns, name)
            if pod is None:
                return None
            w = self.workers.get(pod["metadata"]["uid"])
            path = os.path.join(self.pod_dir(ns, name, pod["metadata"]["uid"]), "logs",
                                f"{cname}.log")
            running = w is not None and any(c.name == cname and c.proc is not None
                                            and not c.reaped for c in w.inits + w.mains)
        return (path, running) if os.path.exists(path) else None

    def stop(self):
        with self.store.lock:
            self.stopping = True
            workers = list(self.workers.values())
            self.store.changed.notify_all()
        for w in workers:
            w.join(10)


# ---------------------------------------------------------------------------------------
# HTTP

def query_flag(q, name):
    return q.get(name, "").lower() in ("1", "true")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kube-apiserver-standin"
    # TCP_NODELAY, as Go's net/http sets it: the headers and the body are two send()s, and
    # with Nagle's algorithm the body would wait for the client's delayed ACK (40 ms) on
    # every request of a kept-alive connection.
    disable_nagle_algorithm = True

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def log_message(self, fmt, *args):
        self.server.api.log(f"{self.address_string()} {fmt % args}")

    # -- plumbing
    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts, total = [], 0
            while True:
                size = int(self.rfile.readline(1024).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                total += size
                if total > MAX_BODY:
                    self.close_connection = True
                    raise ApiError(413, "RequestEntityTooLarge", "the request is too large")
                parts.append(self.rfile.read(size))
                self.rfile.readline(1024)
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            self.close_connection = True
            raise ApiError(413, "RequestEntityTooLarge", "the request is too large")
        return self.rfile.read(n) if n else b""

    def send(self, code, data, ctype="application/json", headers=None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Cache-Control", "no-cache, private")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        if self.entry is not None:
            self.entry["status"] = code

    def send_json(self, code, obj, headers=None):
        self.send(code, dumps(obj).encode(), headers=headers)

    def start_chunked(self, ctype):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if self.entry is not None:
            self.entry["status"] = 200

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def cut(self):
        """Ends a stream as a dying server would: no final chunk, the connection closed."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def client_gone(self):
        """True when the client has closed its end (a watch's only way to notice)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def dispatch(self, method):
        api = self.server.api
        self.entry = None
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        q = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        body = b""
        try:
            try:
                body = self.read_body()
            finally:
                self.entry = api.record(method, path, url.query,
                                        self.headers.get("Content-Type", ""), body,
                                        self.headers.get("User-Agent", ""))
            if path.startswith("/_test/"):
                return self.test_hook(method, path, q)
            if api.token is not None and \
                    self.headers.get("Authorization", "") != f"Bearer {api.token}":
                raise ApiError(401, "Unauthorized", "Unauthorized")
            rule = api.take_rule(api.fail_rules, method, path)
            if rule is not None:
                code = rule["status"]
                raise ApiError(code, REASONS.get(code, "InternalError"),
                               f"injected by /_test/fail (HTTP {code})",
                               headers={"Retry-After": "1"} if code in (429, 503) else None)
            accept = self.headers.get("Accept", "")
            if accept and not any(t in accept for t in ("json", "*/*", "text/plain")):
                raise ApiError(406, "NotAcceptable", "only the following media types are "
                               "accepted: application/json")
            self.route(method, path, q, body)
        except ApiError as e:
            self.send_json(e.code, e.status(), e.headers)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:
            api.log(f"{method} {self.path}: {traceback.format_exc()}")
            self.send_json(500, ApiError(500, "InternalError", "internal error in the "
                                         "stand-in (see its log)").status())

    def json_body(self, body):
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype not in ("", "application/json"):
            raise ApiError(415, "UnsupportedMediaType", f'the body of the request was in an '
                           f'unknown format - accepted media types include: application/json')
        try:
            return json.loads(body or b"null")
        except ValueError as e:
            raise bad_request(f"the body of the request is not valid JSON: {e}")

    # -- the API
    def route(self, method, path, q, body):
        api, store = self.server.api, self.server.api.store
        if path in ("/healthz", "/livez", "/readyz") and method == "GET":
            return self.send(200, b"ok", "text/plain; charset=utf-8")
        if path == "/version" and method == "GET":
            return self.send_json(200, {"major": "1", "minor": "30",
                                        "gitVersion": "v1.30.0-standin",
                                        "platform": "linux/amd64"})
        target = parse_path(path)
        if target is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        res, ns, name, sub = target
        if name is None:
            if method == "GET":
                if query_flag(q, "watch"):
                    return self.watch(res, ns, q)
                return self.send_json(200, self.list(res, ns, q))
            if method == "POST" and ns is not None:
                return self.send_json(201, store.create(res, ns, self.json_body(body)))
            if method == "DELETE" and ns is not None:
                return self.delete_collection(res, ns, q, body)
            raise ApiError(405, "MethodNotAllowed",
                           "the server does not allow this method on the requested resource")
        if sub == "log" and res is PODS and method == "GET":
            return self.pod_log(ns, name, q)
        if sub not in (None, "status") or (sub == "status" and not res.status_subresource):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if method == "GET":
            return self.send_json(200, store.must_get(res, ns, name))
        if method in ("PUT", "PATCH"):
            if api.take_rule(api.conflict_rules, method, path) is not None:
                raise conflict(res, name)
            if method == "PUT":
                return self.send_json(200, store.replace(res, ns, name, self.json_body(body), sub))
            return self.send_json(200, store.patch(res, ns, name, self.patch_body(res, body), sub))
        if method == "DELETE" and sub is None:
            policy, grace, pre = self.delete_options(q, body)
            obj = store.delete(res, ns, name, policy, grace, pre)
            headers = {"Warning": JOB_ORPHAN_WARNING} if res is JOBS and policy is None else None
            return self.send_json(200, obj, headers)
        raise ApiError(405, "MethodNotAllowed",
                       "the server does not allow this method on the requested resource")

    def patch_body(self, res, body):
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        accepted = ["application/merge-patch+json"]
        if not res.custom:
            accepted.append("application/strategic-merge-patch+json")
        if ctype not in accepted:
            raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an "
                           f"unknown format - accepted media types include: {', '.join(accepted)}")
        try:
            return json.loads(body or b"null")
        except ValueError as e:
            raise bad_request(f"the body of the request is not valid JSON: {e}")

    def delete_options(self, q, body):
        opts = self.json_body(body) if body.strip() else {}
        if not isinstance(opts, dict):
            raise bad_request("DeleteOptions must be a JSON object")
        policy = opts.get("propagationPolicy") or q.get("propagationPolicy") or None
        orphan = opts.get("orphanDependents")
        if orphan is None and "orphanDependents" in q:
            orphan = q["orphanDependents"].lower() in ("1", "true")
        if policy is None and orphan is not None:
            policy = "Orphan" if orphan else "Background"
        if policy not in (None, "Foreground", "Background", "Orphan"):
            raise ApiError(422, "Invalid", f'DeleteOptions.meta.k8s.io "" is invalid: '
                           f'propagationPolicy: Unsupported value: "{policy}": supported values: '
                           f'"Foreground", "Background", "Orphan"')
        grace = opts.get("gracePeriodSeconds")
        if grace is None and q.get("gracePeriodSeconds"):
            try:
                grace = int(q["gracePeriodSeconds"])
            except ValueError:
                raise bad_request("gracePeriodSeconds must be an integer")
        return policy, grace, opts.get("preconditions")

    def delete_collection(self, res, ns, q, body):
        store = self.server.api.store
        policy, grace, _ = self.delete_options(q, body)
        sel = Selector(res, q.get("labelSelector", ""), q.get("fieldSelector", ""))
        gone = []
        with store.lock:
            for obj in store.select(res, ns, sel):
                m = obj["metadata"]
                if store.get(res, ns, m["name"]) is not None:
                    gone.append(store.delete(res, ns, m["name"], policy, grace))
        self.send_json(200, self.list_body(res, gone, store.rv))

    @staticmethod
    def list_body(res, items, rv, cont=None, remaining=None):
        if not res.custom:   # lists of built-in kinds: items without kind/apiVersion
            items = [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for o in items]
        meta = {"resourceVersion": str(rv)}
        if cont:
            meta["continue"] = cont
            meta["remainingItemCount"] = remaining
        return {"kind": f"{res.kind}List", "apiVersion": res.api_version, "metadata": meta,
                "items": items}

    def list(self, res, ns, q):
        store = self.server.api.store
        sel = Selector(res, q.get("labelSelector", ""), q.get("fieldSelector", ""))
        start, rv = None, None
        if q.get("continue"):
            try:
                token = json.loads(base64.urlsafe_b64decode(q["continue"]))
                rv, start = int(token["rv"]), tuple(token["start"])
            except (ValueError, KeyError, TypeError, binascii.Error):
                raise bad_request("continue key is not valid")
        with store.lock:
            items = store.select(res, ns, sel)
            rv = store.rv if rv is None else rv
        if start is not None:
            items = [o for o in items
                     if (o["metadata"]["namespace"], o["metadata"]["name"]) > start]
        limit = int(q["limit"]) if q.get("limit", "").isdigit() else 0
        if limit and len(items) > limit:
            last = items[limit - 1]["metadata"]
            token = base64.urlsafe_b64encode(dumps(
                {"rv": rv, "start": [last["namespace"], last["name"]]}).encode()).decode()
            return self.list_body(res, items[:limit], rv, token, len(items) - limit)
        return self.list_body(res, items, rv)

    def watch(self, res, ns, q):
        api, store = self.server.api, self.server.api.store
        sel = Selector(res, q.get("labelSelector", ""), q.get("fieldSelector", ""))
        rv_text = q.get("resourceVersion", "")
        initial_events = query_flag(q, "sendInitialEvents")
        try:
            since = int(rv_text) if rv_text else 0
        except ValueError:
            raise bad_request(f'resourceVersion: Invalid value: "{rv_text}": must be an integer')
        bookmarks = query_flag(q, "allowWatchBookmarks")
        timeout = float(q["timeoutSeconds"]) if q.get("timeoutSeconds", "").isdigit() else None
        deadline = None if timeout is None else time.monotonic() + timeout
        w = Watcher(res, ns, sel)
        expired = None
        with store.lock:
            if since == 0 or initial_events:
                initial = [("ADDED", o) for o in store.select(res, ns, sel)]
            else:
                initial = []
                if since < store.floor:
                    expired = ApiError(410, "Expired", f"too old resource version: {since} "
                                                       f"({store.floor + 1})")
                else:
                    for ev in store.history:
                        if ev.rv > since:
                            w.offer(ev)
            initial_rv = store.rv
            if expired is None:
                store.watchers.add(w)
        try:
            self.start_chunked("application/json")
            if expired is not None:
                self.chunk((dumps({"type": "ERROR", "object": expired.status()}) + "\n").encode())
                self.chunk(b"")
                return
            lines = [dumps({"type": t, "object": o}) + "\n" for t, o in initial]
            if initial_events and bookmarks:
                lines.append(dumps({"type": "BOOKMARK", "object": {
                    "kind": res.kind, "apiVersion": res.api_version,
                    "metadata": {"resourceVersion": str(initial_rv),
                                 "annotations": {"k8s.io/initial-events-end": "true"}}}}) + "\n")
            for line in lines:
                self.chunk(line.encode())
            next_bookmark = time.monotonic() + api.bookmark_interval
            while True:
                with store.lock:
                    while not w.pending and not w.dropped:
                        now = time.monotonic()
                        wake = min(next_bookmark if bookmarks else now + 1.0,
                                   deadline if deadline is not None else now + 1.0)
                        if now >= wake:
                            break
                        store.changed.wait(wake - now)
                    batch, w.pending = w.pending, []
                    dropped, rv_now = w.dropped, store.rv
                if dropped:
                    return self.cut()
                if not batch and self.client_gone():
                    return
                for t, o in batch:
                    self.chunk((dumps({"type": t, "object": o}) + "\n").encode())
                now = time.monotonic()
                if bookmarks and now >= next_bookmark:
                    next_bookmark = now + api.bookmark_interval
                    if not batch:
                        self.chunk((dumps({"type": "BOOKMARK", "object": {
                            "kind": res.kind, "apiVersion": res.api_version,
                            "metadata": {"resourceVersion": str(rv_now)}}}) + "\n").encode())
                if deadline is not None and now >= deadline:
                    self.chunk(b"")
                    return
        except OSError:
            self.close_connection = True
        finally:
            with store.lock:
                store.watchers.discard(w)

    def pod_log(self, ns, name, q):
        api, store = self.server.api, self.server.api.store
        with store.lock:
            pod = store.must_get(PODS, ns, name)
        spec = pod.get("spec") or {}
        mains = [c.get("name") for c in spec.get("containers") or []]
        inits = [c.get("name") for c in spec.get("initContainers") or []]
        cname = q.get("container")
        if not cname:
            if len(mains) != 1:
                also = f" or one of the init containers: [{' '.join(inits)}]" if inits else ""
                raise bad_request(f"a container name must be specified for pod {name}, choose "
                                  f"one of: [{' '.join(mains)}]{also}")
            cname = mains[0]
        elif cname not in mains + inits:
            raise bad_request(f"container {cname} is not valid for pod {name}")
        if query_flag(q, "previous"):
            raise bad_request(f'previous terminated container "{cname}" in pod "{name}" not found')
        state = api.kubelet.container_state(ns, name, cname) if api.kubelet else None
        if state is None:
            statuses = (pod.get("status") or {}).get("containerStatuses", []) + \
                (pod.get("status") or {}).get("initContainerStatuses", [])
            reason = next((s["state"]["waiting"].get("reason") for s in statuses
                           if s.get("name") == cname and "waiting" in s.get("state", {})),
                          "ContainerCreating")
            raise bad_request(f'container "{cname}" in pod "{name}" is waiting to start: {reason}')
        path, running = state
        if not query_flag(q, "follow"):
            with open(path, "rb") as f:
                data = f.read()
            if q.get("tailLines", "").isdigit():
                n = int(q["tailLines"])
                data = b"".join(data.splitlines(keepends=True)[-n:]) if n else b""
            if q.get("limitBytes", "").isdigit():
                data = data[:int(q["limitBytes"])]
            return self.send(200, data, "text/plain")
        self.start_chunked("text/plain")
        with open(path, "rb") as f:
            while True:
                data = f.read(65536)
                if data:
                    self.chunk(data)
                    continue
                if not running or api.stopping:
                    break
                time.sleep(0.1)
                st = api.kubelet.container_state(ns, name, cname)
                running = st is not None and st[1]
        self.chunk(b"")

    # -- test hooks
    def test_hook(self, method, path, q):
        api = self.server.api
        if path == "/_test/requests" and method == "GET":
            return self.send_json(200, api.requests())
        if method != "POST":
            raise ApiError(405, "MethodNotAllowed", f"{method} {path}: not a test hook")
        if path == "/_test/drop-watches":
            return self.send_json(200, {"dropped": api.drop_watches()})
        if path == "/_test/compact":
            return self.send_json(200, {"resourceVersion": str(api.store.compact())})
        if path in ("/_test/fail", "/_test/conflict"):
            if not q.get("path"):
                raise bad_request("path=REGEX is required")
            try:
                rx = re.compile(q["path"])
                count = int(q.get("count") or 1)
                status = int(q.get("status") or 500)
            except (re.error, ValueError) as e:
                raise bad_request(f"bad rule: {e}")
            rule = {"re": rx, "count": count, "status": status, "method": q.get("method")}
            api.add_rule(api.fail_rules if path == "/_test/fail" else api.conflict_rules, rule)
            return self.send_json(200, {"path": q["path"], "count": count})
        raise ApiError(404, "NotFound", f"no test hook {path}")


def parse_path(path):
    """(resource, namespace or None, name or None, subresource or None), or None."""
    parts = [urllib.parse.unquote(p) for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    ns = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        ns, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        return None
    res = BY_URL.get((group, version, rest[0]))
    if res is None:
        return None
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if ns is None and name is not None:
        return None
    return res, ns, name, sub


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True      # open watch streams must not keep the process alive
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


# ---------------------------------------------------------------------------------------
# The server as a whole

def parse_images(spec):
    """{image: argv list} from a dict or "NAME=ARGV" strings (ARGV a JSON list or one path)."""
    if isinstance(spec, dict):
        items = spec.items()
    else:
        items = []
        for s in spec or ():
            name, sep, argv = s.partition("=")
            if not sep or not name:
                raise ValueError(f"--image {s!r}: expected NAME=ARGV")
            items.append((name, argv))
    out = {}
    for name, argv in items:
        if isinstance(argv, str):
            argv = json.loads(argv) if argv.lstrip().startswith("[") else [argv]
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise ValueError(f"--image {name}: ARGV must be a path or a JSON list of strings")
        out[name] = argv
    return out


def parse_image_env(spec):
    """{image: {K: V}} from {image: {K: V}}, {image: ["K=V"]} or "NAME=K=V" strings."""
    out = {}
    if isinstance(spec, dict):
        for name, env in spec.items():
            pairs = env.items() if isinstance(env, dict) else (e.split("=", 1) for e in env)
            out[name] = {k: v for k, v in pairs}
        return out
    for s in spec or ():
        name, _, kv = s.partition("=")
        k, sep, v = kv.partition("=")
        if not name or not sep or not k:
            raise ValueError(f"--image-env {s!r}: expected NAME=K=V")
        out.setdefault(name, {})[k] = v
    return out


class KubeApiServer:
    """The stand-in: an API server on 127.0.0.1, its Job controller, garbage collector and
    kubelet.  Options are the command line's, as keywords."""

    def __init__(self, port=0, token=None, image=(), image_env=(), crd_json=None,
                 history=1000, bookmark_interval=5.0, max_grace=None, no_kubelet=False,
                 workdir=None, job_batch_period=1.0, log=None):
        self.port, self.token = port, token
        self.images = parse_images(image)
        self.image_env = parse_image_env(image_env)
        schema = load_crd_schema(crd_json, SESSIONS) if crd_json else None
        self.bookmark_interval = float(bookmark_interval)
        self.max_grace = None if max_grace is None else float(max_grace)
        self.no_kubelet = no_kubelet
        self.job_batch_period = float(job_batch_period)
        self.workdir, self._own_workdir = workdir, workdir is None
        self._log = log
        self.store = Store(history, schema)
        self.kubelet = None
        self.controller = None
        self.httpd = None
        self.stopping = False
        self._test_lock = threading.Lock()
        self._requests, self._requests_dropped = [], 0
        self.fail_rules, self.conflict_rules = [], []

    def log(self, msg):
        if self._log is not None:
            self._log(msg)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self):
        if self.workdir is None:
            self.workdir = tempfile.mkdtemp(prefix="kube-apiserver-")
        os.makedirs(self.workdir, exist_ok=True)
        if not self.no_kubelet:
            self.kubelet = Kubelet(self.store, self.images, self.image_env, self.workdir,
                                   self.max_grace, self.log)
            self.store.kubelet = self.kubelet
        self.controller = Controller(self.store, self.kubelet, self.log, self.job_batch_period)
        self.store.listeners.append(self.controller.on_event)
        self.httpd = _HttpServer(("127.0.0.1", self.port), Handler)
        self.httpd.api = self
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                         name="http", daemon=True).start()
        self.controller.thread.start()
        return self

    def stop(self):
        if self.stopping:
            return
        self.stopping = True
        self.drop_watches()
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
        if self.controller is not None:
            self.controller.stop()
        if self.kubelet is not None:
            self.kubelet.stop()
        if self._own_workdir and self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- test hooks
    def record(self, method, path, query, ctype, body, agent):
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = body.decode("utf-8", "replace")
        entry = {"method": method, "path": path, "query": query, "contentType": ctype,
                 "body": parsed, "agent": agent, "status": None}
        with self._test_lock:
            if len(self._requests) < MAX_REQUEST_LOG:
                self._requests.append(entry)
            else:
                self._requests_dropped += 1
        return entry

    def requests(self):
        with self._test_lock:
            return [dict(e) for e in self._requests]

    def add_rule(self, rules, rule):
        with self._test_lock:
            rules.append(rule)

    def take_rule(self, rules, method, path):
        with self._test_lock:
            for r in rules:
                if r["count"] > 0 and r["method"] in (None, method) and r["re"].search(path):
                    r["count"] -= 1
                    return r
        return None

    def drop_watches(self):
        with self.store.lock:
            for w in self.store.watchers:
                w.dropped = True
            self.store.changed.notify_all()
            return len(self.store.watchers)

    # -- direct access for tests
    def create(self, obj):
        """Creates obj (its namespace from metadata.namespace, else "default") as a POST
        would; returns the stored object; ApiError as the HTTP answer would be."""
        res = BY_KIND.get((obj.get("apiVersion"), obj.get("kind")))
        if res is None:
            raise ValueError(f"no resource for {obj.get('apiVersion')} {obj.get('kind')}")
        ns = (obj.get("metadata") or {}).get("namespace") or "default"
        return clone(self.store.create(res, ns, obj))

    def get(self, kind_path):
        """An object or a list of items, from an API path ("/apis/batch/v1/namespaces/ns/
        jobs/x", "/api/v1/pods") or "KIND_OR_PLURAL/NS[/NAME]"; None when absent."""
        if kind_path.startswith("/"):
            target = parse_path(kind_path)
            if target is None or target[3] is not None:
                raise ValueError(f"not an object or collection path: {kind_path}")
            res, ns, name, _ = target
        else:
            parts = kind_path.split("/")
            res = BY_PLURAL.get(parts[0]) or next(
                (r for r in RESOURCES if r.kind.lower() == parts[0].lower()), None)
            if res is None or not 2 <= len(parts) <= 3:
                raise ValueError(f"expected KIND/NS[/NAME]: {kind_path}")
            ns, name = parts[1], parts[2] if len(parts) == 3 else None
        with self.store.lock:
            if name is None:
                return clone(self.store.select(res, ns))
            obj = self.store.get(res, ns, name)
            return None if obj is None else clone(obj)

    def wait_for(self, predicate, timeout=10.0):
        """Calls predicate(self) whenever the store changes (and at least every 0.1 s) until
        it returns something true, which is returned; TimeoutError after timeout."""
        deadline = time.monotonic() + timeout
        with self.store.lock:
            while True:
                value = predicate(self)
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"condition not met within {timeout}s")
                self.store.changed.wait(min(0.1, left))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--token", help="require Authorization: Bearer TOKEN")
    parser.add_argument("--image", action="append", default=[], metavar="NAME=ARGV",
                        help="an image's ENTRYPOINT: a JSON list or one path (repeatable)")
    parser.add_argument("--image-env", action="append", default=[], metavar="NAME=K=V",
                        help="an image's ENV (repeatable)")
    parser.add_argument("--crd-json", help="the AgenticSession CRD as JSON: prune, default "
                        "and validate sessions against it")
    parser.add_argument("--history", type=int, default=1000, help="events kept for watches")
    parser.add_argument("--bookmark-interval", type=float, default=5.0, metavar="S")
    parser.add_argument("--max-grace", type=float, metavar="S",
                        help="cap on a deleted Pod's grace period")
    parser.add_argument("--no-kubelet", action="store_true", help="no Pods for Jobs")
    parser.add_argument("--workdir", help="where Pods' directories and logs go (kept)")
    parser.add_argument("--job-batch-period", type=float, default=1.0, metavar="S",
                        help="how long the Job controller batches Pod changes (Kubernetes: 1)")
    args = parser.parse_args(argv)

    def log(msg):
        print(f"kube_apiserver: {msg}", file=sys.stderr, flush=True)

    try:
        server = KubeApiServer(port=args.port, token=args.token, image=args.image,
                               image_env=args.image_env, crd_json=args.crd_json,
                               history=args.history, bookmark_interval=args.bookmark_interval,
                               max_grace=args.max_grace, no_kubelet=args.no_kubelet,
                               workdir=args.workdir, job_batch_period=args.job_batch_period,
                               log=log)
        stop = threading.Event()
        # The main thread only waits for the signal; stop() from a signal handler could
        # deadlock against the serving thread.
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        server.start()
    except (OSError, ValueError) as e:
        print(f"kube_apiserver: {e}", file=sys.stderr)
        return 2
    print(f"listening on {server.url}", flush=True)
    while not stop.wait(0.2):
        pass
    log("stopping")
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
