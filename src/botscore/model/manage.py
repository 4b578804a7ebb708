"""`botscore model publish|promote|shadow|canary|status`: what an operator does to the registry, one line each.

Each returns the lines to print, or raises RegistryError (ArtifactError) with the one line that says
why nothing changed. The registry's URL is `--registry`, else BOTSCORE_MODEL_REGISTRY.
"""

from __future__ import annotations

import urllib.request
import uuid
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from botscore.model.artifact import ArtifactError
from botscore.model.canary import Guardrails, Plan, PlanError
from botscore.model.registry import CANARY, ROLES, Registry, RegistryError, RegistryUnreachable


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"model artifact {path}: cannot read: {exc.strerror or exc}") from None


def publish(registry: Registry, path: Path) -> str:
    """Validate the artifact at `path` and store it under its version (never replacing one)."""
    model, stored = registry.publish(_read(path), str(path))
    where = registry.url + f"versions/{model.version}.json"
    return f"published {model.version} at {where}" if stored else f"{model.version} was already published at {where}"


SHIPPED = "shipped"  # `promote shipped`: the artifact this installation ships, which an image serves by default
SHIPPED_ARTIFACT = Path(__file__).resolve().parent / "bot-score.json"  # settings.SHIPPED_MODEL, the default MODEL_PATH


def promote(registry: Registry, version: str, shipped: Path = SHIPPED_ARTIFACT) -> str:
    """Point production at `version` (a stored, valid version): every worker serves it within a poll.

    `version` may be `shipped` (`shipped`: the path of the artifact this installation ships): that
    artifact is published first when the registry lacks it, so rolling back to an image's own model,
    which was never published, is one command."""
    note = ""
    if version == SHIPPED:
        model, _ = registry.publish(_read(shipped), str(shipped))
        version, note = model.version, f" (the shipped model, {shipped.name})"
    registry.load(version)  # stored and valid, before a canary is stopped for it
    ended = _end_canary(registry, f"production moved to {version} by hand")
    registry.point("production", version)
    return f"production -> {version}{note}" + (f"; {ended}" if ended else "")


def shadow(registry: Registry, version: str | None) -> str:
    """Point shadow at `version`, or at none."""
    registry.point("shadow", version)
    return f"shadow -> {version or 'none'}"


def canary(
    registry: Registry, version: str, steps: tuple[float, ...], dwell_seconds: float, guardrails: Guardrails
) -> str:
    """Start a canary of `version` (replacing any other): `steps` percent of requests, each for `dwell_seconds`.
    Each start is a new run (a fresh window and dwell in every worker), against production as it is now."""
    production = registry.pointer("production")
    try:
        plan = Plan(
            version,
            steps,
            dwell_seconds,
            guardrails=guardrails,
            run=uuid.uuid4().hex[:12],
            replaces=production.version if production else None,
        )
    except PlanError as exc:
        raise RegistryError(str(exc)) from None
    registry.plan(plan)
    path = " -> ".join(f"{step:g} %" for step in steps)
    end = "production after the last dwell" if steps[-1] == 100 else "held at the last step until promoted or stopped"
    return f"canary {version}: {path}, {dwell_seconds:g} s each, {end}"


def stop_canary(registry: Registry) -> str:
    """Stop a running canary: production answers every request again."""
    return _end_canary(registry, "stopped by hand") or "no canary is running"


def _end_canary(registry: Registry, reason: str) -> str | None:
    """Mark the canary's plan stopped, so that no worker moves it on (nor completes its promotion over the
    production pointer a person moves); what was stopped, or None if no canary was running. A plan that
    cannot be read is replaced by none: it must never stand in the way of a promote."""
    try:
        read = registry.canary()
    except RegistryUnreachable:
        raise
    except RegistryError:
        registry.plan(None)
        return "an unreadable canary plan removed"
    plan = read[0] if read else None
    if plan is None or plan.state not in ("running", "promoted"):
        return None
    registry.plan(plan.moved(state="stopped", reason=reason))
    return f"canary {plan.version} stopped at {plan.percent:g} %" if plan.state == "running" else None


def status(registry: Registry, service_url: str | None) -> list[str]:
    """What the pointers name and, given a running service's URL, what its workers report serving."""
    lines = []
    for role in ROLES:
        pointer = registry.pointer(role)
        assert pointer is not None  # no ETag was sent, so no 304
        lines.append(f"{role}: {pointer.version or 'none'} (pointer)")
    read = registry.canary()
    plan = read[0] if read else None
    if plan is not None:
        where = f"step {plan.step + 1} of {len(plan.steps)}, {plan.percent:g} %"
        lines.append(f"{CANARY}: {plan.version} {plan.state} at {where}" + (f": {plan.reason}" if plan.reason else ""))
    if service_url is None:
        return lines
    try:
        with urllib.request.urlopen(service_url.rstrip("/") + "/metrics", timeout=5) as response:
            exposition = response.read().decode()
    except OSError as exc:
        return [*lines, f"service {service_url}: not reachable: {exc}"]
    for family in text_string_to_metric_families(exposition):
        if family.name != "botscore_model_serving":
            continue
        for sample in sorted(family.samples, key=lambda s: (s.labels.get("pid", ""), s.labels["role"])):
            if sample.value == 1:
                worker = f"worker {sample.labels['pid']}" if "pid" in sample.labels else "service"
                lines.append(f"{sample.labels['role']}: {sample.labels['version']} ({worker})")
    return lines
