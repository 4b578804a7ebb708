# botscore: the bot-score inference service.
#
#   docker build -t inference-server .
#   docker run -p 8887:8887 inference-server
#
# BASE is any Debian-like image with python3 (3.11 or 3.12) and its venv module; the
# default is the official slim image. scripts/container-smoke.sh builds from a local
# Debian bookworm base instead, where no registry is reachable.
ARG BASE=python:3.12-slim

# ---- builder: a virtual environment at /opt/venv with the pinned runtime deps + the app
FROM ${BASE} AS builder

# Optional, for builds behind a package-index mirror or a TLS-intercepting proxy; when not
# passed they stay unset and pip uses its defaults. They never reach the runtime image.
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_TRUSTED_HOST
ARG PIP_CERT

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_NO_INPUT=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
RUN python3 -m venv /opt/venv

# The dependencies first, so that editing the app does not reinstall them.
COPY requirements.txt ./
RUN /opt/venv/bin/python3 -m pip install --no-cache-dir --require-virtualenv -r requirements.txt

# The serving package and its shipped model (package data); pip byte-compiles it at install time.
# Only src/botscore: training, the model card and import (train/) never enter the image.
COPY pyproject.toml README.md ./
COPY src/botscore/ ./src/botscore/
RUN /opt/venv/bin/python3 -m pip install --no-cache-dir --require-virtualenv --no-deps . \
    && /opt/venv/bin/python3 -c "import botscore.service, botscore.settings as s; assert s.SHIPPED_MODEL.is_file()" \
    && /opt/venv/bin/python3 -m pip uninstall --yes --quiet pip setuptools wheel

# ---- runtime: the base image, the venv, a numeric non-root user; nothing else
FROM ${BASE} AS runtime

LABEL org.opencontainers.image.title="botscore" \
      org.opencontainers.image.description="Bot-score inference service: POST /bot-score, every request audited"

# A passwd entry for uid 10001 (nice for `id`, `ps`), and the spool owned by it, so that a
# fresh named volume mounted there starts with the right owner.
RUN groupadd --system --gid 10001 botscore \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin botscore \
    && mkdir -p /var/lib/botscore \
    && chown 10001:10001 /var/lib/botscore \
    && chmod 0750 /var/lib/botscore

COPY --from=builder /opt/venv /opt/venv

# The root filesystem may be read-only: no .pyc writes, no home directory needed.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONFAULTHANDLER=1 \
    LANG=C.UTF-8 \
    BOTSCORE_HOST=0.0.0.0 \
    BOTSCORE_PORT=8887 \
    BOTSCORE_AUDIT_DIR=/var/lib/botscore

VOLUME ["/var/lib/botscore"]
EXPOSE 8887
USER 10001:10001
WORKDIR /var/lib/botscore

# Liveness only; python3's urllib, no proxy (a proxy variable must not catch 127.0.0.1).
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request as u; u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:%s/healthz' % os.environ.get('BOTSCORE_PORT', '8887'), timeout=2)"]

# Exec form: `botscore serve` is PID 1 and gets SIGTERM itself (graceful: drains requests,
# then seals and ships the audit spool within BOTSCORE_AUDIT_SHUTDOWN_SECONDS, 20 s default).
STOPSIGNAL SIGTERM
CMD ["botscore", "serve"]
