"""`uvicorn app.main:app` from the repository root (the brief's command): the real app, built from BOTSCORE_*."""

from botscore.service import app_from_environment

app = app_from_environment()
