#!/usr/bin/env python3
"""Langfuse-compatible test receiver for the ccrunner / liblangfuse integration tests.

Integration tests start this script on 127.0.0.1, point the C Langfuse client at it,
inject failures through ``/_test/*`` and then assert on what a Langfuse user would see
through the Langfuse-shaped read API.  It is as strict as a real Langfuse server on input,
and stores what it receives the way the server line it plays does.  Python 3.11 standard
library only.

Usage::

    python3 tests/support/langfuse_receiver.py --port 0 --public-key PK --secret-key SK \
        [--langfuse-version 4|3]

prints ``READY <port>`` once listening and runs until SIGTERM/SIGINT.

Two server lines, one per process
=================================
Users run two kinds of Langfuse server, and what a client sends must read right on both:

* ``--langfuse-version 4`` (the default): Langfuse v4, observations first, in its default
  ``events_only`` write mode (Langfuse Cloud behaves the same).  Every exported span is
  an immutable row; a trace is the rows that share a trace id; reads go through
  ``GET /api/public/v2/observations``; the legacy ingestion API and the v1 trace reads are
  switched off.  See "Langfuse v4" below.
* ``--langfuse-version 3``: Langfuse v3.  OTLP spans are mapped to traces and
  observations, re-exported span ids merged, the legacy ``/api/public/ingestion`` batches
  accepted, and the v1 reads served (``/api/public/traces``, ``/traces/{id}``,
  ``/observations``, ``/sessions``).  ``GET /api/public/v2/observations`` answers 404, as on
  a v3 server, which is how a client tells the two apart.  See "Langfuse v3" below.

Test endpoints (no credentials), in both modes: ``GET /_test/raw`` (every request as
received: request line, headers, blank line, decoded body, blank lines), ``/_test/requests``
(one summary per request), ``/_test/stats``, ``/_test/deliveries`` (per span or
observation id: how often delivered and applied), ``/_test/version`` (``{"version": 3|4}``),
``GET|POST /_test/mode`` (failure injection: ``ok``, ``status``, ``blackhole``, ``slow``,
``max_body``, ``reject_events``), ``POST /_test/reset`` and ``POST /_test/release-delayed``
(v4: publish the rows of requests that took the slow path; see v4 (f)).

Langfuse v3: how it maps OTLP spans (read in langfuse/langfuse, not copied)
==========================================================================
Files read: packages/shared/src/server/otel/OtelIngestionProcessor.ts (current, plus two
older revisions), web/src/features/otel/server/OtelIngestionProcessor.ts (older copy),
packages/shared/src/server/otel/{attributes.ts,ObservationTypeMapper.ts,utils.ts},
web/src/pages/api/public/otel/v1/traces/index.ts, packages/shared/src/server/ingestion/
{types.ts,processEventBatch.ts}, worker/src/services/IngestionService/{index.ts,utils.ts},
web/src/pages/api/public/traces/[traceId].ts, web/src/features/public-api/types/
observations.ts, packages/shared/src/server/repositories/observations_converters.ts and
packages/shared/src/server/utils/metadata_conversion.ts.

Pipeline: the OTLP route authenticates, gunzips, parses, rejects the *whole* export with
400 if any span has an absent or unconvertible traceId/spanId/parentSpanId, or if
scopeSpans/spans/attributes/events are present but not arrays.  It then answers 200 and
queues the export.  A worker converts every span into ingestion events
(``trace-create`` plus ``<type>-create``), validates them with the same zod schemas as
``POST /api/public/ingestion``, and merges them into stored rows.  An event that fails
validation is logged and dropped, and the HTTP answer was 200 all the same.  This
receiver does the same: such drops are listed per request in ``/_test/requests``
(``dropped``) and counted in ``/_test/stats``.

(a) Root spans and trace attributes.  Every span becomes an observation whose id is the
    spanId.  A span is a root when it has no parentSpanId, or when it has
    ``langfuse.internal.as_root == "true"``.  A root span also emits a full trace event:
    name = ``langfuse.trace.name`` if present (even ""), else the observation name (the
    span name, but ``gen_ai.tool.name`` wins if set).  Trace input/output come from
    ``langfuse.trace.input/output``, else from the root's
    ``langfuse.observation.input/output``.  Trace metadata = resource
    ``langfuse.trace.metadata.*`` + span ``langfuse.trace.metadata.*`` + span
    ``langfuse.observation.metadata.*`` + ``attributes`` + ``resourceAttributes`` +
    ``scope``.
    A non-root span that carries any trace attribute (``langfuse.trace.name|input|output|
    metadata[.*]|public|tags``, ``user.id``, ``session.id``, ``langfuse.user.id``,
    ``langfuse.session.id``, a few compat keys) emits a trace *update* holding only those
    fields.  Other non-root spans of a trace not seen in the last 10 minutes create a
    "shallow" trace (id, timestamp = span start, environment), so a trace row always
    exists.  Quirk: every trace event writes ``public`` (default false) and
    ``version``/``release`` (default null).  So a later non-root span with trace
    attributes resets public=false and nulls version/release unless it repeats them.
    Client rule: put all trace-level attributes on the root span.
(b) Scope.  The current processor reads ``scope.name`` only to decide whether the spans
    are "Langfuse SDK spans" (name starts with ``langfuse-sdk``).  For those it leaves
    the ``attributes`` metadata block out.  Older revisions (``validatePublicKey``)
    answered the whole request 403 when such a scope's ``scope.attributes.public_key``
    differed from the authenticating key.  First they did this for every SDK, later only
    when the resource had ``telemetry.sdk.language == "python"``.  The current code has
    no key check, and spans are never dropped one by one for a key mismatch.  This
    receiver enforces the strictest old rule: a ``langfuse-sdk*`` scope whose public_key
    is missing or different gets 403.  Client rule: use your own scope name.
(c) Usage and cost.  ``langfuse.observation.usage_details``, if truthy: a JSON object
    string is used exclusively, and ``gen_ai.usage.*`` is then ignored, so the two never
    add up.  Invalid JSON falls back to ``gen_ai.usage.*``.  Valid JSON that is not an
    object, or a non-string value, gives ``{}`` with no fallback.  The gen_ai fallback:
    input = input_tokens|prompt_tokens minus cache_read/cache_creation tokens; output;
    total; cache counts become input_cached_tokens / input_cache_creation; other
    ``gen_ai.usage.X`` keys are kept as X.  Cost: ``langfuse.observation.cost_details``
    (same parsing), else ``gen_ai.usage.cost`` -> {total}, else ``llm.cost.total``.  The
    ingestion schema then requires usage values to be non-negative integers and cost
    values non-negative numbers.  Otherwise the whole observation is dropped.  Double
    counting happens on the read side:
    * promptTokens = the sum of every usage key starting with "input", so sending
      input and input_tokens counts input twice;
    * a missing usage "total" becomes the sum of *all* keys;
    * calculatedTotalCost = costDetails.total, or 0 when there is no total (a total is
      derived only when the only keys are input/output);
    * trace totalCost sums that over all observations.
    The span-create/event-create schemas have no model/usage/cost fields, so those are
    stripped from SPAN and EVENT observations.  They survive only on generation-like
    types.  ``gen_ai.operation.name`` invoke_agent/agent_step spans get model, usage
    and cost removed.
(d) Type: ``langfuse.observation.type`` (span|generation|event|agent|tool|chain|retriever|
    embedding|evaluator|guardrail, exact lowercase; an unknown value falls through), then
    ``openinference.span.kind``, then ``gen_ai.operation.name`` (chat/completion/
    text_completion/generate_content/generate -> GENERATION, embeddings -> EMBEDDING,
    invoke_agent/create_agent -> AGENT, execute_tool -> TOOL), then ``gen_ai.tool.name``
    or ``gen_ai.tool.call.id`` -> TOOL, then any model attribute -> GENERATION, else
    SPAN.  The API returns types in uppercase.
    Level: ``langfuse.observation.level``.  The current code maps aliases: INFO ->
    DEFAULT, WARN -> WARNING, FATAL -> ERROR.  Older code passed the raw value, and an
    invalid one dropped the observation.  Without it, status.code 2 -> ERROR, else
    DEFAULT.
    Status message: ``langfuse.observation.status_message``, else status.message.
    Metadata: ``langfuse.observation.metadata`` (JSON object) plus
    ``langfuse.observation.metadata.<key>`` (flat key, typed value) plus resource
    ``langfuse.trace.metadata.*``.  Every other span attribute (non-strings
    JSON-encoded, input/output and metadata keys removed) goes into
    ``metadata.attributes``.  All resource attributes go into
    ``metadata.resourceAttributes``, and ``metadata.scope`` = {name, version,
    attributes}.  Top-level metadata values are stored as strings and JSON-parsed on
    read.
    Input/output: string attributes stored verbatim, returned JSON-parsed when they are
    valid JSON.
    completion_start_time: a parseable date string.  On generation-like types it must be
    ISO 8601 with an offset, or the observation is dropped.
    Model: ``langfuse.observation.model.name``, then ``gen_ai.response.model``, then
    ``gen_ai.request.model``.  Parameters: ``langfuse.observation.model.parameters`` JSON
    (non string/number values get JSON-encoded; invalid JSON falls back to
    ``gen_ai.request.*``).
    Environment: ``langfuse.environment``, then ``deployment.environment[.name]``, each
    checked on the span and then the resource; it must match ``^(?!langfuse)[a-z0-9-_]+$``
    (at most 40 chars).  Release: ``langfuse.release`` (span, then resource).  Version:
    ``langfuse.version``, else resource ``service.version``.
    Tags: ``langfuse.trace.tags`` (string array; a JSON array string or a
    comma-separated string also work).  Public: ``langfuse.trace.public`` true/"true".
    userId ``user.id``; sessionId ``session.id``.
(e) Merge: a span id sent again updates the same observation.  Per entity, events are
    sorted by event timestamp (creates first on ties).  For OTLP that timestamp is the
    server's receive time, so arrival order wins.  A later value replaces the earlier one
    unless it is absent or an empty object/array; JSON null does replace.  Immutable:
    id, trace_id, start_time (observation), timestamp (trace), environment.  Metadata is
    deep-merged (lodash merge), tags are unioned and sorted, input/output keep the last
    truthy value, level defaults to DEFAULT (OTLP always sends a level, so resending a
    span without an error status resets it), and end_time < start_time is clamped.
    Ingestion API events are deduplicated by event id.

Langfuse v4: one row per exported span (read in langfuse/langfuse, not copied)
============================================================================
Read at the v4 line's main branch (commit 6275144, 2026-08-22): web/src/pages/api/public/
{otel/v1/traces/index.ts, ingestion.ts, v2/observations/index.ts, traces/*.ts,
observations/*.ts, sessions/*.ts}, web/src/features/public-api/server/
{createAuthedProjectAPIRoute.ts, withMiddlewares.ts}, web/src/features/public-api/types/
observations.ts, packages/shared/src/env.ts, worker/src/env.ts, worker/src/queues/
otelIngestionQueue.ts, worker/src/services/IngestionService/index.ts (createEventRecord,
getGenerationUsage, getUsageUnits, calculateUsageCosts), worker/src/features/tokenisation/
usage.ts, worker/src/constants/default-model-prices.json, packages/shared/src/server/otel/
{OtelIngestionProcessor.ts (processToEvent), ObservationTypeMapper.ts, utils.ts},
packages/shared/src/server/repositories/{events.ts, observations_converters.ts},
packages/shared/src/server/queries/{public-api-filter-builder.ts, clickhouse-sql/
event-query-builder.ts}, packages/shared/src/domain/observation-field-groups.ts,
packages/shared/src/eventsTable.ts, packages/shared/src/server/utils/metadata_conversion.ts
and packages/shared/clickhouse/migrations/unclustered/{0039_create_events_full,
0040_create_events_core}.up.sql.

Write mode: LANGFUSE_MIGRATION_V4_WRITE_MODE defaults to ``events_only`` (the legacy
traces/observations tables are no longer written), and that mode requires
LANGFUSE_MIGRATION_V4_NATIVE_OTEL_BEHAVIOUR=direct.  The OTLP route validates, queues,
answers 200; the worker turns each span into one row of the events table
(``processToEvent`` then ``createEventRecord``) and writes it.

(a) Every export is a row.  A span is one row, whatever was received before: a span id
    exported twice is two rows, both read back as observations with the same id, their
    tokens and costs counted twice (the trace's cost is ``sum(total_cost)`` over its rows).
    Nothing is merged and no observation is dropped (invalid usage loses the usage, not the
    row; there is no per-type schema stripping model, usage or cost from spans).  The table
    is a ClickHouse ReplacingMergeTree keyed by (start minute, trace, span id, start time):
    a background merge may, at some unspecified later time, collapse copies that share
    all of those into the last written one; the v2 read does not deduplicate.  This
    receiver keeps every row, the state a client meets right after the write.
(b) Trace attributes belong to the row that carried them: ``session.id``, ``user.id``,
    ``langfuse.trace.name``, ``langfuse.trace.tags``, ``langfuse.trace.metadata.*`` (merged
    into that row's metadata), ``langfuse.release``, ``langfuse.version``,
    ``langfuse.environment``.  A row without them has none: its sessionId/userId are ""
    (ClickHouse String columns are not nullable), and the v2 ``sessionId=``/``userId=``
    filters test the row's own column, so it is not found by them.
(c) Input/output: a row's are its own ``langfuse.observation.input``/``.output`` (or the
    GenAI fallbacks); ``langfuse.trace.input``/``.output`` are read by nothing.  The trace
    view folds rows (eventsTracesAggregation): input, output and metadata are the root
    row's (no parent); name is the latest ``langfuse.trace.name`` of any row, else the
    root's name; session, user, tags, release, environment the latest non-empty value.
(d) Usage and cost (createEventRecord -> getGenerationUsage), for any observation type that
    names a model (``langfuse.observation.model.name``, ``gen_ai.response.model``,
    ``gen_ai.request.model``, ...) or carries usage or cost:
    * the model is looked up in the model table; with a known model and neither usage nor
      cost given, input and output tokens are counted from the row's input/output text
      (the server's "claude" tokenizer; here ceil(characters / 4), None for no text) and
      total = input + output.  (The events path does not pass the level along, so the
      legacy "not for ERROR" rule does not apply there.)  An unknown model gets nothing;
    * given usage is used as given, ``total`` added as the sum when missing;
    * any given cost is used as given (``total`` derived only when the keys are just
      input/output); without given cost, usage is priced per key from the model's default
      tier, and total is the sum.  Costs are stored as Decimal(18, 12).
    This receiver's model table has the test models only (see TEST_MODELS).
(e) Legacy ingestion is refused per event: ``POST /api/public/ingestion`` answers 207, and
    every event whose type is not ``score-create`` or ``sdk-log`` gets
    ``{"id", "status": 400, "message": "Event type not accepted", "error": "Event type
    \"<type>\" is not accepted by /api/public/ingestion when
    LANGFUSE_MIGRATION_V4_WRITE_MODE is events_only. ..."}``, listed after the results of
    the events that were processed.  Nothing of those is stored.
(f) Header ``x-langfuse-ingestion-version``: a value above 4 or not a number is 400 (the
    server uses JavaScript parseInt, so it takes "4abc"; this receiver wants digits).  A
    batch whose header parses to 4 or more is written directly.  Without it, the server's
    routing (resolveOtelWritePath) sends the batch down the dual-write path: legacy merge
    plus a staging table that a propagation job copies into the events table after a
    partition delay of 10 minutes.  On a self-hosted events_only deployment that path
    cannot be taken (NATIVE_OTEL_BEHAVIOUR=direct is forced, every batch is direct); on
    Langfuse Cloud it is, for organisations from before the cutoff date, and that is what
    this receiver plays: rows of such requests are stored but invisible until
    ``POST /_test/release-delayed``, and counted in ``/_test/stats`` (``delayed_requests``,
    ``delayed_rows``).  The SDKs' name/version headers (Python 4+, JS 5+) also qualify
    there; this receiver honours only the ingestion-version header.
(g) Reads.  In events_only the v1 routes that read the legacy tables answer 404
    ``{"message": "This endpoint is not available on deployments running in Langfuse v4
    events_only mode. ..."}`` before any credential check: GET /api/public/traces,
    /traces/{id}, /observations, /observations/{id}, /sessions, /sessions/{id}, /scores,
    /scores/{id}, /v2/scores, /metrics, /metrics/daily, and POST /traces, /events,
    /generations, /spans (PATCH /generations, /spans).  Reads go through
    ``GET /api/public/v2/observations``:
    * query: traceId, sessionId, userId, name, type, level, parentObservationId, version,
      environment (repeatable), isRootObservation (true|false; no parent, or
      ``langfuse.internal.is_app_root``), fromStartTime (>=), toStartTime (<), limit (0 to
      1000, default 50), cursor, fields; ``parseIoAsJson=true`` is refused (400);
    * fields: a comma list of the groups core, basic, time, io, metadata, model, usage,
      prompt, metrics, trace_context; unknown names are dropped; absent means core,basic;
      core is always there;
    * order: start time, then trace, then span id, all descending; the cursor is the base64
      of ``{"lastStartTimeTo","lastTraceId","lastId"}`` of a page's last row, and the next
      page holds the rows strictly after it in that order (so two copies of one span that
      fall on either side of a page edge lose the second, there as here);
    * answer: ``{"data": [...], "meta": {"cursor": "..."}}``, ``meta`` empty ({}) on the
      last page.  Each item: core ``id, traceId, startTime, endTime, projectId,
      parentObservationId (null for a root), type``; basic ``name, level, statusMessage,
      version, environment, userId, sessionId, isRootObservation, bookmarked, public``;
      time ``completionStartTime, createdAt, updatedAt``; io ``input, output`` (raw strings,
      never parsed; null when empty); metadata ``metadata`` (flattened to dotted paths,
      each value JSON-parsed when it is JSON); model ``model, internalModelId,
      modelParameters``; usage ``usageDetails, inputUsage, outputUsage, totalUsage,
      costDetails, inputCost, outputCost, totalCost (costDetails.total or 0),
      usagePricingTierId, usagePricingTierName``; prompt ``promptId, promptName,
      promptVersion``; trace_context ``tags, release, traceName``; and on every item
      ``latency`` and ``timeToFirstToken`` (seconds), ``modelId`` and ``inputPrice,
      outputPrice, totalPrice`` (decimal strings; only with the model group).
(h) Deliberately not played: prompts, tool-call normalisation, media, masking, sampling,
    evals, the full model table, pricing tiers other than the default one.

Deliberate strictness beyond the current server (the OTLP/JSON spec; see the brief), in
both modes: lowercase hex ids only (Langfuse also accepts base64 strings), the AnyValue
shape, int64 ranges, unique attribute keys, and start/end times required.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import copy
import gzip
import hmac
import json
import math
import re
import signal
import sys
import threading
import time
import uuid
import zlib
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

PROJECT_ID = "ccrunner-test-project"
SERVER_VERSIONS = {3: "3.x-test", 4: "4.x-test"}  # what /api/public/health reports
# Next.js body limit on /api/public/ingestion ("4.5mb", bytes-library units).
INGESTION_MAX_BYTES = int(4.5 * 1024 * 1024)
# Langfuse remembers traces seen in the last 10 minutes (Redis SET NX, TTL 600 s).
SEEN_TRACE_TTL_S = 600
SESSION_ID_MAX_LEN = 200  # LANGFUSE.md: longer (or non-ASCII) session ids are dropped
INT64_MIN, INT64_MAX, UINT64_MAX = -(2**63), 2**63 - 1, 2**64 - 1

# ---------------------------------------------------------------------------
# Small JSON / time helpers that mimic JavaScript semantics where Langfuse relies on them
# ---------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class _Missing:
    """Marker for 'JavaScript undefined': the key is absent, as opposed to null."""


MISSING = _Missing()


def ms_to_iso(ms: int) -> str:
    """Epoch milliseconds -> the ISO string a JS Date serializes to."""
    dt = _EPOCH + timedelta(milliseconds=ms)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


_ISO_OFFSET_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?"
    r"(Z|[+-]\d{2}:\d{2})$"
)


def parse_iso_offset_ms(value) -> int | None:
    """Epoch ms for an ISO 8601 datetime *with* Z/offset (zod datetime({offset:true}))."""
    if not isinstance(value, str):
        return None
    m = _ISO_OFFSET_RE.match(value)
    if not m:
        return None
    year, mon, day, hour, minute = (int(m.group(i)) for i in range(1, 6))
    sec = int(m.group(6) or 0)
    frac = (m.group(7) or "")[:6].ljust(6, "0")
    tz = m.group(8)
    try:
        if tz == "Z":
            offset = timedelta(0)
        else:
            sign = -1 if tz[0] == "-" else 1
            oh, om = int(tz[1:3]), int(tz[4:6])
            if oh > 23 or om > 59:
                return None
            offset = sign * timedelta(hours=oh, minutes=om)
        dt = datetime(year, mon, day, hour, minute, sec, int(frac), tzinfo=timezone(offset))
    except ValueError:
        return None
    return (dt - _EPOCH) // timedelta(milliseconds=1)


def js_date_is_valid(value) -> bool:
    """Approximation of `!isNaN(new Date(value).getTime())` (JS Date is lenient)."""
    if isinstance(value, bool) or isinstance(value, (int, float)):
        return not (isinstance(value, float) and not math.isfinite(value))
    if not isinstance(value, str) or not value.strip():
        return False
    if parse_iso_offset_ms(value) is not None:
        return True
    try:
        datetime.fromisoformat(value.strip())
        return True
    except ValueError:
        pass
    try:
        parsedate_to_datetime(value)
        return True
    except (TypeError, ValueError, IndexError):
        return False


def js_truthy(value) -> bool:
    if value is None or value is MISSING or value is False:
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value != 0 and not (isinstance(value, float) and math.isnan(value))
    if isinstance(value, str):
        return value != ""
    return True  # objects and arrays, even empty ones, are truthy in JS


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_int_number(value) -> bool:
    """zod .int(): a JS number that is integral (5.0 counts)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value) and value.is_integer()


def _js_normalize(value):
    """Make json.dumps output look like JSON.stringify (1.0 -> 1, NaN -> null)."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if isinstance(value, dict):
        return {k: _js_normalize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_js_normalize(v) for v in value]
    return value


def js_stringify(value) -> str:
    return json.dumps(_js_normalize(value), separators=(",", ":"), ensure_ascii=False)


def _reject_constant(name):
    raise ValueError(f"invalid JSON constant {name}")


def json_loads_strict(text):
    """json.loads that, like JSON.parse, refuses NaN/Infinity."""
    return json.loads(text, parse_constant=_reject_constant)


def parse_json_prioritised(text):
    """Langfuse's read path: a stored string comes back JSON-parsed when it is JSON."""
    if not isinstance(text, str):
        return text
    try:
        return json_loads_strict(text)
    except ValueError:
        return text


def js_number(value) -> float:
    """JavaScript Number(value) for the value types OTLP attributes can produce."""
    if isinstance(value, bool):
        return 1 if value else 0
    if is_number(value):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text == "":
            return 0
        if text in ("Infinity", "+Infinity", "-Infinity"):
            return math.inf if text[0] != "-" else -math.inf
        if re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text):
            number = float(text)
            return int(number) if number.is_integer() and abs(number) < 2**53 else number
        if re.fullmatch(r"0[xX][0-9a-fA-F]+", text):
            return int(text, 16)
        return math.nan
    if isinstance(value, list):
        if not value:
            return 0
        if len(value) == 1 and not isinstance(value[0], (list, dict)):
            return js_number(value[0] if value[0] is not None else "")
    return math.nan


def stringify_io(value):
    """IngestionService.stringify: keep strings, JSON-encode everything else."""
    if value is None or value is MISSING:
        return None
    return value if isinstance(value, str) else js_stringify(value)


def coalesce(*values):
    """JavaScript `a ?? b ?? c`: the first value that is neither null nor undefined."""
    for value in values:
        if value is not None and value is not MISSING:
            return value
    return None


# ---------------------------------------------------------------------------
# OTLP/JSON request validation (whole request rejected on the first violation)
# ---------------------------------------------------------------------------


class BadRequest(Exception):
    """A 400 answer: the message is returned to the client."""


_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_HEX16 = re.compile(r"^[0-9a-f]{16}$")
_DECIMAL_UINT = re.compile(r"^[0-9]+$")
_DECIMAL_INT = re.compile(r"^-?[0-9]+$")
_DOUBLE_STRING = re.compile(r"^-?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
ANY_VALUE_KEYS = ("stringValue", "boolValue", "intValue", "doubleValue",
                  "arrayValue", "kvlistValue", "bytesValue")
MAX_ANY_VALUE_DEPTH = 32


def _fail(where: str, problem: str):
    raise BadRequest(f"Invalid OTLP trace export: {where}: {problem}. "
                     "The entire export was rejected and no spans were ingested.")


def _check_type(value, kind, where, name, optional=True):
    if value is None and optional:
        return
    if kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind)
    if not ok:
        _fail(where, f"'{name}' must be {kind.__name__ if kind is not list else 'an array'}")


def check_any_value(value, where: str, depth: int = 0) -> None:
    if depth > MAX_ANY_VALUE_DEPTH:
        _fail(where, "AnyValue nested too deeply")
    if not isinstance(value, dict):
        _fail(where, "value must be an AnyValue object")
    unknown = sorted(set(value) - set(ANY_VALUE_KEYS))
    if unknown:
        _fail(where, f"unknown AnyValue field(s) {unknown}")
    present = [k for k in ANY_VALUE_KEYS if k in value]
    if len(present) != 1:
        _fail(where, f"AnyValue must hold exactly one of {list(ANY_VALUE_KEYS)}, got {present}")
    key = present[0]
    inner = value[key]
    if key == "stringValue":
        if not isinstance(inner, str):
            _fail(where, "stringValue must be a string")
    elif key == "boolValue":
        if not isinstance(inner, bool):
            _fail(where, "boolValue must be true or false")
    elif key == "intValue":
        # Protobuf JSON writes int64 as a decimal string; parsers also take JSON integers.
        if isinstance(inner, str) and _DECIMAL_INT.match(inner):
            number = int(inner)
        elif isinstance(inner, int) and not isinstance(inner, bool):
            number = inner
        else:
            _fail(where, "intValue must be a decimal string or integer")
        if not INT64_MIN <= number <= INT64_MAX:
            _fail(where, "intValue out of int64 range")
    elif key == "doubleValue":
        ok = is_number(inner) or (isinstance(inner, str) and (
            inner in ("NaN", "Infinity", "-Infinity") or _DOUBLE_STRING.match(inner)))
        if not ok:
            _fail(where, "doubleValue must be a number")
    elif key == "bytesValue":
        if not isinstance(inner, str):
            _fail(where, "bytesValue must be a base64 string")
        try:
            base64.b64decode(inner.replace("-", "+").replace("_", "/")
                             + "=" * (-len(inner) % 4), validate=True)
        except (binascii.Error, ValueError):
            _fail(where, "bytesValue is not valid base64")
    elif key == "arrayValue":
        if not isinstance(inner, dict) or set(inner) - {"values"}:
            _fail(where, "arrayValue must be {\"values\": [...]}")
        items = inner.get("values", [])
        if not isinstance(items, list):
            _fail(where, "arrayValue.values must be an array")
        for i, item in enumerate(items):
            check_any_value(item, f"{where}.arrayValue.values[{i}]", depth + 1)
    elif key == "kvlistValue":
        if not isinstance(inner, dict) or set(inner) - {"values"}:
            _fail(where, "kvlistValue must be {\"values\": [...]}")
        check_key_values(inner.get("values", []), f"{where}.kvlistValue.values", depth + 1)


def check_key_values(items, where: str, depth: int = 0) -> None:
    """An OTLP attribute list: [{"key": str, "value": AnyValue}], keys unique."""
    if not isinstance(items, list):
        _fail(where, "attributes must be an array of {key, value} (not a JSON object)")
    seen = set()
    for i, item in enumerate(items):
        here = f"{where}[{i}]"
        if not isinstance(item, dict):
            _fail(here, "attribute must be an object {key, value}")
        key = item.get("key")
        if not isinstance(key, str) or key == "":
            _fail(here, "attribute 'key' must be a non-empty string")
        if "value" not in item:
            _fail(here, f"attribute {key!r} has no 'value'")
        if key in seen:
            _fail(here, f"duplicate attribute key {key!r} (OTel requires unique keys)")
        seen.add(key)
        check_any_value(item["value"], f"{here} ({key!r})", depth)


def _check_nanos(value, where: str, name: str) -> int:
    if isinstance(value, str) and _DECIMAL_UINT.match(value):
        number = int(value)
    elif isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        number = value
    else:
        _fail(where, f"'{name}' must be unix nanoseconds as a decimal string")
    if number > UINT64_MAX:
        _fail(where, f"'{name}' out of uint64 range")
    return number


def _check_id(value, pattern, where, name, optional=False):
    if optional and (value is None or value == ""):
        return
    if not isinstance(value, str) or not pattern.match(value) or set(value) == {"0"}:
        size = 32 if pattern is _HEX32 else 16
        _fail(where, f"'{name}' must be {size} lowercase hex characters, not all zero "
                     f"(got {value!r})")


def _check_status(status, where):
    if status is None:
        return
    if not isinstance(status, dict):
        _fail(where, "'status' must be an object")
    code = status.get("code", 0)
    if not (isinstance(code, int) and not isinstance(code, bool) and 0 <= code <= 2):
        _fail(where, "'status.code' must be an integer 0 (UNSET), 1 (OK) or 2 (ERROR)")
    if "message" in status and not isinstance(status["message"], str):
        _fail(where, "'status.message' must be a string")


def check_span(span, where: str) -> None:
    if not isinstance(span, dict):
        _fail(where, "span must be an object")
    span_id = span.get("spanId")
    where = f"{where} (spanId {span_id!r}, name {span.get('name')!r})"
    _check_id(span.get("traceId"), _HEX32, where, "traceId")
    _check_id(span_id, _HEX16, where, "spanId")
    _check_id(span.get("parentSpanId"), _HEX16, where, "parentSpanId", optional=True)
    if not isinstance(span.get("name"), str):
        _fail(where, "'name' must be a string")
    kind = span.get("kind", 0)
    if not (isinstance(kind, int) and not isinstance(kind, bool) and 0 <= kind <= 5):
        _fail(where, "'kind' must be an integer SpanKind 0..5")
    for name in ("startTimeUnixNano", "endTimeUnixNano"):
        if name not in span:
            _fail(where, f"'{name}' is required")
        _check_nanos(span[name], where, name)
    check_key_values(span.get("attributes", []), f"{where}.attributes")
    _check_type(span.get("traceState"), str, where, "traceState")
    _check_type(span.get("flags"), int, where, "flags")
    _check_status(span.get("status"), where)
    events = span.get("events", [])
    if not isinstance(events, list):
        _fail(where, "'events' must be an array")
    for i, event in enumerate(events):
        if not isinstance(event, dict):
            _fail(f"{where}.events[{i}]", "event must be an object")
        _check_type(event.get("name"), str, f"{where}.events[{i}]", "name")
        if "timeUnixNano" in event:
            _check_nanos(event["timeUnixNano"], f"{where}.events[{i}]", "timeUnixNano")
        check_key_values(event.get("attributes", []), f"{where}.events[{i}].attributes")
    links = span.get("links", [])
    if not isinstance(links, list):
        _fail(where, "'links' must be an array")
    for i, link in enumerate(links):
        here = f"{where}.links[{i}]"
        if not isinstance(link, dict):
            _fail(here, "link must be an object")
        _check_id(link.get("traceId"), _HEX32, here, "traceId")
        _check_id(link.get("spanId"), _HEX16, here, "spanId")
        check_key_values(link.get("attributes", []), f"{here}.attributes")


def validate_otlp_export(doc) -> list[tuple[dict, dict, dict]]:
    """Validate an ExportTraceServiceRequest; return (resourceSpan, scopeSpan, span) triples."""
    if not isinstance(doc, dict):
        raise BadRequest("Invalid OTLP trace export: body must be a JSON object "
                         "{\"resourceSpans\": [...]}")
    resource_spans = doc.get("resourceSpans", [])
    if not isinstance(resource_spans, list):
        _fail("resourceSpans", "must be an array")
    triples = []
    for i, rs in enumerate(resource_spans):
        where = f"resourceSpans[{i}]"
        if not isinstance(rs, dict):
            _fail(where, "must be an object")
        resource = rs.get("resource", {})
        if not isinstance(resource, dict):
            _fail(where, "'resource' must be an object")
        check_key_values(resource.get("attributes", []), f"{where}.resource.attributes")
        _check_type(rs.get("schemaUrl"), str, where, "schemaUrl")
        scope_spans = rs.get("scopeSpans", [])
        if not isinstance(scope_spans, list):
            _fail(where, "'scopeSpans' must be an array")
        for j, ss in enumerate(scope_spans):
            here = f"{where}.scopeSpans[{j}]"
            if not isinstance(ss, dict):
                _fail(here, "must be an object")
            scope = ss.get("scope", {})
            if not isinstance(scope, dict):
                _fail(here, "'scope' must be an object")
            _check_type(scope.get("name"), str, here, "scope.name")
            _check_type(scope.get("version"), str, here, "scope.version")
            check_key_values(scope.get("attributes", []), f"{here}.scope.attributes")
            spans = ss.get("spans", [])
            if not isinstance(spans, list):
                _fail(here, "'spans' must be an array")
            for k, span in enumerate(spans):
                check_span(span, f"{here}.spans[{k}]")
                triples.append((rs, ss, span))
    return triples


def collect_span_ids(doc) -> list[str]:
    """Best-effort list of spanIds, for the request log even when validation fails."""
    ids = []
    try:
        for rs in doc.get("resourceSpans") or []:
            for ss in rs.get("scopeSpans") or []:
                for span in ss.get("spans") or []:
                    if isinstance(span, dict) and isinstance(span.get("spanId"), str):
                        ids.append(span["spanId"])
    except (AttributeError, TypeError):
        pass
    return ids


# ---------------------------------------------------------------------------
# OTLP span -> Langfuse ingestion events (OtelIngestionProcessor behaviour)
# ---------------------------------------------------------------------------

LF_TRACE_NAME = "langfuse.trace.name"
LF_TRACE_TAGS = "langfuse.trace.tags"
LF_TRACE_PUBLIC = "langfuse.trace.public"
LF_TRACE_METADATA = "langfuse.trace.metadata"
LF_TRACE_INPUT = "langfuse.trace.input"
LF_TRACE_OUTPUT = "langfuse.trace.output"
LF_OBS_TYPE = "langfuse.observation.type"
LF_OBS_METADATA = "langfuse.observation.metadata"
LF_OBS_LEVEL = "langfuse.observation.level"
LF_OBS_STATUS = "langfuse.observation.status_message"
LF_OBS_INPUT = "langfuse.observation.input"
LF_OBS_OUTPUT = "langfuse.observation.output"
LF_OBS_COMPLETION_START = "langfuse.observation.completion_start_time"
LF_OBS_MODEL = "langfuse.observation.model.name"
LF_OBS_MODEL_PARAMS = "langfuse.observation.model.parameters"
LF_OBS_USAGE = "langfuse.observation.usage_details"
LF_OBS_COST = "langfuse.observation.cost_details"
LF_OBS_PROMPT_NAME = "langfuse.observation.prompt.name"
LF_OBS_PROMPT_VERSION = "langfuse.observation.prompt.version"
LF_ENVIRONMENT = "langfuse.environment"
LF_RELEASE = "langfuse.release"
LF_VERSION = "langfuse.version"
LF_AS_ROOT = "langfuse.internal.as_root"

TRACE_UPDATE_KEYS = (
    LF_TRACE_NAME, LF_TRACE_INPUT, LF_TRACE_OUTPUT, LF_TRACE_METADATA, "user.id",
    "session.id", LF_TRACE_PUBLIC, LF_TRACE_TAGS, "langfuse.user.id", "langfuse.session.id",
    f"{LF_OBS_METADATA}.langfuse_user_id", f"{LF_OBS_METADATA}.langfuse_session_id",
    f"{LF_OBS_METADATA}.langfuse_tags", f"{LF_TRACE_METADATA}.langfuse_session_id",
    f"{LF_TRACE_METADATA}.langfuse_user_id", f"{LF_TRACE_METADATA}.langfuse_tags",
    "ai.telemetry.metadata.sessionId", "ai.telemetry.metadata.userId",
    "ai.telemetry.metadata.tags", "tag.tags",
)
# Attribute keys treated as input/output (removed from metadata.attributes).
IO_KEYS = (
    LF_TRACE_INPUT, LF_TRACE_OUTPUT, LF_OBS_INPUT, LF_OBS_OUTPUT, "input.value",
    "output.value", "input", "output", "tool_arguments", "tool_response",
    "gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result", "gen_ai.system_instructions", "mlflow.spanInputs",
    "mlflow.spanOutputs", "traceloop.entity.input", "traceloop.entity.output",
)
IO_KEY_PREFIXES = ("gen_ai.prompt", "gen_ai.completion", "llm.input_messages",
                   "llm.output_messages", LF_TRACE_METADATA, LF_OBS_METADATA,
                   "ai.telemetry.metadata")
OBSERVATION_TYPES = ("SPAN", "GENERATION", "EVENT", "AGENT", "TOOL", "CHAIN", "RETRIEVER",
                     "EVALUATOR", "EMBEDDING", "GUARDRAIL")
MODEL_KEYS_FOR_TYPE = (LF_OBS_MODEL, "gen_ai.request.model", "gen_ai.response.model",
                       "llm.model_name", "model")
MODEL_NAME_KEYS = (LF_OBS_MODEL, "gen_ai.response.model", "ai.model.id",
                   "gen_ai.request.model", "llm.response.model", "llm.model_name", "model")
GEN_AI_OPERATION_TYPES = {
    "chat": "GENERATION", "completion": "GENERATION", "text_completion": "GENERATION",
    "generate_content": "GENERATION", "generate": "GENERATION", "embeddings": "EMBEDDING",
    "invoke_agent": "AGENT", "create_agent": "AGENT", "execute_tool": "TOOL",
}
OPENINFERENCE_TYPES = {
    "CHAIN": "CHAIN", "RETRIEVER": "RETRIEVER", "LLM": "GENERATION", "EMBEDDING": "EMBEDDING",
    "AGENT": "AGENT", "TOOL": "TOOL", "GUARDRAIL": "GUARDRAIL", "EVALUATOR": "EVALUATOR",
}
LEVEL_ALIASES = {
    "DEBUG": "DEBUG", "TRACE": "DEBUG", "VERBOSE": "DEBUG", "DEFAULT": "DEFAULT",
    "INFO": "DEFAULT", "LOG": "DEFAULT", "NOTICE": "DEFAULT", "OK": "DEFAULT",
    "SUCCESS": "DEFAULT", "WARNING": "WARNING", "WARN": "WARNING", "ERROR": "ERROR",
    "FATAL": "ERROR", "CRITICAL": "ERROR",
}


def any_value_to_plain(value: dict):
    """convertValueToPlainJavascript: kvlist/bytes values become their JSON text."""
    if "stringValue" in value:
        return value["stringValue"]
    if "doubleValue" in value:
        double = value["doubleValue"]
        if isinstance(double, str):
            number = js_number(double)
            return number if is_number(number) and math.isfinite(number) else double
        return double
    if "boolValue" in value:
        return value["boolValue"]
    if isinstance(value.get("arrayValue"), dict) and "values" in value["arrayValue"]:
        return [any_value_to_plain(v) for v in value["arrayValue"]["values"]]
    if "intValue" in value:
        return int(value["intValue"])
    return js_stringify(value)


def attributes_to_dict(items) -> dict:
    return {item["key"]: any_value_to_plain(item["value"]) for item in items or []}


def _nanos_to_ms(value) -> int:
    return int(value) // 1_000_000


def _scalar_to_text(value) -> str:
    return value if isinstance(value, str) else js_stringify(value)


def extract_name(span_name: str, attrs: dict) -> str:
    if js_truthy(attrs.get("gen_ai.tool.name")):
        return _scalar_to_text(attrs["gen_ai.tool.name"])
    if js_truthy(attrs.get("logfire.msg")):
        return _scalar_to_text(attrs["logfire.msg"])
    return span_name


def _spread(value) -> dict:
    """JS object spread of a parsed metadata value (arrays spread into index keys)."""
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    return {}


def extract_metadata(attrs: dict, domain: str) -> dict:
    prefix = LF_OBS_METADATA if domain == "observation" else LF_TRACE_METADATA
    blob = attrs.get(prefix) if js_truthy(attrs.get(prefix)) else attrs.get("langfuse.metadata")
    top: dict = {}
    if isinstance(blob, str):
        try:
            parsed = json_loads_strict(blob)
            if js_truthy(parsed) and isinstance(parsed, (dict, list)):
                top = _spread(parsed)
        except ValueError:
            top = {}
    elif isinstance(blob, (dict, list)):
        top = _spread(blob)
    prefixed = {}
    excluded = {"ai.telemetry.metadata.userId", "ai.telemetry.metadata.sessionId",
                "ai.telemetry.metadata.tags", "ai.telemetry.metadata.langfusePrompt"}
    for key, value in attrs.items():
        for pfx in (prefix, "langfuse.metadata", "ai.telemetry.metadata"):
            if key.startswith(pfx + ".") and key not in excluded and len(key) > len(pfx) + 1:
                prefixed[key[len(pfx) + 1:]] = value
    return {**top, **prefixed}


def filtered_attributes(attrs: dict) -> dict:
    """Span attributes kept in metadata.attributes (IO and metadata keys removed)."""
    out = {}
    for key, value in attrs.items():
        if key in IO_KEYS or key.startswith(IO_KEY_PREFIXES):
            continue
        out[key] = value if isinstance(value, str) else js_stringify(value)
    return out


def extract_input_output(attrs: dict, domain: str | None = None):
    """The Langfuse and OpenTelemetry GenAI conventions (framework-specific ones omitted)."""
    if domain == "trace" and js_truthy(attrs.get(LF_TRACE_INPUT)):
        inp = attrs[LF_TRACE_INPUT]
    else:
        inp = attrs.get(LF_OBS_INPUT)
    if domain == "trace" and js_truthy(attrs.get(LF_TRACE_OUTPUT)):
        out = attrs[LF_TRACE_OUTPUT]
    else:
        out = attrs.get(LF_OBS_OUTPUT)
    if inp is not None or out is not None:
        return inp, out
    for in_key, out_key in (("input.value", "output.value"), ("input", "output"),
                            ("tool_arguments", "tool_response"),
                            ("gen_ai.input.messages", "gen_ai.output.messages"),
                            ("gen_ai.tool.call.arguments", "gen_ai.tool.call.result")):
        inp, out = attrs.get(in_key), attrs.get(out_key)
        if js_truthy(inp) or js_truthy(out):
            return inp, out
    return None, None


def extract_environment(attrs: dict, resource_attrs: dict) -> str:
    for key in (LF_ENVIRONMENT, "deployment.environment.name", "deployment.environment"):
        if js_truthy(attrs.get(key)):
            return attrs[key]
        if js_truthy(resource_attrs.get(key)):
            return resource_attrs[key]
    return "default"


def _first_truthy_text(attrs: dict, keys) -> str | None:
    for key in keys:
        if js_truthy(attrs.get(key)):
            return _scalar_to_text(attrs[key])
    return None


def extract_user_id(attrs):
    return _first_truthy_text(attrs, ("langfuse.user.id", "user.id",
                                      f"{LF_OBS_METADATA}.langfuse_user_id",
                                      f"{LF_TRACE_METADATA}.langfuse_user_id",
                                      "ai.telemetry.metadata.userId"))


def extract_session_id(attrs):
    return _first_truthy_text(attrs, ("langfuse.session.id", "session.id",
                                      "gen_ai.conversation.id",
                                      f"{LF_OBS_METADATA}.langfuse_session_id",
                                      f"{LF_TRACE_METADATA}.langfuse_session_id",
                                      "ai.telemetry.metadata.sessionId"))


def extract_public(attrs):
    value = coalesce(attrs.get(LF_TRACE_PUBLIC), attrs.get("langfuse.public"))
    if value is None:
        return MISSING
    return value is True or value == "true"


def extract_tags(attrs) -> list:
    value = None
    for key in (LF_TRACE_TAGS, "langfuse.tags", f"{LF_OBS_METADATA}.langfuse_tags",
                f"{LF_TRACE_METADATA}.langfuse_tags", "ai.telemetry.metadata.tags", "tag.tags"):
        if js_truthy(attrs.get(key)):
            value = attrs[key]
            break
    if value is None:
        return []
    if isinstance(value, list):
        return [v if isinstance(v, str) else _scalar_to_text(v) for v in value]
    if isinstance(value, str):
        if value.strip().startswith("["):
            try:
                parsed = json_loads_strict(value)
                if isinstance(parsed, list):
                    return [v if isinstance(v, str) else _scalar_to_text(v) for v in parsed]
            except ValueError:
                pass
        if "," in value:
            return [tag.strip() for tag in value.split(",")]
        return [value]
    return []


def has_trace_updates(attrs: dict) -> bool:
    if any(js_truthy(attrs.get(key)) for key in TRACE_UPDATE_KEYS):
        return True
    return any(key.startswith(LF_TRACE_METADATA) for key in attrs)


def _sanitize_model_params(params):
    """Model parameter values must be strings or numbers; others get JSON-encoded."""
    if isinstance(params, (dict, list)):
        items = params.items() if isinstance(params, dict) else (
            (str(i), v) for i, v in enumerate(params))
        return {k: v if isinstance(v, str) or is_number(v) else js_stringify(v)
                for k, v in items}
    return params


def extract_model_parameters(attrs: dict):
    for key in (LF_OBS_MODEL_PARAMS, "llm.invocation_parameters", "model_config"):
        raw = attrs.get(key)
        if not js_truthy(raw):
            continue
        try:
            parsed = json_loads_strict(raw) if isinstance(raw, str) else raw
        except ValueError:
            continue  # invalid JSON: Langfuse falls through to the next source
        return _sanitize_model_params(parsed)
    params = {k[len("gen_ai.request."):]: v for k, v in attrs.items()
              if k.startswith("gen_ai.request.") and k != "gen_ai.request.model"}
    return _sanitize_model_params(params)


def _parse_json_object_attr(attrs: dict, key: str):
    """None = absent or invalid JSON (caller falls back); {} = wrong type; else the object."""
    raw = attrs.get(key)
    if not js_truthy(raw):
        return None
    if not isinstance(raw, str):
        return {}
    try:
        parsed = json_loads_strict(raw)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else {}


_GENAI_INPUT_KEYS = ("prompt_tokens", "input_tokens", "prompt")
_GENAI_OUTPUT_KEYS = ("completion_tokens", "output_tokens", "completion")
_GENAI_TOTAL_KEYS = ("total_tokens", "total")
_GENAI_CACHE_READ_KEYS = ("cache_read.input_tokens", "cache_read_tokens",
                          "details.cache_read_tokens", "details.cache_read_input_tokens",
                          "prompt_details.cache_read", "input_cached_tokens")
_GENAI_CACHE_WRITE_KEYS = ("cache_creation.input_tokens", "cache_write_tokens",
                           "details.cache_write_tokens", "details.cache_creation_input_tokens",
                           "prompt_details.cache_write", "input_cache_creation")


def extract_generic_genai_usage(attrs: dict) -> dict:
    raw = {}
    for key, value in attrs.items():
        if (key.startswith("gen_ai.usage.") and key != "gen_ai.usage.cost") or \
                key.startswith("llm.token_count."):
            short = key.replace("gen_ai.usage.", "", 1).replace("llm.token_count.", "", 1)
            number = js_number(value)
            if not (isinstance(number, float) and math.isnan(number)):
                raw[short] = number
    if not raw:
        return {}

    def pick(keys):
        return coalesce(*(raw.get(k) for k in keys))

    inp, out, total = pick(_GENAI_INPUT_KEYS), pick(_GENAI_OUTPUT_KEYS), pick(_GENAI_TOTAL_KEYS)
    cache_read, cache_write = pick(_GENAI_CACHE_READ_KEYS), pick(_GENAI_CACHE_WRITE_KEYS)
    consumed = set(_GENAI_INPUT_KEYS + _GENAI_OUTPUT_KEYS + _GENAI_TOTAL_KEYS
                   + _GENAI_CACHE_READ_KEYS + _GENAI_CACHE_WRITE_KEYS)
    usage = {}
    for key, value in raw.items():
        if key not in consumed:
            usage[key[len("details."):] if key.startswith("details.") else key] = value
    if inp is not None:
        usage["input"] = max(inp - (cache_read or 0) - (cache_write or 0), 0)
    if out is not None:
        usage["output"] = out
    if total is not None:
        usage["total"] = total
    if cache_read is not None:
        usage["input_cached_tokens"] = cache_read
    if cache_write is not None:
        usage["input_cache_creation"] = cache_write
    return usage


def extract_usage_details(attrs: dict) -> dict:
    from_attribute = _parse_json_object_attr(attrs, LF_OBS_USAGE)
    if from_attribute is not None:
        return from_attribute  # gen_ai.usage.* is then ignored entirely
    return extract_generic_genai_usage(attrs)


def extract_cost_details(attrs: dict) -> dict:
    from_attribute = _parse_json_object_attr(attrs, LF_OBS_COST)
    if from_attribute is not None:
        return from_attribute
    for key in ("gen_ai.usage.cost", "llm.cost.total"):
        value = attrs.get(key)
        if value is not None and value != "":
            return {"total": value}
    return {}


def extract_completion_start_time(attrs: dict):
    value = attrs.get(LF_OBS_COMPLETION_START)
    if value is None:
        return None
    if js_date_is_valid(value):
        return value
    if isinstance(value, str):  # older SDKs double-encode: "\"2025-...Z\""
        try:
            parsed = json_loads_strict(value)
            if js_date_is_valid(parsed):
                return parsed
        except ValueError:
            pass
    return None


def map_observation_type(attrs: dict, resource_attrs: dict, scope: dict) -> str:
    # Python SDK <= 3.3 sent type "span" for generations; Langfuse corrects that.
    if attrs.get(LF_OBS_TYPE) == "span" and scope.get("name") == "langfuse-sdk" and \
            resource_attrs.get("telemetry.sdk.language") == "python":
        version = str(scope.get("version") or "")
        parts = version.split(".")
        old = not version or (len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit()
                              and (int(parts[0]), int(parts[1])) <= (3, 3))
        generation_keys = (LF_OBS_MODEL, LF_OBS_COST, LF_OBS_USAGE, LF_OBS_COMPLETION_START,
                           LF_OBS_MODEL_PARAMS, LF_OBS_PROMPT_NAME, LF_OBS_PROMPT_VERSION)
        if old and any(key in attrs for key in generation_keys):
            return "GENERATION"

    def meaningful(value):
        return value not in (None, "", [], {})

    value = attrs.get(LF_OBS_TYPE)
    if meaningful(value) and isinstance(value, str) and value.upper() in OBSERVATION_TYPES \
            and value == value.lower():
        return value.upper()
    value = attrs.get("openinference.span.kind")
    if isinstance(value, str) and value in OPENINFERENCE_TYPES:
        return OPENINFERENCE_TYPES[value]
    value = attrs.get("gen_ai.operation.name")
    if isinstance(value, str) and value in GEN_AI_OPERATION_TYPES:
        return GEN_AI_OPERATION_TYPES[value]
    if meaningful(attrs.get("gen_ai.tool.name")) or meaningful(attrs.get("gen_ai.tool.call.id")):
        return "TOOL"
    if any(meaningful(attrs.get(key)) for key in MODEL_KEYS_FOR_TYPE):
        return "GENERATION"
    return "SPAN"


class OtelMapper:
    """Turns one validated OTLP export into Langfuse ingestion events."""

    def __init__(self, seen_traces: set[str]):
        self.seen_traces = set(seen_traces)

    def map_export(self, triples) -> list[dict]:
        events = []
        for rs, ss, span in triples:
            resource_attrs = attributes_to_dict(rs.get("resource", {}).get("attributes"))
            scope = ss.get("scope", {})
            scope_attrs = attributes_to_dict(scope.get("attributes"))
            events.extend(self.map_span(span, resource_attrs, scope, scope_attrs))
        return self._drop_redundant_shallow_traces(events)

    def map_span(self, span, resource_attrs, scope, scope_attrs) -> list[dict]:
        attrs = attributes_to_dict(span.get("attributes"))
        trace_id = span["traceId"]
        parent = span.get("parentSpanId") or None
        start_ms = _nanos_to_ms(span["startTimeUnixNano"])
        end_ms = _nanos_to_ms(span["endTimeUnixNano"])
        as_root = attrs.get(LF_AS_ROOT)
        is_root = parent is None or as_root is True or as_root == "true"
        updates = has_trace_updates(attrs)
        is_sdk_scope = str(scope.get("name") or "").startswith("langfuse-sdk")
        scope_meta = {**scope, "attributes": scope_attrs}
        ctx = dict(attrs=attrs, resource_attrs=resource_attrs, scope_meta=scope_meta,
                   is_sdk_scope=is_sdk_scope, span=span, trace_id=trace_id)
        events = []
        if is_root or updates or trace_id not in self.seen_traces:
            events.append(self._trace_event(ctx, start_ms, is_root, updates))
            self.seen_traces.add(trace_id)
        events.append(self._observation_event(ctx, parent, start_ms, end_ms))
        return events

    def _trace_event(self, ctx, start_ms, is_root, updates) -> dict:
        attrs, resource_attrs = ctx["attrs"], ctx["resource_attrs"]
        environment = extract_environment(attrs, resource_attrs)
        body = {"id": ctx["trace_id"], "timestamp": ms_to_iso(start_ms),
                "environment": environment}
        common_meta = {**extract_metadata(resource_attrs, "trace"),
                       **extract_metadata(attrs, "trace")}
        if is_root:
            inp, out = extract_input_output(attrs, "trace")
            name = attrs.get(LF_TRACE_NAME)
            metadata = {**common_meta, **extract_metadata(attrs, "observation")}
            if not ctx["is_sdk_scope"]:
                metadata["attributes"] = filtered_attributes(attrs)
            body.update(name=name if name is not None else
                        extract_name(ctx["span"]["name"], attrs), input=inp, output=out)
        elif updates:
            metadata = dict(common_meta)
            if LF_TRACE_NAME in attrs:
                body["name"] = attrs[LF_TRACE_NAME]
            for key, field in ((LF_TRACE_INPUT, "input"), (LF_TRACE_OUTPUT, "output")):
                if key in attrs:
                    body[field] = attrs[key]
        else:
            return self._envelope("trace-create", start_ms, body, shallow=True)
        metadata["resourceAttributes"] = resource_attrs
        metadata["scope"] = ctx["scope_meta"]
        body.update(
            metadata=metadata,
            version=coalesce(attrs.get(LF_VERSION), resource_attrs.get("service.version")),
            release=coalesce(attrs.get(LF_RELEASE), resource_attrs.get(LF_RELEASE)),
            tags=extract_tags(attrs),
        )
        for field, value in (("userId", extract_user_id(attrs)),
                             ("sessionId", extract_session_id(attrs)),
                             ("public", extract_public(attrs))):
            if value is not None and value is not MISSING:
                body[field] = value
        return self._envelope("trace-create", start_ms, body)

    def _observation_event(self, ctx, parent, start_ms, end_ms) -> dict:
        attrs, resource_attrs, span = ctx["attrs"], ctx["resource_attrs"], ctx["span"]
        obs_type = map_observation_type(attrs, resource_attrs, ctx["scope_meta"])
        metadata = {**extract_metadata(resource_attrs, "trace"),
                    **extract_metadata(attrs, "observation")}
        if not ctx["is_sdk_scope"]:
            metadata["attributes"] = filtered_attributes(attrs)
        metadata["resourceAttributes"] = resource_attrs
        metadata["scope"] = ctx["scope_meta"]
        status = span.get("status") or {}
        level = LEVEL_ALIASES.get(str(attrs.get(LF_OBS_LEVEL, "")).strip().upper()) \
            if isinstance(attrs.get(LF_OBS_LEVEL), str) else None
        if level is None:
            level = "ERROR" if status.get("code") == 2 else "DEFAULT"
        # Vercel-style agent spans repeat their children's usage; Langfuse ignores it there.
        agent_aggregate = attrs.get("gen_ai.operation.name") in ("invoke_agent", "agent_step")
        inp, out = extract_input_output(attrs)
        is_generation = obs_type == "GENERATION"
        body = {
            "id": span["spanId"], "traceId": ctx["trace_id"], "parentObservationId": parent,
            "name": extract_name(span["name"], attrs),
            "startTime": ms_to_iso(start_ms), "endTime": ms_to_iso(end_ms),
            "environment": extract_environment(attrs, resource_attrs),
            "completionStartTime": extract_completion_start_time(attrs),
            "metadata": metadata, "level": level,
            "statusMessage": coalesce(attrs.get(LF_OBS_STATUS), status.get("message")),
            "version": coalesce(attrs.get(LF_VERSION), resource_attrs.get("service.version")),
            "modelParameters": extract_model_parameters(attrs),
            "promptName": coalesce(attrs.get(LF_OBS_PROMPT_NAME),
                                   attrs.get("langfuse.prompt.name")) if is_generation else None,
            "promptVersion": coalesce(attrs.get(LF_OBS_PROMPT_VERSION),
                                      attrs.get("langfuse.prompt.version"))
            if is_generation else None,
            "usageDetails": {} if agent_aggregate else extract_usage_details(attrs),
            "costDetails": {} if agent_aggregate else extract_cost_details(attrs),
            "input": inp, "output": out,
        }
        model = None if agent_aggregate else _first_truthy_text(attrs, MODEL_NAME_KEYS)
        if model is not None:
            body["model"] = model
        # Like JSON.stringify on the way to the queue: undefined keys vanish, null stays.
        body = {k: v for k, v in body.items() if v is not MISSING}
        envelope = self._envelope(f"{obs_type.lower()}-create", None, body)
        envelope["_span_id"] = span["spanId"]
        return envelope

    @staticmethod
    def _envelope(event_type, start_ms, body, shallow=False) -> dict:
        # Observation events are stamped with the receive time, trace events with the
        # span start: that decides merge order exactly as in Langfuse.
        stamp = ms_to_iso(start_ms) if start_ms is not None else ms_to_iso(int(time.time() * 1000))
        return {"id": str(uuid.uuid4()), "type": event_type, "timestamp": stamp,
                "body": body, "_shallow": shallow}

    @staticmethod
    def _drop_redundant_shallow_traces(events):
        full = {e["body"]["id"] for e in events
                if e["type"] == "trace-create" and not e["_shallow"]}
        return [e for e in events
                if not (e["type"] == "trace-create" and e["_shallow"] and e["body"]["id"] in full)]


def scope_public_key_problem(triples, public_key: str) -> str | None:
    """Strictest historical Langfuse rule (see module docstring (b)): 403 message or None."""
    for _rs, ss, _span in triples:
        scope = ss.get("scope", {})
        if not str(scope.get("name") or "").startswith("langfuse-sdk"):
            continue
        scope_key = attributes_to_dict(scope.get("attributes")).get("public_key")
        if scope_key != public_key:
            return (f"Langfuse OTEL SDK span has different public key '{scope_key}' than used "
                    f"for authentication '{public_key}'. Discarding span.")
    return None


# ---------------------------------------------------------------------------
# Ingestion event validation (the zod schemas of packages/shared/.../ingestion/types.ts)
# ---------------------------------------------------------------------------


class Invalid(Exception):
    pass


_ENV_RE = re.compile(r"^(?!langfuse)[a-z0-9-_]+$")
LEVELS = ("DEBUG", "DEFAULT", "WARNING", "ERROR")
USAGE_UNITS = ("CHARACTERS", "TOKENS", "MILLISECONDS", "SECONDS", "IMAGES", "REQUESTS")
GENERATION_LIKE_EVENTS = ("generation-create", "generation-update", "agent-create",
                          "tool-create", "chain-create", "retriever-create",
                          "evaluator-create", "embedding-create", "guardrail-create")
EVENT_TYPE_TO_OBSERVATION_TYPE = {
    "event-create": "EVENT", "span-create": "SPAN", "span-update": "SPAN",
    "generation-create": "GENERATION", "generation-update": "GENERATION",
    "agent-create": "AGENT", "tool-create": "TOOL", "chain-create": "CHAIN",
    "retriever-create": "RETRIEVER", "evaluator-create": "EVALUATOR",
    "embedding-create": "EMBEDDING", "guardrail-create": "GUARDRAIL",
}
KNOWN_EVENT_TYPES = ("trace-create", "score-create", "sdk-log", "observation-create",
                     "observation-update") + tuple(EVENT_TYPE_TO_OBSERVATION_TYPE)
# Where Langfuse (and LANGFUSE.md) require an update to name its trace.
UPDATE_TYPES_NEEDING_TRACE_ID = ("span-update", "generation-update", "observation-update")


def v_id(value, path):
    if not isinstance(value, str) or not 1 <= len(value) <= 800 or "\r" in value:
        raise Invalid(f"{path}: must be a string of 1..800 characters without CR")
    return value


def v_str(value, path, max_len=None):
    if not isinstance(value, str):
        raise Invalid(f"{path}: expected string")
    if max_len is not None and len(value) > max_len:
        raise Invalid(f"{path}: longer than {max_len} characters")
    return value


def v_datetime(value, path):
    if parse_iso_offset_ms(value) is None:
        raise Invalid(f"{path}: must be an ISO 8601 datetime with Z or an offset "
                      f"(got {value!r})")
    return value


def v_bool(value, path):
    if not isinstance(value, bool):
        raise Invalid(f"{path}: expected boolean")
    return value


def v_int(value, path):
    if not is_int_number(value):
        raise Invalid(f"{path}: expected integer")
    return int(value)


def v_number(value, path):
    if not is_number(value) or not math.isfinite(value):
        raise Invalid(f"{path}: expected number")
    return value


def v_any(value, path):
    return value


def v_level(value, path):
    if value not in LEVELS:
        raise Invalid(f"{path}: must be one of {list(LEVELS)}")
    return value


def v_tags(value, path):
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise Invalid(f"{path}: expected an array of strings")
    return value


def v_environment(value, path):
    if not isinstance(value, str) or len(value) > 40 or not _ENV_RE.match(value):
        raise Invalid(f"{path}: only lower case alphanumerics, '-' and '_' (max 40), "
                      f"not starting with 'langfuse' (got {value!r})")
    return value


def v_record(value, path, check_value):
    if not isinstance(value, dict):
        raise Invalid(f"{path}: expected an object")
    return {k: (None if v is None else check_value(v, f"{path}.{k}")) for k, v in value.items()}


def _nonneg_int(value, path):
    if not is_int_number(value) or value < 0:
        raise Invalid(f"{path}: expected a non-negative integer")
    return int(value)


def _nonneg_number(value, path):
    if not is_number(value) or not math.isfinite(value) or value < 0:
        raise Invalid(f"{path}: expected a non-negative number")
    return value


def _openai_usage(value, names):
    """OpenAI-shaped usage objects (strict key sets) become input/output/total."""
    prompt_key, completion_key, total_key = names
    allowed = {prompt_key, completion_key, total_key,
               f"{prompt_key}_details", f"{completion_key}_details"}
    if set(value) - allowed or not {prompt_key, completion_key, total_key} <= set(value):
        return None
    try:
        result = {"input": _nonneg_int(value[prompt_key], "x"),
                  "output": _nonneg_int(value[completion_key], "x"),
                  "total": _nonneg_int(value[total_key], "x")}
        for side, key in (("input", f"{prompt_key}_details"), ("output", f"{completion_key}_details")):
            details = value.get(key)
            if details is None:
                continue
            for detail, count in v_record(details, "x", _nonneg_int).items():
                if count is not None:
                    result[f"{side}_{detail}"] = count
                    result[side] = max(result[side] - count, 0)
        return result
    except Invalid:
        return None


def v_usage_details(value, path):
    if not isinstance(value, dict):
        raise Invalid(f"{path}: expected an object of non-negative integers")
    for names in (("prompt_tokens", "completion_tokens", "total_tokens"),
                  ("input_tokens", "output_tokens", "total_tokens")):
        converted = _openai_usage(value, names)
        if converted is not None:
            return converted
    return v_record(value, path, _nonneg_int)


def v_cost_details(value, path):
    return v_record(value, path, _nonneg_number)


def v_model_parameters(value, path):
    def check(v, p):
        if isinstance(v, str) or is_number(v) or isinstance(v, bool):
            return v
        if isinstance(v, list) and all(isinstance(x, str) for x in v):
            return v
        if isinstance(v, dict) and all(isinstance(x, str) for x in v.values()):
            return v
        raise Invalid(f"{p}: unsupported model parameter value")
    return v_record(value, path, check)


def v_legacy_usage(value, path):
    if not isinstance(value, dict):
        raise Invalid(f"{path}: expected an object")
    out = {}
    for key in ("input", "output", "total", "promptTokens", "completionTokens", "totalTokens"):
        if value.get(key) is not None:
            out[key] = v_int(value[key], f"{path}.{key}")
    for key in ("inputCost", "outputCost", "totalCost"):
        if value.get(key) is not None:
            out[key] = v_number(value[key], f"{path}.{key}")
    if value.get("unit") is not None:
        if value["unit"] not in USAGE_UNITS:
            raise Invalid(f"{path}.unit: must be one of {list(USAGE_UNITS)}")
        out["unit"] = value["unit"]
    if any(k in out for k in ("promptTokens", "completionTokens", "totalTokens")):
        return {"input": out.get("promptTokens"), "output": out.get("completionTokens"),
                "total": out.get("totalTokens"), "unit": "TOKENS"}
    return out or None


def v_enum(*allowed):
    def check(value, path):
        if value not in allowed:
            raise Invalid(f"{path}: must be one of {list(allowed)}")
        return value
    return check


def v_nonempty_str(value, path):
    if not isinstance(value, str) or value == "":
        raise Invalid(f"{path}: must be a non-empty string")
    return value


def v_score_value(value, path):
    if not (isinstance(value, str) or is_number(value)):
        raise Invalid(f"{path}: expected number or string")
    return value


def _opt(check):
    return (check, False)


def _req(check):
    return (check, True)


TRACE_BODY = {
    "id": _opt(v_id), "timestamp": _opt(v_datetime),
    "name": _opt(lambda v, p: v_str(v, p, 1000)), "externalId": _opt(v_str),
    "input": _opt(v_any), "output": _opt(v_any), "sessionId": _opt(v_str),
    "userId": _opt(v_str), "metadata": _opt(v_any), "release": _opt(v_str),
    "version": _opt(v_str), "public": _opt(v_bool), "tags": _opt(v_tags),
}
OBSERVATION_BASE = {
    "traceId": _opt(v_id), "name": _opt(v_str), "startTime": _opt(v_datetime),
    "metadata": _opt(v_any), "input": _opt(v_any), "output": _opt(v_any),
    "level": _opt(v_level), "statusMessage": _opt(v_str),
    "parentObservationId": _opt(v_str), "version": _opt(v_str),
}
EVENT_BODY = {**OBSERVATION_BASE, "id": _req(v_id)}
SPAN_BODY = {**EVENT_BODY, "endTime": _opt(v_datetime)}
GENERATION_BODY = {
    **SPAN_BODY, "completionStartTime": _opt(v_datetime), "model": _opt(v_str),
    "modelParameters": _opt(v_model_parameters), "usage": _opt(v_legacy_usage),
    "usageDetails": _opt(v_usage_details), "costDetails": _opt(v_cost_details),
    "promptName": _opt(v_str), "promptVersion": _opt(v_int),
}
LEGACY_OBSERVATION_BODY = {
    **{k: v for k, v in GENERATION_BODY.items() if k not in ("promptName", "promptVersion")},
    "id": _opt(v_id),
    "type": _req(v_enum("GENERATION", "SPAN", "EVENT")),
}
SCORE_BODY = {
    "id": _opt(v_id), "name": _req(v_nonempty_str), "value": _req(v_score_value),
    "traceId": _opt(v_str), "sessionId": _opt(v_str), "datasetRunId": _opt(v_str),
    "observationId": _opt(v_str), "comment": _opt(v_str), "metadata": _opt(v_any),
    "configId": _opt(v_str), "source": _opt(v_enum("API", "EVAL", "ANNOTATION")),
    "dataType": _opt(v_enum("NUMERIC", "CATEGORICAL", "BOOLEAN")),
}
SDK_LOG_BODY = {"log": _req(v_any), "id": _opt(v_str)}


def body_schema(event_type: str) -> dict:
    if event_type == "trace-create":
        return TRACE_BODY
    if event_type == "event-create":
        return EVENT_BODY
    if event_type in ("span-create", "span-update"):
        return SPAN_BODY
    if event_type in GENERATION_LIKE_EVENTS:
        return GENERATION_BODY
    if event_type in ("observation-create", "observation-update"):
        return LEGACY_OBSERVATION_BODY
    if event_type == "score-create":
        return SCORE_BODY
    return SDK_LOG_BODY


def validate_body(event_type: str, body) -> dict:
    """Parse like zod: unknown keys stripped, nullish fields kept as null, defaults filled."""
    if not isinstance(body, dict):
        raise Invalid("body: expected an object")
    schema = body_schema(event_type)
    out = {}
    for key, (check, required) in schema.items():
        if key not in body:
            if required:
                raise Invalid(f"body.{key}: required")
            continue  # absent stays absent (JS undefined): it will not overwrite anything
        if body[key] is None:
            if required and key != "log":  # an sdk-log may log null
                raise Invalid(f"body.{key}: required")
            out[key] = None  # explicit null is kept: it does overwrite on merge
            continue
        out[key] = check(body[key], f"body.{key}")
    if event_type not in ("sdk-log", "observation-create", "observation-update"):
        # zod .default() fills in only a missing value; an explicit null is an error.
        out["environment"] = v_environment(body["environment"], "body.environment") \
            if "environment" in body else "default"
    if event_type == "score-create":
        out.setdefault("source", "API")
        _check_score_value(out)
    if schema is GENERATION_BODY:
        # Langfuse's refine: promptName and promptVersion come together or not at all.
        if js_truthy(out.get("promptName")) != js_truthy(out.get("promptVersion")):
            raise Invalid("body: promptName and promptVersion must both be set or both unset")
    if event_type in UPDATE_TYPES_NEEDING_TRACE_ID and not out.get("traceId"):
        raise Invalid(f"body.traceId: required for {event_type}")
    return out


def _check_score_value(body):
    data_type, value = body.get("dataType"), body.get("value")
    if data_type == "NUMERIC" and not is_number(value):
        raise Invalid("body.value: NUMERIC scores need a number")
    if data_type == "CATEGORICAL" and not isinstance(value, str):
        raise Invalid("body.value: CATEGORICAL scores need a string")
    if data_type == "BOOLEAN" and value not in (0, 1):
        raise Invalid("body.value: BOOLEAN scores need 0 or 1")


def validate_event(event) -> dict:
    """Validate one ingestion event envelope; return the normalized event or raise Invalid."""
    if not isinstance(event, dict):
        raise Invalid("event: expected an object")
    v_id(event.get("id"), "id")
    if "timestamp" not in event:
        raise Invalid("timestamp: required")
    v_datetime(event["timestamp"], "timestamp")
    event_type = event.get("type")
    if event_type not in KNOWN_EVENT_TYPES:
        raise Invalid(f"type: invalid discriminator value {event_type!r}; expected one of "
                      f"{list(KNOWN_EVENT_TYPES)}")
    body = validate_body(event_type, event.get("body"))
    return {"id": event["id"], "timestamp": event["timestamp"], "type": event_type,
            "body": body, "metadata": event.get("metadata")}


# ---------------------------------------------------------------------------
# Store: traces, observations, scores, merged like worker/.../IngestionService
# ---------------------------------------------------------------------------

TRACE_IMMUTABLE = ("id", "timestamp", "created_at", "environment")
OBSERVATION_IMMUTABLE = ("id", "trace_id", "start_time", "created_at", "environment")


def lodash_merge(dst, src):
    """lodash.merge: deep merge objects, arrays index-wise; undefined never overwrites."""
    if isinstance(src, dict):
        result = dict(dst) if isinstance(dst, dict) else {}
        for key, value in src.items():
            result[key] = lodash_merge(result.get(key), value) \
                if isinstance(value, (dict, list)) else value
        return result
    if isinstance(src, list):
        result = list(dst) if isinstance(dst, list) else []
        for i, value in enumerate(src):
            merged = lodash_merge(result[i] if i < len(result) else None, value) \
                if isinstance(value, (dict, list)) else value
            if i < len(result):
                result[i] = merged
            else:
                result.append(merged)
        return result
    return copy.deepcopy(src)


def overwrite_record(old: dict, new: dict, immutable) -> dict:
    """overwriteObject(): later values win unless undefined or an empty object/array."""
    result = dict(old)
    for key, value in new.items():
        if key in immutable and key in old:
            continue
        if isinstance(value, (dict, list)) and not value:
            result.setdefault(key, type(value)())
            continue
        result[key] = value
    old_meta, new_meta = old.get("metadata"), new.get("metadata")
    if not js_truthy(old_meta) and js_truthy(new_meta):
        result["metadata"] = new_meta
    elif not js_truthy(new_meta) and js_truthy(old_meta):
        result["metadata"] = old_meta
    else:
        result["metadata"] = lodash_merge(old_meta or {}, new_meta or {})
    if "tags" in result:
        result["tags"] = sorted(set(old.get("tags") or []) | set(new.get("tags") or []))
    return result


def metadata_record(metadata) -> dict:
    """convertJsonSchemaToRecord: a literal or array metadata becomes {"metadata": ...}."""
    if not js_truthy(metadata):
        return {}
    if isinstance(metadata, (str, bool)) or is_number(metadata):
        return {"metadata": metadata if isinstance(metadata, str) else js_stringify(metadata)}
    if isinstance(metadata, list):
        return {"metadata": js_stringify(metadata)}
    return copy.deepcopy(metadata)


def time_sorted(events):
    """Events of one entity: by event timestamp, creates before updates on ties."""
    return sorted(events, key=lambda e: (parse_iso_offset_ms(e["timestamp"]),
                                         0 if "create" in e["type"] else 1))


def sort_batch(events):
    """processEventBatch sortBatch: non-update events first, each part by timestamp."""
    updates = [e for e in events if e["type"] in UPDATE_TYPES_NEEDING_TRACE_ID]
    others = [e for e in events if e["type"] not in UPDATE_TYPES_NEEDING_TRACE_ID]
    key = lambda e: parse_iso_offset_ms(e["timestamp"])  # noqa: E731
    return sorted(others, key=key) + sorted(updates, key=key)


def entity_kind(event_type: str) -> str:
    if event_type == "trace-create":
        return "trace"
    if event_type == "score-create":
        return "score"
    return "observation"


def _last_truthy(events, field, fallback):
    for event in reversed(events):
        if js_truthy(event["body"].get(field)):
            return stringify_io(event["body"][field])
    return fallback


def _valid_session_id(session_id):
    if not isinstance(session_id, str):
        return session_id
    if len(session_id) >= SESSION_ID_MAX_LEN or not session_id.isascii():
        return MISSING
    return session_id


class Store:
    """All state the read API and /_test endpoints expose. Guarded by the caller's lock."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.traces: dict[str, dict] = {}
        self.observations: dict[str, dict] = {}
        self.scores: dict[str, dict] = {}
        self.seen_traces: dict[str, float] = {}
        self.applied_event_ids: set[str] = set()
        self.deliveries: dict[str, dict] = {}
        self.duplicates = 0
        self.spans_received = 0
        self.events_received = 0
        self.dropped_observations = 0

    # -- OTLP -------------------------------------------------------------
    def ingest_otlp(self, triples) -> list[dict]:
        """Map and apply an accepted export; return the list of dropped events."""
        now = time.monotonic()
        request_traces = {span["traceId"] for _rs, _ss, span in triples}
        seen = {t for t in request_traces
                if now - self.seen_traces.get(t, -1e18) < SEEN_TRACE_TTL_S}
        for trace_id in request_traces - seen:  # SET NX: only unseen/expired keys re-arm
            self.seen_traces[trace_id] = now
        events = OtelMapper(seen).map_export(triples)
        self.spans_received += len(triples)
        for _rs, _ss, span in triples:
            record = self.deliveries.setdefault(span["spanId"], {"delivered": 0, "applied": 0})
            record["delivered"] += 1
            if record["delivered"] > 1:
                self.duplicates += 1
        valid, dropped = [], []
        for event in events:
            try:
                normalized = validate_event(event)
            except Invalid as err:
                # Langfuse answers 200 first and drops the event later in its worker.
                body, is_trace = event["body"], event["type"] == "trace-create"
                dropped.append({"event_type": event["type"], "reason": str(err),
                                "span_id": None if is_trace else body.get("id"),
                                "trace_id": body.get("id") if is_trace else body.get("traceId")})
                if not is_trace:
                    self.dropped_observations += 1
                continue
            valid.append(normalized)
        self.apply_events(valid)
        for event in valid:
            if entity_kind(event["type"]) == "observation":
                self.deliveries[event["body"]["id"]]["applied"] += 1
        return dropped

    # -- ingestion API ----------------------------------------------------------
    def ingest_batch(self, batch: list, reject_ids: set) -> dict:
        successes, errors, to_apply = [], [], []
        self.events_received += len(batch)
        for raw in batch:
            event_id = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) \
                else "unknown"
            try:
                event = validate_event(raw)
            except Invalid as err:
                errors.append({"id": event_id, "status": 400, "message": "Invalid request data",
                               "error": str(err)})
                continue
            body_id = event["body"].get("id")
            is_observation = entity_kind(event["type"]) == "observation" and \
                event["type"] != "sdk-log" and body_id
            if is_observation:
                self.deliveries.setdefault(body_id, {"delivered": 0, "applied": 0})
                self.deliveries[body_id]["delivered"] += 1
            if event_id in reject_ids:
                errors.append({"id": event_id, "status": 400, "message": "Invalid request data",
                               "error": "rejected by the test receiver (reject_events mode)"})
                continue
            successes.append({"id": event_id, "status": 201})
            if event_id in self.applied_event_ids:
                self.duplicates += 1  # resent event: reported as success, applied once
                continue
            self.applied_event_ids.add(event_id)
            to_apply.append(event)
            if is_observation:
                self.deliveries[body_id]["applied"] += 1
        self.apply_events(to_apply)
        return {"successes": successes, "errors": errors}

    # -- merge ------------------------------------------------------------------
    def apply_events(self, events):
        groups: dict[tuple, list] = {}
        for event in sort_batch(events):
            if event["type"] == "sdk-log" or not event["body"].get("id"):
                continue  # Langfuse stores nothing for logs or bodies without an id
            groups.setdefault((entity_kind(event["type"]), event["body"]["id"]), []).append(event)
        for (kind, entity_id), group in groups.items():
            group = time_sorted(group)
            if kind == "trace":
                self._merge_trace(entity_id, group)
            elif kind == "observation":
                self._merge_observation(entity_id, group)
            else:
                self._merge_score(entity_id, group)

    def _merge_trace(self, trace_id, events):
        existing = self.traces.get(trace_id)
        chain = ([existing] if existing else []) + [self._trace_record(e, trace_id) for e in events]
        merged = {"id": trace_id}
        for record in chain:
            merged = overwrite_record(merged, record, TRACE_IMMUTABLE)
        now = int(time.time() * 1000)
        merged["input"] = _last_truthy(events, "input", (existing or {}).get("input"))
        merged["output"] = _last_truthy(events, "output", (existing or {}).get("output"))
        merged["created_at"] = (existing or {}).get("created_at", now)
        merged["updated_at"] = now
        self.traces[trace_id] = merged

    @staticmethod
    def _trace_record(event, trace_id) -> dict:
        body = event["body"]
        record = {
            "id": trace_id,
            "timestamp": parse_iso_offset_ms(coalesce(body.get("timestamp"), event["timestamp"])),
            "metadata": metadata_record(body.get("metadata")),
            "environment": body.get("environment", "default"),
            "public": coalesce(body.get("public"), False),
            "tags": body.get("tags") or [],
        }
        for field, column in (("name", "name"), ("userId", "user_id"), ("release", "release"),
                              ("version", "version"), ("sessionId", "session_id")):
            if field in body:
                record[column] = body[field]
        if "session_id" in record and _valid_session_id(record["session_id"]) is MISSING:
            del record["session_id"]
        return record

    def _merge_observation(self, obs_id, events):
        existing = self.observations.get(obs_id)
        chain = ([existing] if existing else []) + [self._observation_record(e, obs_id)
                                                    for e in events]
        merged = {"id": obs_id}
        for record in chain:
            merged = overwrite_record(merged, record, OBSERVATION_IMMUTABLE)
        if merged.get("level") is None:
            merged["level"] = "DEFAULT"
        merged["input"] = _last_truthy(events, "input", (existing or {}).get("input"))
        merged["output"] = _last_truthy(events, "output", (existing or {}).get("output"))
        merged.update(self._final_usage_and_cost(merged))
        if merged.get("end_time") is not None and merged["end_time"] < merged["start_time"]:
            merged["end_time"] = merged["start_time"]
        now = int(time.time() * 1000)
        merged["created_at"] = (existing or {}).get("created_at", now)
        merged["updated_at"] = now
        self.observations[obs_id] = merged

    @staticmethod
    def _observation_record(event, obs_id) -> dict:
        body, event_type = event["body"], event["type"]
        obs_type = body["type"] if event_type.startswith("observation-") \
            else EVENT_TYPE_TO_OBSERVATION_TYPE[event_type]
        record = {
            "id": obs_id,
            "trace_id": body.get("traceId") or str(uuid.uuid4()),
            "type": obs_type,
            "environment": body.get("environment", "default"),
            "start_time": parse_iso_offset_ms(coalesce(body.get("startTime"), event["timestamp"])),
            "metadata": metadata_record(body.get("metadata")),
        }
        if "name" in body:
            record["name"] = body["name"]
        for field, column in (("endTime", "end_time"),
                              ("completionStartTime", "completion_start_time")):
            if js_truthy(body.get(field)):
                record[column] = parse_iso_offset_ms(body[field])
        if "model" in body:
            record["provided_model_name"] = body["model"]
        if js_truthy(body.get("modelParameters")):
            record["model_parameters"] = js_stringify(body["modelParameters"])
        if "level" in body:
            record["level"] = body["level"]
        for field, column in (("statusMessage", "status_message"),
                              ("parentObservationId", "parent_observation_id"),
                              ("version", "version")):
            if body.get(field) is not None:
                record[column] = body[field]
        usage, cost = Store._provided_usage_and_cost(body)
        record.update(provided_usage_details=usage, usage_details=dict(usage),
                      provided_cost_details=cost, cost_details=dict(cost))
        return record

    @staticmethod
    def _provided_usage_and_cost(body):
        usage = body.get("usage") or {}
        usage_details = body.get("usageDetails") or {}
        new_in, new_out = usage.get("input"), usage.get("output")
        computed_total = None
        if not usage_details:
            computed_total = new_in + new_out if js_truthy(new_in) and js_truthy(new_out) \
                else coalesce(new_in, new_out)
        new_total = usage.get("total") if js_truthy(usage.get("total")) else computed_total
        provided = {k: v for k, v in (("input", new_in), ("output", new_out),
                                      ("total", new_total)) if v is not None}
        provided.update({k: v for k, v in usage_details.items() if v is not None})
        cost = {k: usage.get(src) for k, src in (("input", "inputCost"), ("output", "outputCost"),
                                                  ("total", "totalCost"))
                if usage.get(src) is not None}
        cost.update({k: v for k, v in (body.get("costDetails") or {}).items() if v is not None})
        return provided, cost

    @staticmethod
    def _final_usage_and_cost(record) -> dict:
        """getGenerationUsage without a model price table (no model is ever matched)."""
        usage = {k: v for k, v in (record.get("provided_usage_details") or {}).items()
                 if v is not None and v >= 0}
        if usage and "total" not in usage:
            usage["total"] = sum(usage.values())
        provided_cost = {k: v for k, v in (record.get("provided_cost_details") or {}).items()
                         if v is not None}
        if provided_cost:
            cost = dict(provided_cost)
            total = provided_cost.get("total")
            if total is None and set(provided_cost) <= {"input", "output"}:
                total = provided_cost.get("input", 0) + provided_cost.get("output", 0)
            if "total" not in cost and total is not None:
                cost["total"] = total
        else:
            cost, total = {}, None
        return {"usage_details": usage, "cost_details": cost, "total_cost": total}

    def _merge_score(self, score_id, events):
        for event in events:
            body = event["body"]
            score = dict(self.scores.get(score_id, {}))
            score.update({k: v for k, v in body.items() if v is not None})
            score.setdefault("timestamp", parse_iso_offset_ms(event["timestamp"]))
            self.scores[score_id] = score

    # -- views -------------------------------------------------------------------
    def trace_observations(self, trace_id) -> list[dict]:
        found = [o for o in self.observations.values() if o["trace_id"] == trace_id]
        return sorted(found, key=lambda o: (o["start_time"], o["id"]))

    def stats(self, request_count: int) -> dict:
        return {"requests": request_count, "spans_received": self.spans_received,
                "events_received": self.events_received,
                "observations": len(self.observations), "traces": len(self.traces),
                "duplicates": self.duplicates, "dropped_observations": self.dropped_observations}


# ---------------------------------------------------------------------------
# Read API shapes (langfuse-openapi.yml: TraceWithFullDetails, ObservationsView, ...)
# ---------------------------------------------------------------------------


def _iso_or_none(ms):
    return ms_to_iso(ms) if ms is not None else None


def _metadata_view(metadata) -> dict:
    # Stored as Map(String, String); every value is JSON-parsed again on read.
    return {k: parse_json_prioritised(v) if isinstance(v, str) else v
            for k, v in (metadata or {}).items()}


def _reduce_details(details: dict):
    """reduceUsageOrCostDetails: sums over keys starting with input/output; total or 0."""
    def side(prefix):
        values = [v for k, v in details.items() if k.startswith(prefix)]
        return sum(values) if values else None
    return side("input"), side("output"), details.get("total", 0) or 0


def observation_view(obs: dict) -> dict:
    usage, cost = obs.get("usage_details") or {}, obs.get("cost_details") or {}
    usage_in, usage_out, usage_total = _reduce_details(usage)
    cost_in, cost_out, cost_total = _reduce_details(cost)
    start, end, first_token = obs["start_time"], obs.get("end_time"), obs.get("completion_start_time")
    model_parameters = obs.get("model_parameters")
    return {
        "id": obs["id"], "projectId": PROJECT_ID, "traceId": obs["trace_id"],
        "parentObservationId": obs.get("parent_observation_id"), "name": obs.get("name"),
        "type": obs["type"], "environment": obs.get("environment", "default"),
        "startTime": ms_to_iso(start), "endTime": _iso_or_none(end),
        "version": obs.get("version"), "createdAt": ms_to_iso(obs["created_at"]),
        "updatedAt": ms_to_iso(obs["updated_at"]),
        "input": parse_json_prioritised(obs.get("input")),
        "output": parse_json_prioritised(obs.get("output")),
        "metadata": _metadata_view(obs.get("metadata")), "level": obs.get("level", "DEFAULT"),
        "statusMessage": obs.get("status_message"), "model": obs.get("provided_model_name"),
        "modelParameters": json.loads(model_parameters) if model_parameters else None,
        "completionStartTime": _iso_or_none(first_token),
        # Prompts link only to prompts stored in Langfuse; this receiver stores none.
        "promptId": None, "promptName": None, "promptVersion": None,
        "usageDetails": usage, "costDetails": cost,
        "usage": {"unit": "TOKENS", "input": usage_in or 0, "output": usage_out or 0,
                  "total": usage_total},
        "unit": "TOKENS", "promptTokens": usage_in or 0, "completionTokens": usage_out or 0,
        "totalTokens": usage_total, "usagePricingTierName": None, "usagePricingTierId": None,
        "modelId": None, "inputPrice": None, "outputPrice": None, "totalPrice": None,
        "calculatedInputCost": cost_in, "calculatedOutputCost": cost_out,
        "calculatedTotalCost": cost_total,
        "latency": (end - start) / 1000 if end is not None else None,
        "timeToFirstToken": (first_token - start) / 1000 if first_token is not None else None,
    }


def _trace_latency_seconds(observations) -> float:
    starts = sorted(o["start_time"] for o in observations)
    ends = sorted(o["end_time"] for o in observations if o.get("end_time") is not None)
    if not starts:
        return 0
    if ends:
        return (ends[-1] - starts[0]) / 1000
    return (starts[-1] - starts[0]) / 1000 if len(starts) > 1 else 0


def score_view(score: dict) -> dict:
    value = score.get("value")
    return {
        "id": score.get("id"), "traceId": score.get("traceId"), "name": score.get("name"),
        "source": score.get("source", "API"), "observationId": score.get("observationId"),
        "timestamp": ms_to_iso(score["timestamp"]), "comment": score.get("comment"),
        "dataType": score.get("dataType") or ("CATEGORICAL" if isinstance(value, str) else "NUMERIC"),
        "value": value if is_number(value) else 0,
        "stringValue": value if isinstance(value, str) else None,
        "environment": score.get("environment", "default"), "configId": score.get("configId"),
        "metadata": score.get("metadata") or {},
    }


def trace_base_view(trace: dict) -> dict:
    return {
        "id": trace["id"], "projectId": PROJECT_ID, "name": trace.get("name"),
        "timestamp": ms_to_iso(trace["timestamp"]), "environment": trace.get("environment"),
        "tags": trace.get("tags") or [], "bookmarked": False,
        "public": bool(trace.get("public")), "release": trace.get("release"),
        "version": trace.get("version"), "userId": trace.get("user_id"),
        "sessionId": trace.get("session_id"),
        "input": parse_json_prioritised(trace.get("input")),
        "output": parse_json_prioritised(trace.get("output")),
        "metadata": _metadata_view(trace.get("metadata")),
        "createdAt": ms_to_iso(trace["created_at"]), "updatedAt": ms_to_iso(trace["updated_at"]),
        "externalId": None,
    }


def trace_view(store: Store, trace: dict, full: bool) -> dict:
    observations = store.trace_observations(trace["id"])
    views = [observation_view(o) for o in observations]
    scores = [s for s in store.scores.values() if s.get("traceId") == trace["id"]]
    view = trace_base_view(trace)
    view.update(
        htmlPath=f"/project/{PROJECT_ID}/traces/{trace['id']}",
        latency=_trace_latency_seconds(observations),
        totalCost=sum(v["calculatedTotalCost"] or 0 for v in views),
        observations=views if full else [v["id"] for v in views],
        scores=[score_view(s) for s in scores] if full else [s.get("id") for s in scores],
    )
    return view


def paginate(items, page: int, limit: int) -> dict:
    total = len(items)
    start = (page - 1) * limit
    return {"data": items[start:start + limit],
            "meta": {"page": page, "limit": limit, "totalItems": total,
                     "totalPages": math.ceil(total / limit) if limit else 0}}


# ---------------------------------------------------------------------------
# Langfuse v4: one immutable row per exported span (the events table)
# ---------------------------------------------------------------------------

# The model table of a v4 server decides which observations get guessed usage and a price
# (see the module docstring, v4 (d)).  Langfuse ships real prices; these are the test
# models' (tests/support/anthropic_server.py MODELS), per token, with Anthropic's price keys
# and the aliases Langfuse's table gives them.  claude-opus-5-5 does not exist: it is priced
# like claude-sonnet-4-5 ($3 / $15 per million input / output tokens).
def _anthropic_prices(input_per_mtok: float, output_per_mtok: float) -> dict:
    per_token = {"input": input_per_mtok / 1e6, "output": output_per_mtok / 1e6,
                 "cache_read": input_per_mtok / 10 / 1e6,
                 "cache_write": input_per_mtok * 1.25 / 1e6}
    return {
        "input": per_token["input"], "input_tokens": per_token["input"],
        "output": per_token["output"], "output_tokens": per_token["output"],
        "cache_read_input_tokens": per_token["cache_read"],
        "input_cached_tokens": per_token["cache_read"],
        "input_cache_read": per_token["cache_read"],
        "cache_creation_input_tokens": per_token["cache_write"],
        "input_cache_creation": per_token["cache_write"],
    }


TEST_MODELS = (
    {"id": "receiver-claude-opus-5-5", "name": "claude-opus-5-5",
     "pattern": re.compile(r"^(anthropic/)?claude-opus-5-5(-\d{8})?$", re.I),
     "prices": _anthropic_prices(3, 15)},
    {"id": "receiver-claude-sonnet-4-5", "name": "claude-sonnet-4-5",
     "pattern": re.compile(r"^(anthropic/)?claude-sonnet-4-5(-\d{8})?$", re.I),
     "prices": _anthropic_prices(3, 15)},
    {"id": "receiver-claude-haiku-4-5", "name": "claude-haiku-4-5",
     "pattern": re.compile(r"^(anthropic/)?claude-haiku-4-5(-\d{8})?$", re.I),
     "prices": _anthropic_prices(1, 5)},
)
PRICING_TIER_NAME = "Standard"  # Langfuse's name for a model's default pricing tier
COST_DECIMALS = 12  # cost columns are Decimal(18, 12)


def find_model(name):
    """findModel: the table entry whose pattern matches the given model name, or None."""
    if not name:
        return None
    return next((m for m in TEST_MODELS if m["pattern"].match(name)), None)


def approx_token_count(text):
    """Stand-in for Langfuse's tokenizer ("claude": @anthropic-ai/tokenizer): about four
    characters a token, rounded up.  None (no input/output at all) counts nothing, as there."""
    if text is None:
        return None
    return math.ceil(len(text) / 4)


def _cost_number(value):
    number = js_number(value)
    if not is_number(number) or not math.isfinite(number):
        return None
    return number


def v4_usage_and_cost(model_name, provided_usage: dict, provided_cost: dict,
                      input_text, output_text) -> dict:
    """IngestionService.getGenerationUsage + calculateUsageCosts on the events path.

    Runs for any observation type once it names a model or carries usage or cost.  Given
    usage and cost are used as given; usage without cost is priced from the model table;
    a known model with neither gets its tokens counted from the input/output text (the
    "guess")."""
    model = find_model(model_name)
    usage = {k: v for k, v in provided_usage.items()
             if v is not None and is_number(v) and v >= 0}
    cost_given = {k: v for k, v in provided_cost.items() if v is not None}
    if model and not usage and not cost_given:
        counted_in, counted_out = approx_token_count(input_text), approx_token_count(output_text)
        usage = {}
        if counted_in is not None:
            usage["input"] = counted_in
        if counted_out is not None:
            usage["output"] = counted_out
        if counted_in or counted_out:
            usage["total"] = (counted_in or 0) + (counted_out or 0)
    elif usage and "total" not in usage:
        usage["total"] = sum(usage.values())

    tier_prices = model["prices"] if model and usage else {}
    if cost_given:
        cost = dict(cost_given)
        total = cost_given.get("total")
        if total is None and set(cost_given) <= {"input", "output"}:
            total = cost_given.get("input", 0) + cost_given.get("output", 0)
        if "total" not in cost and total is not None:
            cost["total"] = total
    else:
        cost = {key: units * tier_prices[key] for key, units in usage.items()
                if key in tier_prices}
        if cost and "total" not in cost:
            cost["total"] = sum(cost.values())
    cost = {k: round(v, COST_DECIMALS) for k, v in cost.items()}
    return {"usage_details": usage, "cost_details": cost, "provided_usage_details": provided_usage,
            "provided_cost_details": provided_cost,
            "model_id": model["id"] if model else "",
            "usage_pricing_tier_name": PRICING_TIER_NAME if tier_prices else None}


def flatten_metadata(value: dict, prefix: str = "") -> list[tuple[str, str | None]]:
    """flattenJsonToPathArrays: nested objects become dotted paths, leaves strings."""
    pairs = []
    for key, item in value.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(item, dict):
            pairs.extend(flatten_metadata(item, path))
        elif item is None or isinstance(item, str):
            pairs.append((path, item))
        else:
            pairs.append((path, js_stringify(item)))
    return pairs


def _iso_to_ms(value) -> int | None:
    """A parseable date string (what the v4 path accepts) as epoch ms; else None."""
    ms = parse_iso_offset_ms(value)
    if ms is not None or not isinstance(value, str):
        return ms
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return (parsed - _EPOCH) // timedelta(milliseconds=1)


def _text_or_empty(value) -> str:
    """ClickHouse String columns are not nullable: an absent value reads back as ""."""
    if value is None or value is MISSING:
        return ""
    return _scalar_to_text(value)


def _uint16_or_none(value):
    number = js_number(value) if value is not None else math.nan
    if is_int_number(number) and 0 <= number < 2**16:
        return int(number)
    return None


def span_to_event_row(rs, ss, span) -> dict:
    """OtelIngestionProcessor.processToEvent + IngestionService.createEventRecord: one row.

    Everything here is read from this span alone: no other span of the trace, and no
    earlier export of the same span id, changes it."""
    attrs = attributes_to_dict(span.get("attributes"))
    resource_attrs = attributes_to_dict(rs.get("resource", {}).get("attributes"))
    scope = ss.get("scope", {})
    scope_meta = {**scope, "attributes": attributes_to_dict(scope.get("attributes"))}
    obs_type = map_observation_type(attrs, resource_attrs, scope_meta)
    status = span.get("status") or {}
    level = LEVEL_ALIASES.get(attrs[LF_OBS_LEVEL].strip().upper()) \
        if isinstance(attrs.get(LF_OBS_LEVEL), str) else None
    if level is None:
        level = "ERROR" if status.get("code") == 2 else "DEFAULT"
    agent_aggregate = attrs.get("gen_ai.operation.name") in ("invoke_agent", "agent_step")
    is_generation = obs_type == "GENERATION"

    metadata = {}
    if not str(scope.get("name") or "").startswith("langfuse-sdk"):
        metadata["attributes"] = filtered_attributes(attrs)
    metadata["resourceAttributes"] = resource_attrs
    metadata["scope"] = scope_meta
    # Observation metadata, then trace metadata: both land on this one row.
    metadata.update(extract_metadata(attrs, "observation"))
    metadata.update(extract_metadata(attrs, "trace"))

    try:
        provided_usage = {} if agent_aggregate else \
            v_usage_details(extract_usage_details(attrs), "usage_details")
    except Invalid:
        provided_usage = {}  # the usage is dropped, the row is still written
    provided_cost = {}
    for key, value in ({} if agent_aggregate else extract_cost_details(attrs)).items():
        if _cost_number(value) is not None:  # stored as Decimal: a non-number has no place
            provided_cost[key] = _cost_number(value)
    inp, out = extract_input_output(attrs)
    input_text, output_text = stringify_io(inp), stringify_io(out)
    model_name = None if agent_aggregate else _first_truthy_text(attrs, MODEL_NAME_KEYS)
    row = {
        "id": span["spanId"], "trace_id": span["traceId"],
        "parent_span_id": span.get("parentSpanId") or "",
        "name": extract_name(span["name"], attrs), "type": obs_type,
        "environment": extract_environment(attrs, resource_attrs),
        "version": _text_or_empty(coalesce(attrs.get(LF_VERSION),
                                           resource_attrs.get("service.version"))),
        "release": _text_or_empty(coalesce(attrs.get(LF_RELEASE), resource_attrs.get(LF_RELEASE))),
        "trace_name": _text_or_empty(attrs.get(LF_TRACE_NAME)),
        "user_id": extract_user_id(attrs) or "", "session_id": extract_session_id(attrs) or "",
        "tags": extract_tags(attrs), "public": extract_public(attrs) is True,
        "is_app_root": attrs.get("langfuse.internal.is_app_root") in (True, "true"),
        "level": level,
        "status_message": _text_or_empty(coalesce(attrs.get(LF_OBS_STATUS),
                                                  status.get("message"))),
        "start_time": _nanos_to_ms(span["startTimeUnixNano"]),
        "end_time": _nanos_to_ms(span["endTimeUnixNano"]),
        "completion_start_time": _iso_to_ms(extract_completion_start_time(attrs)),
        "prompt_name": _text_or_empty(coalesce(attrs.get(LF_OBS_PROMPT_NAME),
                                               attrs.get("langfuse.prompt.name")))
        if is_generation else "",
        "prompt_version": _uint16_or_none(coalesce(attrs.get(LF_OBS_PROMPT_VERSION),
                                                   attrs.get("langfuse.prompt.version")))
        if is_generation else None,
        "provided_model_name": model_name or "",
        "model_parameters": extract_model_parameters(attrs) or {},
        "input": input_text, "output": output_text,
        "metadata": flatten_metadata(metadata),
    }
    if model_name or provided_usage or provided_cost:
        row.update(v4_usage_and_cost(model_name, provided_usage, provided_cost,
                                     input_text, output_text))
    else:
        row.update(usage_details={}, cost_details={}, provided_usage_details={},
                   provided_cost_details={}, model_id="", usage_pricing_tier_name=None)
    return row


def row_is_root(row) -> bool:
    """eventsTableIsRootObservationSql: no parent, or flagged as the app root."""
    return row["parent_span_id"] == "" or row["is_app_root"]


# Refused by POST /api/public/ingestion in events_only mode (web/.../ingestion.ts).
EVENTS_ONLY_ACCEPTED_TYPES = ("score-create", "sdk-log")
EVENTS_ONLY_REMEDIATION = (
    "Upgrade the client or integration to a v4-compatible SDK or OTLP ingestion path. "
    "As a temporary migration bridge, set LANGFUSE_MIGRATION_V4_WRITE_MODE=dual on both the "
    "web and worker services and redeploy. Docs: "
    "https://langfuse.com/self-hosting/upgrade/upgrade-guides/upgrade-v3-to-v4")


class EventStore:
    """A v4 (events_only) project: a list of immutable observation rows.

    A row written by a request without ``x-langfuse-ingestion-version: 4`` is stored with
    visible=False: the dual-write path publishes it about ten minutes later, and a test
    makes that happen with POST /_test/release-delayed.  Guarded by the caller's lock."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.rows: list[dict] = []
        self.scores: dict[str, dict] = {}
        self.deliveries: dict[str, dict] = {}
        self.applied_event_ids: set[str] = set()
        self.spans_received = 0
        self.events_received = 0
        self.refused_events = 0
        self.delayed_requests = 0
        self.write_seq = 0  # event_ts: the order rows were written in

    def ingest_otlp(self, triples, delayed: bool) -> list[dict]:
        """Write one row per span; nothing is merged and nothing is dropped."""
        self.spans_received += len(triples)
        self.delayed_requests += 1 if delayed else 0
        now = int(time.time() * 1000)
        for rs, ss, span in triples:
            row = span_to_event_row(rs, ss, span)
            self.write_seq += 1
            row.update(created_at=now, updated_at=now, event_ts=self.write_seq,
                       visible=not delayed)
            self.rows.append(row)
            record = self.deliveries.setdefault(row["id"], {"delivered": 0, "applied": 0})
            record["delivered"] += 1
            record["applied"] += 1
        return []  # the v4 path drops no observation (invalid usage is dropped, not the row)

    def ingest_batch(self, batch: list, reject_ids: set) -> dict:
        """events_only: only scores and SDK logs are processed; everything else is refused
        per event, and the refusals follow the processed events' results."""
        self.events_received += len(batch)
        successes, errors, refused = [], [], []
        for raw in batch:
            kind = raw.get("type") if isinstance(raw, dict) and isinstance(raw.get("type"), str) \
                else None
            event_id = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) \
                else "unknown"
            if kind not in EVENTS_ONLY_ACCEPTED_TYPES:
                self.refused_events += 1
                refused.append({
                    "id": event_id, "status": 400, "message": "Event type not accepted",
                    "error": f"Event type \"{kind or 'unknown'}\" is not accepted by "
                             "/api/public/ingestion when LANGFUSE_MIGRATION_V4_WRITE_MODE is "
                             "events_only. This endpoint only accepts score and log events. "
                             + EVENTS_ONLY_REMEDIATION})
                continue
            try:
                event = validate_event(raw)
            except Invalid as err:
                errors.append({"id": event_id, "status": 400, "message": "Invalid request data",
                               "error": str(err)})
                continue
            if event_id in reject_ids:
                errors.append({"id": event_id, "status": 400, "message": "Invalid request data",
                               "error": "rejected by the test receiver (reject_events mode)"})
                continue
            successes.append({"id": event_id, "status": 201})
            if kind == "score-create" and event_id not in self.applied_event_ids:
                self.applied_event_ids.add(event_id)
                body = event["body"]
                score_id = body.get("id") or event_id
                self.scores[score_id] = {**{k: v for k, v in body.items() if v is not None},
                                         "id": score_id}
        return {"successes": successes, "errors": errors + refused}

    def release_delayed(self) -> int:
        delayed = [row for row in self.rows if not row["visible"]]
        for row in delayed:
            row["visible"] = True
        return len(delayed)

    def visible_rows(self) -> list[dict]:
        return [row for row in self.rows if row["visible"]]

    def stats(self, request_count: int) -> dict:
        per_span: dict[str, int] = {}
        for row in self.rows:
            per_span[row["id"]] = per_span.get(row["id"], 0) + 1
        visible = self.visible_rows()
        return {
            "requests": request_count, "spans_received": self.spans_received,
            "events_received": self.events_received,
            # bench/run_session_bench.py counts sessions by "traces": a trace counts once
            # its root row can be read.
            "traces": len({row["trace_id"] for row in visible if row_is_root(row)}),
            "observations": len(visible), "rows": len(self.rows),
            "delayed_rows": len(self.rows) - len(visible),
            "distinct_span_ids": len(per_span),
            "max_rows_per_span_id": max(per_span.values(), default=0),
            "duplicates": len(self.rows) - len(per_span),
            "delayed_requests": self.delayed_requests, "refused_events": self.refused_events,
            "dropped_observations": 0,
        }


# ---------------------------------------------------------------------------
# GET /api/public/v2/observations (web/src/pages/api/public/v2/observations/index.ts)
# ---------------------------------------------------------------------------

V2_FIELD_GROUPS = ("core", "basic", "time", "io", "metadata", "model", "usage", "prompt",
                   "metrics", "trace_context")
V2_DEFAULT_GROUPS = ("core", "basic")
V2_DEFAULT_LIMIT, V2_MAX_LIMIT = 50, 1000
V2_TYPES = OBSERVATION_TYPES


def _bad_query(detail: str):
    return HttpError(400, "Invalid request data", {"message": "Invalid request data",
                                                   "error": detail})


def encode_v2_cursor(row) -> str:
    cursor = {"lastStartTimeTo": ms_to_iso(row["start_time"]), "lastTraceId": row["trace_id"],
              "lastId": row["id"]}
    return base64.b64encode(js_stringify(cursor).encode()).decode()


def decode_v2_cursor(text: str) -> tuple:
    try:
        cursor = json.loads(base64.b64decode(text + "=" * (-len(text) % 4)).decode("utf-8"))
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise HttpError(400, "Invalid cursor format",
                        {"message": "Invalid cursor format", "error": "InvalidRequestError"})
    if not (isinstance(cursor, dict) and isinstance(cursor.get("lastTraceId"), str)
            and isinstance(cursor.get("lastId"), str)
            and _iso_to_ms(cursor.get("lastStartTimeTo")) is not None):
        raise _bad_query("cursor: expected {lastStartTimeTo, lastTraceId, lastId}")
    return _iso_to_ms(cursor["lastStartTimeTo"]), cursor["lastTraceId"], cursor["lastId"]


def parse_v2_query(query: dict) -> dict:
    """GetObservationsV2Query: the filters, limit, cursor and field groups."""
    def one(name):
        return _query_one(query, name)

    limit = one("limit")
    if limit is None or limit == "":
        limit = V2_DEFAULT_LIMIT
    elif limit.isdigit() and int(limit) <= V2_MAX_LIMIT:
        limit = int(limit)
    else:
        raise _bad_query(f"limit: must be an integer between 0 and {V2_MAX_LIMIT}")
    fields = one("fields")
    if fields is None or fields == "":
        groups = V2_DEFAULT_GROUPS
    else:  # unknown groups are filtered out; core is always there
        groups = tuple(g for g in (f.strip() for f in fields.split(",")) if g in V2_FIELD_GROUPS)
    if one("type") is not None and one("type") not in V2_TYPES:
        raise _bad_query(f"type: must be one of {list(V2_TYPES)}")
    if one("level") is not None and one("level") not in LEVELS:
        raise _bad_query(f"level: must be one of {list(LEVELS)}")
    if one("isRootObservation") not in (None, "true", "false"):
        raise _bad_query("isRootObservation: must be true or false")
    if one("parseIoAsJson") == "true":
        raise _bad_query("parseIoAsJson=true is no longer supported on the v2 observations "
                         "endpoint. Input/output fields are always returned as raw strings.")
    times = {}
    for name in ("fromStartTime", "toStartTime"):
        if one(name) is not None:
            times[name] = _iso_to_ms(one(name))
            if times[name] is None:
                raise _bad_query(f"{name}: must be an ISO 8601 datetime")
    return {"limit": limit, "groups": groups, "times": times,
            "cursor": decode_v2_cursor(one("cursor")) if one("cursor") else None,
            "filters": {name: one(name) for name in (
                "traceId", "userId", "sessionId", "name", "type", "level", "version",
                "parentObservationId") if one(name) is not None},
            "environments": query.get("environment", []),
            "is_root": None if one("isRootObservation") is None
            else one("isRootObservation") == "true"}


_V2_FILTER_COLUMNS = {"traceId": "trace_id", "userId": "user_id", "sessionId": "session_id",
                      "name": "name", "type": "type", "level": "level", "version": "version",
                      "parentObservationId": "parent_span_id"}


def _v2_sort_key(row):
    # The server orders by (start_time, xxHash32(trace_id), span_id), all descending; any
    # fixed order of trace ids does for a client, which must treat the cursor as opaque.
    return (row["start_time"], row["trace_id"], row["id"])


def query_v2_rows(rows: list[dict], params: dict) -> tuple[list[dict], str | None]:
    """Filter, order and page like getObservationsV2FromEventsTableForPublicApi.

    Rows are compared by their sort key only, so two copies of one span (same start time,
    trace and span id) split across a page boundary lose the second copy, as there."""
    out = []
    for row in rows:
        if any(row[_V2_FILTER_COLUMNS[name]] != value
               for name, value in params["filters"].items()):
            continue
        if params["environments"] and row["environment"] not in params["environments"]:
            continue
        if params["is_root"] is not None and row_is_root(row) != params["is_root"]:
            continue
        times = params["times"]
        if "fromStartTime" in times and row["start_time"] < times["fromStartTime"]:
            continue
        if "toStartTime" in times and row["start_time"] >= times["toStartTime"]:
            continue
        if params["cursor"] and not _v2_sort_key(row) < params["cursor"]:
            continue
        out.append(row)
    out.sort(key=_v2_sort_key, reverse=True)
    page = out[:params["limit"]]
    more = len(out) > params["limit"] and page
    return page, encode_v2_cursor(page[-1]) if more else None


def _reduce_v2(details: dict):
    """reduceUsageOrCostDetails (v4): keys *containing* input/output; total or 0."""
    def side(word):
        values = [v for k, v in details.items() if word in k]
        return sum(values) if values else None
    return side("input"), side("output"), details.get("total", 0) or 0


def observation_v2_view(row: dict, groups) -> dict:
    """One item of the v2 answer: the core fields, the asked groups, and the fields the
    server adds to every item (latency, timeToFirstToken, modelId and prices)."""
    start, end, first_token = row["start_time"], row["end_time"], row["completion_start_time"]
    item = {"id": row["id"], "traceId": row["trace_id"], "startTime": ms_to_iso(start),
            "endTime": _iso_or_none(end), "projectId": PROJECT_ID,
            "parentObservationId": row["parent_span_id"] or None, "type": row["type"]}
    if "basic" in groups:
        item.update(name=row["name"], level=row["level"], statusMessage=row["status_message"],
                    version=row["version"], environment=row["environment"],
                    userId=row["user_id"], sessionId=row["session_id"],
                    isRootObservation=row_is_root(row), bookmarked=False,
                    public=row["public"])
    if "time" in groups:
        item.update(completionStartTime=_iso_or_none(first_token),
                    createdAt=ms_to_iso(row["created_at"]), updatedAt=ms_to_iso(row["updated_at"]))
    if "io" in groups:  # raw strings: v2 never parses input/output
        item.update(input=row["input"] or None, output=row["output"] or None)
    if "metadata" in groups:
        metadata = {}
        for name, value in row["metadata"]:
            if name not in metadata:  # the first of a repeated path wins
                metadata[name] = None if value is None else parse_json_prioritised(value)
        item["metadata"] = metadata
    if "model" in groups:
        item.update(model=row["provided_model_name"], internalModelId=row["model_id"],
                    modelParameters=row["model_parameters"])
    if "usage" in groups:
        usage, cost = row["usage_details"], row["cost_details"]
        usage_in, usage_out, usage_total = _reduce_v2(usage)
        cost_in, cost_out, cost_total = _reduce_v2(cost)
        item.update(usageDetails=dict(usage), inputUsage=usage_in or 0,
                    outputUsage=usage_out or 0, totalUsage=usage_total,
                    costDetails=dict(cost), inputCost=cost_in, outputCost=cost_out,
                    totalCost=cost_total, usagePricingTierId=None,
                    usagePricingTierName=row["usage_pricing_tier_name"])
    if "prompt" in groups:  # prompts link only to prompts stored in Langfuse: none here
        item.update(promptId="", promptName=row["prompt_name"],
                    promptVersion=row["prompt_version"])
    if "trace_context" in groups:
        item.update(tags=list(row["tags"]), release=row["release"],
                    traceName=row["trace_name"] or (row["name"] if row_is_root(row) else None)
                    or None)
    latency = (end - start) / 1000 if end is not None else None
    ttft = (first_token - start) / 1000 if first_token is not None and (
        "time" in groups or "metrics" in groups) else None
    if "metrics" in groups:  # computed in ClickHouse in ms; a zero reads as null there
        latency, ttft = latency or None, ttft or None
    model = next((m for m in TEST_MODELS if m["id"] == row["model_id"]), None) \
        if "model" in groups else None
    item.update(latency=latency, timeToFirstToken=ttft, modelId=model["id"] if model else None,
                inputPrice=_price_text(model, "input"), outputPrice=_price_text(model, "output"),
                totalPrice=_price_text(model, "total"))
    return item


def _price_text(model, usage_type):
    """Prices are Prisma Decimals serialized as strings on the v2 wire."""
    if not model or usage_type not in model["prices"]:
        return None
    return format(Decimal(repr(model["prices"][usage_type])).normalize(), "f")


# Routes a v4 server in events_only mode answers 404 before it looks at the credentials
# (createAuthedProjectAPIRoute, rejectInEventsOnlyMode).  (method, path pattern)
EVENTS_ONLY_GONE = tuple((method, re.compile(pattern)) for method, pattern in (
    ("GET", r"^/api/public/traces(/[^/]+)?$"), ("POST", r"^/api/public/traces$"),
    ("GET", r"^/api/public/observations(/[^/]+)?$"),
    ("GET", r"^/api/public/sessions(/[^/]+)?$"),
    ("GET", r"^/api/public/scores(/[^/]+)?$"), ("GET", r"^/api/public/v2/scores(/[^/]+)?$"),
    ("GET", r"^/api/public/metrics(/daily)?$"),
    ("POST", r"^/api/public/(events|generations|spans)$"),
    ("PATCH", r"^/api/public/(generations|spans)$"),
))
EVENTS_ONLY_GONE_MESSAGE = ("This endpoint is not available on deployments running in Langfuse "
                            "v4 events_only mode. Learn more about Langfuse v4 at: "
                            "https://langfuse.com/docs/v4")
V2_OBSERVATIONS_NOT_HERE = ("The observations v2 API is only available in a Langfuse v4 write "
                            "mode. Learn more at: https://langfuse.com/docs/v4")


def events_only_gone(method: str, path: str) -> bool:
    return any(m == method and pattern.match(path) for m, pattern in EVENTS_ONLY_GONE)


def wants_direct_write(headers) -> bool:
    """checkHeaderBasedDirectWrite: x-langfuse-ingestion-version 4 (hyphen or underscore
    spelling) takes the real-time path; anything else the delayed dual-write path."""
    for name in ("x-langfuse-ingestion-version", "x_langfuse_ingestion_version"):
        value = headers.get(name)
        if value is not None:
            match = re.match(r"^\s*[+-]?\d+", value)  # JavaScript parseInt
            return bool(match) and int(match.group()) >= 4
    return False


# ---------------------------------------------------------------------------
# Failure injection
# ---------------------------------------------------------------------------

MODES = ("ok", "status", "max_body", "slow", "blackhole", "reject_events")


def validate_mode(cfg) -> dict:
    if not isinstance(cfg, dict) or cfg.get("mode") not in MODES:
        raise BadRequest(f"mode must be one of {list(MODES)}")
    mode = cfg["mode"]
    out = {"mode": mode}
    if mode == "status":
        status = cfg.get("status")
        if not (isinstance(status, int) and 400 <= status <= 599):
            raise BadRequest("status mode needs an integer 'status' between 400 and 599")
        count = cfg.get("count")
        if count is not None and not (isinstance(count, int) and count > 0):
            raise BadRequest("'count' must be a positive integer")
        retry_after = cfg.get("retry_after")
        if retry_after is not None and not isinstance(retry_after, (str, int)):
            raise BadRequest("'retry_after' must be a string or integer")
        body = cfg.get("body")
        if body is not None and not isinstance(body, str):
            raise BadRequest("'body' must be a string")
        out.update(status=status, count=count, body=body,
                   retry_after=None if retry_after is None else str(retry_after))
    elif mode == "max_body":
        if not (isinstance(cfg.get("bytes"), int) and cfg["bytes"] >= 0):
            raise BadRequest("max_body mode needs a non-negative integer 'bytes'")
        out["bytes"] = cfg["bytes"]
    elif mode == "slow":
        if not (isinstance(cfg.get("delay_ms"), int) and cfg["delay_ms"] >= 0):
            raise BadRequest("slow mode needs a non-negative integer 'delay_ms'")
        out["delay_ms"] = cfg["delay_ms"]
    elif mode == "reject_events":
        ids = cfg.get("ids")
        if not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
            raise BadRequest("reject_events mode needs 'ids': [string, ...]")
        out["ids"] = list(ids)
    return out


class Control:
    """The current failure mode; `take()` snapshots it per ingest request."""

    def __init__(self):
        self.cfg = {"mode": "ok"}

    def set(self, cfg: dict):
        self.cfg = validate_mode(cfg)

    def take(self) -> dict:
        cfg = dict(self.cfg)
        if cfg["mode"] == "status" and cfg.get("count") is not None:
            remaining = cfg["count"] - 1
            self.cfg = {"mode": "ok"} if remaining <= 0 else {**self.cfg, "count": remaining}
        return cfg


# ---------------------------------------------------------------------------
# HTTP server
# ---------------------------------------------------------------------------


class ReceiverState:
    def __init__(self, public_key: str, secret_key: str, verbose: bool, langfuse_version: int = 4):
        self.public_key, self.secret_key, self.verbose = public_key, secret_key, verbose
        # Which server line this process plays, fixed for its lifetime: 3 merges spans into
        # traces (Store), 4 keeps one row per exported span (EventStore).
        self.langfuse_version = langfuse_version
        self.lock = threading.RLock()
        self.stopping = threading.Event()
        self.store = Store() if langfuse_version == 3 else EventStore()
        self.control = Control()
        self.requests: list[dict] = []
        self.raw: list[bytes] = []

    def reset(self):
        with self.lock:
            self.store.reset()
            self.control = Control()
            self.requests.clear()
            self.raw.clear()

    def auth_ok(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            return False
        expected = f"{self.public_key}:{self.secret_key}"
        return hmac.compare_digest(decoded.encode(), expected.encode())


class HttpError(Exception):
    """An error answer; `body` is its JSON (default {"message": message})."""

    def __init__(self, status: int, message: str, body: dict | None = None):
        super().__init__(message)
        self.status = status
        self.body = body if body is not None else {"message": message}


def decode_body(raw: bytes, encoding: str | None):
    """(decoded bytes, error message) for a Content-Encoding."""
    enc = (encoding or "").strip().lower()
    if enc in ("", "identity"):
        return raw, None
    if "gzip" in enc:
        try:
            return gzip.decompress(raw), None
        except (OSError, EOFError, zlib.error):
            return None, "Failed to decompress request body"
    return None, f"Unsupported Content-Encoding {encoding!r}"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "langfuse-test-receiver/1"

    @property
    def state(self) -> ReceiverState:
        return self.server.state  # type: ignore[attr-defined]

    def log_message(self, fmt, *args):
        if self.state.verbose:
            sys.stderr.write("receiver: " + (fmt % args) + "\n")

    # -- plumbing -------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type="application/json", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, status: int, obj, headers=()):
        self._send(status, json.dumps(obj).encode(), headers=headers)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    self.close_connection = True
                    raise HttpError(400, "malformed chunked body")
                if size == 0:
                    while self.rfile.readline(65537).strip():
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            size = int(length)
            if size < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            raise HttpError(400, "invalid Content-Length")
        return self.rfile.read(size)

    def _route(self):
        parts = urlsplit(self.path)
        return parts.path.rstrip("/") or "/", parse_qs(parts.query)

    # -- verbs ------------------------------------------------------------------------
    def do_GET(self):
        path, query = self._route()
        try:
            if path.startswith("/_test/"):
                return self._test_get(path)
            if path == "/api/public/health":
                return self._send_json(200, {"status": "OK", "version":
                                             SERVER_VERSIONS[self.state.langfuse_version]})
            if self._gone_in_events_only(path):
                return None
            if path.startswith("/api/public/"):
                if not self.state.auth_ok(self.headers.get("Authorization")):
                    return self._send_json(401, {"message": "Invalid credentials"})
                return self._read_api(path, query)
            self._send_json(404, {"message": f"Not found: {path}"})
        except HttpError as err:
            self._send_json(err.status, err.body)

    def do_POST(self):
        path, _query = self._route()
        try:
            if path == "/api/public/otel/v1/traces":
                return self._ingest("otlp")
            if path == "/api/public/ingestion":
                return self._ingest("ingestion")
            body = self._read_body()
            if path == "/_test/mode":
                return self._test_mode(body)
            if path == "/_test/reset":
                self.state.reset()
                return self._send_json(200, {"ok": True})
            if path == "/_test/release-delayed":
                with self.state.lock:
                    released = self.state.store.release_delayed() \
                        if self.state.langfuse_version == 4 else 0
                return self._send_json(200, {"released": released})
            if self._gone_in_events_only(path):
                return None
            self._send_json(404 if not path.startswith("/api/public/") else 405,
                            {"message": f"Not found: POST {path}"})
        except HttpError as err:
            self._send_json(err.status, err.body)

    def do_PUT(self):
        self._read_body_quietly()
        path, _query = self._route()
        if not self._gone_in_events_only(path):
            self._send_json(405, {"message": "Method not allowed"})

    do_DELETE = do_PATCH = do_PUT

    def _gone_in_events_only(self, path: str) -> bool:
        """v4: answer the legacy routes an events_only server has switched off (404, before
        any credential check); True when it answered."""
        if self.state.langfuse_version != 4 or not events_only_gone(self.command, path):
            return False
        self._send_json(404, {"message": EVENTS_ONLY_GONE_MESSAGE})
        return True

    def _read_body_quietly(self):
        try:
            self._read_body()
        except HttpError:
            pass

    # -- /_test ---------------------------------------------------------------------
    def _test_mode(self, body: bytes):
        try:
            cfg = json_loads_strict(body.decode("utf-8"))
            with self.state.lock:
                self.state.control.set(cfg)
        except (ValueError, UnicodeDecodeError):
            return self._send_json(400, {"message": "body must be JSON"})
        except BadRequest as err:
            return self._send_json(400, {"message": str(err)})
        self._send_json(200, {"ok": True, "mode": self.state.control.cfg})

    def _test_get(self, path: str):
        state = self.state
        with state.lock:
            if path == "/_test/requests":
                return self._send_json(200, state.requests)
            if path == "/_test/raw":
                return self._send(200, b"".join(state.raw), "application/octet-stream")
            if path == "/_test/stats":
                return self._send_json(200, state.store.stats(len(state.requests)))
            if path == "/_test/deliveries":
                return self._send_json(200, state.store.deliveries)
            if path == "/_test/mode":
                return self._send_json(200, state.control.cfg)
            if path == "/_test/version":
                return self._send_json(200, {"version": state.langfuse_version})
        self._send_json(404, {"message": f"Not found: {path}"})

    # -- ingest ---------------------------------------------------------------------
    def _ingest(self, kind: str):
        state = self.state
        received_at = time.time()
        raw = self._read_body()
        encoding = self.headers.get("Content-Encoding")
        decoded, decode_error = decode_body(raw, encoding)
        auth_ok = state.auth_ok(self.headers.get("Authorization"))
        entry = {"path": urlsplit(self.path).path, "status": None, "wire_bytes": len(raw),
                 "body_bytes": len(decoded) if decoded is not None else None,
                 "content_encoding": encoding, "auth_ok": auth_ok, "t": received_at}
        doc = None
        if decoded is not None:
            try:
                doc = json_loads_strict(decoded.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                doc = None
        if kind == "otlp":
            entry["span_ids"] = collect_span_ids(doc) if isinstance(doc, dict) else []
        else:
            batch = doc.get("batch") if isinstance(doc, dict) else None
            entry["event_ids"] = [e.get("id") for e in batch if isinstance(e, dict)] \
                if isinstance(batch, list) else []
        with state.lock:
            state.requests.append(entry)
            state.raw.append(self._raw_record(decoded if decoded is not None else raw))
            cfg = state.control.take()

        status, payload, headers = self._injected(cfg, len(raw))
        if status == 0:  # blackhole: never answer
            entry["status"] = None
            return self._hold_connection()
        if status is None:
            status, payload, headers = self._process(kind, cfg, auth_ok, decode_error,
                                                     decoded, doc, entry)
        with state.lock:
            entry["status"] = status
        self._send(status, payload, headers=headers)

    def _raw_record(self, body: bytes) -> bytes:
        head = self.requestline + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in self.headers.items())
        return head.encode("latin-1", "replace") + b"\r\n" + body + b"\n\n"

    def _injected(self, cfg: dict, wire_bytes: int):
        """Return (status, body, headers) to short-circuit; status None = go on, 0 = hold."""
        mode = cfg["mode"]
        if mode == "blackhole":
            return 0, b"", ()
        if mode == "slow":
            self.state.stopping.wait(cfg["delay_ms"] / 1000)
        if mode == "max_body" and wire_bytes > cfg["bytes"]:
            return 413, json.dumps({"message": f"Request body of {wire_bytes} bytes exceeds "
                                               f"the limit of {cfg['bytes']} bytes"}).encode(), ()
        if mode == "status":
            status = cfg["status"]
            try:
                phrase = HTTPStatus(status).phrase
            except ValueError:
                phrase = ""
            body = cfg["body"] if cfg.get("body") is not None else json.dumps(
                {"message": f"injected {status} {phrase}".strip()})
            headers = []
            if cfg.get("retry_after") is not None and status in (429, 503):
                headers.append(("Retry-After", cfg["retry_after"]))
            return status, body.encode(), tuple(headers)
        return None, b"", ()

    def _hold_connection(self):
        # Hold the socket without answering until the mode changes or the server stops;
        # polling keeps the thread from leaking forever.
        while not self.state.stopping.is_set():
            with self.state.lock:
                if self.state.control.cfg["mode"] != "blackhole":
                    break
            self.state.stopping.wait(0.05)
        self.close_connection = True

    def _process(self, kind, cfg, auth_ok, decode_error, decoded, doc, entry):
        def answer(status, obj, headers=()):
            return status, json.dumps(obj).encode(), headers

        if not auth_ok:
            return answer(401, {"message": "Invalid credentials. Confirm that you've configured "
                                           "the correct host and API keys."})
        if decode_error:
            return answer(400, {"message": decode_error, "error": decode_error})
        content_type = (self.headers.get("Content-Type") or "").lower()
        version = self.headers.get("x-langfuse-ingestion-version")
        if kind == "otlp" and version is not None and (
                not version.strip().isdigit() or int(version) > 4):
            return answer(400, {"message": f"Unsupported x-langfuse-ingestion-version: "
                                           f"\"{version}\". Maximum supported: \"4\"."})
        if kind == "otlp":
            if "application/x-protobuf" in content_type:
                return answer(415, {"message": "This receiver accepts OTLP/JSON only "
                                               "(Content-Type: application/json)"})
            if "application/json" not in content_type:
                return answer(400, {"message": "Invalid content type",
                                    "error": "Invalid content type"})
            return self._process_otlp(doc, entry, answer)
        if "application/json" not in content_type:
            return answer(400, {"message": "Invalid request data",
                                "error": "Content-Type must be application/json"})
        if len(decoded) > INGESTION_MAX_BYTES:
            return answer(413, {"message": "Request body exceeds the 4.5 MB limit"})
        if not isinstance(doc, dict) or not isinstance(doc.get("batch"), list):
            return answer(400, {"message": "Invalid request data",
                                "error": "body must be {\"batch\": [...]}"})
        reject = set(cfg.get("ids") or []) if cfg["mode"] == "reject_events" else set()
        with self.state.lock:
            result = self.state.store.ingest_batch(doc["batch"], reject)
        return answer(207, result)

    def _process_otlp(self, doc, entry, answer):
        if doc is None:
            return answer(400, {"message": "Failed to parse OTel JSON Trace",
                                "error": "Failed to parse OTel JSON Trace"})
        try:
            triples = validate_otlp_export(doc)
        except BadRequest as err:
            return answer(400, {"message": str(err), "error": str(err)})
        problem = scope_public_key_problem(triples, self.state.public_key)
        if problem:
            return answer(403, {"message": problem, "error": problem})
        with self.state.lock:
            if self.state.langfuse_version == 3:
                entry["dropped"] = self.state.store.ingest_otlp(triples)
            else:
                # Without the v4 header the rows take the dual-write path: stored, but not
                # readable until /_test/release-delayed (about ten minutes on Cloud).
                entry["delayed"] = not wants_direct_write(self.headers)
                entry["dropped"] = self.state.store.ingest_otlp(triples, entry["delayed"])
        return answer(200, {})

    # -- read API -------------------------------------------------------------------
    def _read_api(self, path: str, query: dict):
        store = self.state.store
        segments = [unquote(s) for s in path.split("/")[3:]]  # after /api/public
        if segments == ["v2", "observations"]:
            return self._observations_v2(query)
        if self.state.langfuse_version == 4:  # the v1 reads it still has are answered above
            return self._send_json(404, {"message": f"Not found: {path}"})
        page, limit = _page_params(query)
        with self.state.lock:
            if segments == ["traces"]:
                traces = _filter_traces(store.traces.values(), query)
                traces.sort(key=lambda t: t["timestamp"], reverse=True)
                data = [trace_view(store, t, full=False) for t in traces]
                return self._send_json(200, paginate(data, page, limit))
            if len(segments) == 2 and segments[0] == "traces":
                trace = store.traces.get(segments[1])
                if trace is None:
                    return self._send_json(404, {"message": f"Trace {segments[1]} not found "
                                                            "within authorized project"})
                return self._send_json(200, trace_view(store, trace, full=True))
            if segments == ["observations"]:
                observations = _filter_observations(store, query)
                observations.sort(key=lambda o: o["start_time"], reverse=True)
                data = [observation_view(o) for o in observations]
                return self._send_json(200, paginate(data, page, limit))
            if len(segments) == 2 and segments[0] == "observations":
                obs = store.observations.get(segments[1])
                if obs is None:
                    return self._send_json(404, {"message": f"Observation {segments[1]} not found "
                                                            "within authorized project"})
                return self._send_json(200, observation_view(obs))
            if segments == ["sessions"]:
                sessions = [_session_view(store, sid) for sid in _session_ids(store)]
                return self._send_json(200, paginate(sessions, page, limit))
            if len(segments) == 2 and segments[0] == "sessions":
                if segments[1] not in _session_ids(store):
                    return self._send_json(404, {"message": f"Session {segments[1]} not found"})
                session = _session_view(store, segments[1])
                session["traces"] = [trace_base_view(t) for t in _session_traces(store, segments[1])]
                return self._send_json(200, session)
        self._send_json(404, {"message": f"Not found: {path}"})


    def _observations_v2(self, query: dict):
        if self.state.langfuse_version == 3:
            # A late v3 server has the route but refuses it outside a v4 write mode (an older
            # one has no such route): 404 either way, which is how a client tells them apart.
            return self._send_json(404, {"message": V2_OBSERVATIONS_NOT_HERE,
                                         "error": "LangfuseNotFoundError"})
        params = parse_v2_query(query)
        with self.state.lock:
            page, cursor = query_v2_rows(self.state.store.visible_rows(), params)
            data = [observation_v2_view(row, params["groups"]) for row in page]
        return self._send_json(200, {"data": data, "meta": {"cursor": cursor} if cursor else {}})


def _query_one(query: dict, name: str):
    values = query.get(name)
    return values[-1] if values else None


def _page_params(query: dict):
    def number(name, default, low, high):
        raw = _query_one(query, name)
        if raw is None:
            return default
        if not raw.isdigit() or not low <= int(raw) <= high:
            raise HttpError(400, f"Invalid request data: '{name}' must be an integer "
                                 f"between {low} and {high}")
        return int(raw)
    return number("page", 1, 1, 10**9), number("limit", 50, 1, 100)


def _filter_traces(traces, query) -> list[dict]:
    out = []
    tags = query.get("tags", [])
    for trace in traces:
        if any(_query_one(query, q) is not None and trace.get(col) != _query_one(query, q)
               for q, col in (("userId", "user_id"), ("name", "name"),
                              ("sessionId", "session_id"), ("environment", "environment"),
                              ("release", "release"), ("version", "version"))):
            continue
        if tags and not set(tags) <= set(trace.get("tags") or []):
            continue
        out.append(trace)
    return out


def _filter_observations(store: Store, query) -> list[dict]:
    out = []
    for obs in store.observations.values():
        conditions = (("traceId", obs["trace_id"]), ("type", obs["type"]),
                      ("name", obs.get("name")), ("level", obs.get("level")),
                      ("parentObservationId", obs.get("parent_observation_id")),
                      ("environment", obs.get("environment")),
                      ("userId", store.traces.get(obs["trace_id"], {}).get("user_id")))
        if any(_query_one(query, q) is not None and value != _query_one(query, q)
               for q, value in conditions):
            continue
        out.append(obs)
    return out


def _session_ids(store: Store) -> list[str]:
    return sorted({t["session_id"] for t in store.traces.values() if t.get("session_id")})


def _session_traces(store: Store, session_id: str) -> list[dict]:
    traces = [t for t in store.traces.values() if t.get("session_id") == session_id]
    return sorted(traces, key=lambda t: t["timestamp"])


def _session_view(store: Store, session_id: str) -> dict:
    traces = _session_traces(store, session_id)
    return {"id": session_id, "createdAt": ms_to_iso(min(t["created_at"] for t in traces)),
            "projectId": PROJECT_ID, "environment": traces[0].get("environment", "default")}


class ReceiverServer(ThreadingHTTPServer):
    daemon_threads = True  # blocked keep-alive/blackholed connections must not delay exit
    allow_reuse_address = True

    def __init__(self, address, state: ReceiverState):
        super().__init__(address, Handler)
        self.state = state


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--public-key", required=True)
    parser.add_argument("--secret-key", required=True)
    parser.add_argument("--langfuse-version", type=int, choices=(3, 4), default=4,
                        help="the Langfuse server line to play: 4 (observations first, "
                             "events_only; the default) or 3 (traces merged from spans)")
    parser.add_argument("--verbose", action="store_true", help="log requests to stderr")
    parser.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--tls-key", help="... and this private key (PEM)")
    args = parser.parse_args(argv)

    state = ReceiverState(args.public_key, args.secret_key, args.verbose, args.langfuse_version)
    server = ReceiverServer((args.host, args.port), state)
    if args.tls_cert:
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    stop = threading.Event()

    def request_stop(_signum, _frame):
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              name="receiver", daemon=True)
    thread.start()
    print(f"READY {server.server_address[1]}", flush=True)
    while not stop.wait(0.2):
        pass
    state.stopping.set()  # releases blackholed and slow requests
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
