"""The audit record's columns: the analytics contract, defined once.

One row per score: a call to /bot-score is one row, a batch (or an Open Inference Protocol
infer call) of N is N rows that share the call's id and carry their `item`, and a call that
scored nothing (any error) is one row with `item` null. Each column has one type in every row;
a key that is absent is null. The README's table and the Glue table in terraform/analytics.tf
are checked against this list by the tests.
"""

from __future__ import annotations

from typing import NamedTuple

VERSION = 5


class Column(NamedTuple):
    name: str
    type: str  # the Glue/Hive type Athena reads it as
    description: str


COLUMNS = (
    Column(
        "schema",
        "int",
        "record schema version (5; 4 had no `arm`, 3 no shadow columns, 2 no `key_id`); absent in version 1 records",
    ),
    Column("id", "string", "the call's `X-Request-ID`; the rows of one batch share it"),
    Column("item", "int", "position of the instance: 0 on /bot-score, 0 to N-1 in a batch; null if none was scored"),
    Column("ts", "string", "arrival time, RFC 3339 UTC with milliseconds (`2026-11-27T01:02:03.045Z`)"),
    Column("method", "string", "the HTTP method"),
    Column("path", "string", "the route: `/bot-score`, `/bot-score/batch` or `/v2/models/bot-score/infer`"),
    Column("status", "int", "the HTTP status answered"),
    Column("x1", "double", "x1 as scored, or as sent when it was a finite number; else null"),
    Column("x2", "double", "x2 as scored, or as sent when it was a finite number; else null"),
    Column(
        "x1_text",
        "string",
        'x1 as sent, in JSON, when it was not a finite number (`"a"`, `true`, `1e999`): its first '
        "BOTSCORE_AUDIT_RAW_MAX_BYTES bytes, null when that is 0",
    ),
    Column(
        "x2_text",
        "string",
        "x2 as sent, in JSON, when it was not a finite number: its first BOTSCORE_AUDIT_RAW_MAX_BYTES bytes, "
        "null when that is 0",
    ),
    Column(
        "raw",
        "string",
        "the body as received: its first BOTSCORE_AUDIT_RAW_MAX_BYTES bytes (256 by default, null when 0), "
        "on the row of a call that was not scored",
    ),
    Column("p_bot", "double", "the score answered; null when nothing was scored"),
    Column("error_code", "string", "the error's `code` (`invalid_type`, `unauthorized`, ...); null on a score"),
    Column("error_field", "string", "the field the error names (`x1`, `instances[3].x2`), if any"),
    Column("error_message", "string", "the error's message"),
    Column("model_version", "string", "the model that answered (`X-Model-Version`)"),
    Column("latency_ms", "double", "time from arrival to the record being written"),
    Column("key_id", "string", "the API key's id (first 12 hex digits of its SHA-256), never the key; null when none"),
    Column(
        "arm",
        "string",
        "during a canary, the arm that answered: `production` or `canary` (its model is `model_version`); else null",
    ),
    Column(
        "shadow_version",
        "string",
        "the model scored beside the one that answered: the shadow, if one was set; on a canary row, production",
    ),
    Column(
        "shadow_p_bot",
        "double",
        "that model's score (never answered), to 12 significant digits; null when none",
    ),
)
NAMES = tuple(column.name for column in COLUMNS)
