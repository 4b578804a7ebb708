"""The analytics side as tests see it: the saved queries of terraform/analytics.tf as Athena gets
them, and DuckDB reading shipped objects with the Glue table's own column types."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import hcl2

from botscore.audit import schema
from tests.support.servers import ROOT

TERRAFORM = ROOT / "terraform"
TABLE = "audit_records"
ANSWERS = "audit_answers"  # the rows a reader counts: docs/audit-log.md's rule for a 200 row followed by a 503
VIEW_QUERY = "audit_answers_view"  # the named query that creates ANSWERS
# Glue/Hive types to DuckDB's.
DUCKDB_TYPES = {"string": "VARCHAR", "int": "INTEGER", "bigint": "BIGINT", "double": "DOUBLE"}
_LOCAL = re.compile(r"\$\{local\.([a-z_]+)\}")
_FILE = re.compile(r'^\$\{file\("\$\{path\.module\}/([^"]+)"\)\}$')
_TEMPLATE = re.compile(r'^\$\{templatefile\("\$\{path\.module\}/([^"]+)", \{([^}]*)\}\)\}$')
_TEMPLATE_VAR = re.compile(r"\$\{([a-z_]+)\}")


def _unquote(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


def _analytics() -> dict[str, Any]:
    document: dict[str, Any] = hcl2.loads((TERRAFORM / "analytics.tf").read_text())
    return document


def _named_queries() -> dict[str, str]:
    """Each `aws_athena_named_query` of terraform/analytics.tf: its `query` as python-hcl2 gives it."""
    queries = {}
    for block in _analytics()["resource"]:
        for kind, resources in block.items():
            if _unquote(kind) == "aws_athena_named_query":
                queries.update({_unquote(name): body["query"] for name, body in resources.items()})
    return queries


def _locals() -> dict[str, str]:
    """The string literals of analytics.tf's `locals` (the table's and the view's names)."""
    values = {}
    for block in _analytics()["locals"]:
        for name, value in block.items():
            if isinstance(value, str) and value.startswith('"'):
                values[name] = _unquote(value)
    return values


def view_file() -> Path:
    """The file whose SQL (CREATE OR REPLACE VIEW audit_answers) the named query that creates the
    view reads with `file()`."""
    match = _FILE.match(_named_queries()[VIEW_QUERY])
    assert match, f"{VIEW_QUERY} does not read its SQL from a file"
    return TERRAFORM / match.group(1)


def view_definition() -> str:
    """The SQL of the named query that creates `audit_answers`, as Athena gets it."""
    return view_file().read_text()


def template_files() -> dict[str, Path]:
    """The saved queries whose SQL comes from a file through templatefile (generated SQL), by name."""
    found = {}
    for name, query in _named_queries().items():
        template = _TEMPLATE.match(query)
        if template:
            found[name] = TERRAFORM / template.group(1)
    return found


def example_queries() -> dict[str, str]:
    """Every other `aws_athena_named_query` of terraform/analytics.tf: its SQL as Athena gets it,
    `${local.*}` replaced by the local's value (so each reads the table or view Terraform says)."""
    names = _locals()
    queries = {}
    for name, query in _named_queries().items():
        if name == VIEW_QUERY:
            continue
        template = _TEMPLATE.match(query)
        if template:  # templatefile("FILE", { answers_view = local.answers_view }): the locals by their names
            sql = _TEMPLATE_VAR.sub(lambda match: names[match.group(1)], (TERRAFORM / template.group(1)).read_text())
            queries[name] = sql.strip()
            continue
        heredoc = _unquote(query)
        sql = heredoc.split("\n", 1)[1].rsplit("\n", 1)[0]  # between <<-SQL and SQL
        queries[name] = _LOCAL.sub(lambda match: names[match.group(1)], textwrap.dedent(sql)).strip()
    return queries


def open_table(folder: Path) -> Any:
    """DuckDB with `audit_records` over every .jsonl.gz under `folder` (laid out as the S3 keys, so dt
    and hour come from the path as in Athena's partition projection), read strictly in schema types,
    and `audit_answers` made by the named query that makes it in Athena."""
    import duckdb

    columns = ", ".join(f"'{c.name}': '{DUCKDB_TYPES[c.type]}'" for c in schema.COLUMNS)
    connection = duckdb.connect()
    connection.execute(
        f"CREATE VIEW {TABLE} AS SELECT * FROM read_json('{folder}/**/*.jsonl.gz', format = 'newline_delimited', "
        f"compression = 'gzip', columns = {{{columns}}}, hive_partitioning = true, "
        "hive_types = {'dt': 'VARCHAR', 'hour': 'VARCHAR'})"
    )
    connection.execute(view_definition())
    return connection
