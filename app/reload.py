"""Model reload without downtime (SIGHUP). Placeholder: filled in by the model-lifecycle work."""

from __future__ import annotations

import asyncio

from app.api import ModelSlot


def install(model: ModelSlot, model_path: str, loop: asyncio.AbstractEventLoop) -> None:
    """Install the SIGHUP handler that reloads `model_path` into `model` (not yet implemented)."""
