"""The analytics side as tests see it: the example queries from terraform/analytics.tf, and DuckDB
reading shipped objects with the Glue table's own column types."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import hcl2

from botscore.audit import schema
from tests.support.servers import ROOT

TABLE = "audit_records"
ANSWERS = "audit_answers"  # the rows a reader counts: docs/audit-log.md's rule for a 200 row followed by a 503
# Glue/Hive types to DuckDB's.
DUCKDB_TYPES = {"string": "VARCHAR", "int": "INTEGER", "bigint": "BIGINT", "double": "DOUBLE"}


def _unquote(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


def reader_rule() -> str:
    """docs/audit-log.md's SQL for the rows of calls as their clients got them (a refusal drops the
    call's other rows)."""
    readme = (ROOT / "docs" / "audit-log.md").read_text()
    blocks = re.findall(r"```sql\n(.*?)```", readme, re.DOTALL)
    (rule,) = [block for block in blocks if "audit_unavailable" in block]
    return rule.strip()


def example_queries(table: str = TABLE) -> dict[str, str]:
    """Each `aws_athena_named_query` of terraform/analytics.tf: its SQL, on `table` (ANSWERS: on the
    rows the reader's rule keeps)."""
    document = hcl2.load((ROOT / "terraform" / "analytics.tf").open())
    queries = {}
    for block in document["resource"]:
        for kind, resources in block.items():
            if _unquote(kind) != "aws_athena_named_query":
                continue
            for name, body in resources.items():
                heredoc = _unquote(body["query"])
                sql = heredoc.split("\n", 1)[1].rsplit("\n", 1)[0]  # between <<-SQL and SQL
                queries[_unquote(name)] = textwrap.dedent(sql).replace("${local.glue_table}", table).strip()
    return queries


def open_table(folder: Path) -> Any:
    """DuckDB with `audit_records` over every .jsonl.gz under `folder` (laid out as the S3 keys, so dt
    and hour come from the path as in Athena's partition projection), read strictly in schema types,
    and `audit_answers`, the reader's rule over it."""
    import duckdb

    columns = ", ".join(f"'{c.name}': '{DUCKDB_TYPES[c.type]}'" for c in schema.COLUMNS)
    connection = duckdb.connect()
    connection.execute(
        f"CREATE VIEW {TABLE} AS SELECT * FROM read_json('{folder}/**/*.jsonl.gz', format = 'newline_delimited', "
        f"compression = 'gzip', columns = {{{columns}}}, hive_partitioning = true, "
        "hive_types = {'dt': 'VARCHAR', 'hour': 'VARCHAR'})"
    )
    connection.execute(f"CREATE VIEW {ANSWERS} AS {reader_rule()}")
    return connection
