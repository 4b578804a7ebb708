"""`uvicorn app.main:app`: the service built from BOTSCORE_* variables (the brief's entry point)."""

from app.service import build_from_environment

app = build_from_environment().app
