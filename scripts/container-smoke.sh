#!/usr/bin/env bash
# Proves the Dockerfile here, where there is no Docker engine and no image registry:
#
#   1. installs buildah, podman, runc, debootstrap and slirp4netns from Debian if missing;
#   2. builds a Debian bookworm base image (debootstrap from this machine's apt mirror,
#      then `podman import`), cached between runs;
#   3. builds the Dockerfile with buildah from that base (docker format, so HEALTHCHECK stays);
#   4. runs it with podman as the image is meant to run: read-only root filesystem, the
#      spool on a tmpfs owned by the container's user, published on 127.0.0.1 only;
#   5. scores over HTTP, checks /healthz and /readyz, the uid, that the audit record with
#      the response's X-Request-ID is in the spool, the HEALTHCHECK, the image's contents;
#   6. stops it with SIGTERM and removes it, on failure too.
#
# Needs root (apt-get, debootstrap, rootful podman). Idempotent: rerun it at will; a warm
# run reuses the base image and buildah's layer cache. Sends traffic to 127.0.0.1 only.
#
# Environment (all optional):
#   BOTSCORE_SMOKE_IMAGE   tag of the image built     (default localhost/botscore:smoke)
#   BOTSCORE_SMOKE_MIRROR  Debian mirror for debootstrap (default: read from apt's sources)
#   BOTSCORE_SMOKE_REBUILD_BASE=1  rebuild the base image even when cached
set -euo pipefail

started=$SECONDS
cd "$(dirname "$0")/.."

IMAGE=${BOTSCORE_SMOKE_IMAGE:-localhost/botscore:smoke}
SUITE=bookworm
BASE_IMAGE=localhost/botscore-base:$SUITE
CACHE_DIR=${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/botscore
BASE_TARBALL=$CACHE_DIR/botscore-base-$SUITE.tar.gz
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
CONTAINER=botscore-smoke-$$
TOOLS=(buildah podman runc debootstrap slirp4netns)

log() { printf 'container-smoke: %s\n' "$*" >&2; }
die() {
    log "FAIL: $*"
    exit 1
}
step() { log "[$((SECONDS - started))s] $*"; }
# podman without the noise of a host without systemd: every container with a HEALTHCHECK
# makes it log "unable to get systemd connection" (for the timer it cannot create); the
# check itself is run by hand below. Other errors still show.
podman_() {
    local rc=0
    podman "$@" 2>"$work/podman.err" || rc=$?
    grep -v 'unable to get systemd connection' "$work/podman.err" >&2 || true
    return "$rc"
}

[ "$(id -u)" = 0 ] || die "run as root (apt-get, debootstrap and rootful podman need it)"
command -v python3 >/dev/null || die "python3 is needed on the host"

# ---------------------------------------------------------------- clean-up, always
work=""
container_started=0
adopter_started=0
volume_created=0
cleanup() {
    local rc=$?
    set +e
    if [ "$container_started" = 1 ]; then
        if [ "$rc" != 0 ]; then
            log "container logs (last 40 lines):"
            podman logs --tail 40 "$CONTAINER" >&2
        fi
        podman_ rm --force --time 30 "$CONTAINER" >/dev/null
    fi
    if [ "$adopter_started" = 1 ]; then
        podman_ rm --force --time 30 "$ADOPTER" >/dev/null
    fi
    if [ "$volume_created" = 1 ]; then
        podman_ volume rm --force "$VOLUME" >/dev/null
    fi
    if [ -n "$work" ] && [ -d "$work" ]; then
        # debootstrap mounts proc/sys inside its target; never rm -r through a mount.
        awk -v d="$work/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r |
            while read -r mnt; do umount -l "$mnt"; done
        rm -rf --one-file-system "$work"
    fi
    if [ "$rc" != 0 ]; then
        log "failed after $((SECONDS - started))s"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
work=$(mktemp -d /var/tmp/botscore-smoke.XXXXXX)

# ---------------------------------------------------------------- 1. tools
missing=()
for tool in "${TOOLS[@]}"; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
    step "installing ${missing[*]} from Debian"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" uidmap >"$work/apt.log" 2>&1 ||
        { tail -20 "$work/apt.log" >&2; die "apt-get install ${missing[*]} failed"; }
fi

# podman/buildah settings for a rootful run in this sandbox (no systemd, cgroup v1, no CNI
# plugins): given per run through CONTAINERS_CONF, nothing written to /etc/containers.
cat >"$work/containers.conf" <<'EOF'
[containers]
log_driver = "k8s-file"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
EOF
export CONTAINERS_CONF=$work/containers.conf

# ---------------------------------------------------------------- 2. the base image
debian_mirror() {
    # The first http(s) URI that apt uses for $SUITE itself: deb822 *.sources, then
    # one-line sources.list files. Read at run time; no host name lives in the repo.
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk -v suite="$SUITE" 'BEGIN { RS = "" }
            {
                uris = ""; suites = ""; types = ""; enabled = "yes"
                n = split($0, lines, "\n")
                for (i = 1; i <= n; i++) {
                    line = lines[i]
                    if (line ~ /^[ \t]*#/) continue
                    key = tolower(line); sub(/:.*/, "", key)
                    val = line; sub(/^[^:]*:[ \t]*/, "", val)
                    if (key == "uris") uris = val
                    else if (key == "suites") suites = val
                    else if (key == "types") types = val
                    else if (key == "enabled") enabled = tolower(val)
                }
                if (enabled == "no" || (" " types " ") !~ / deb /) next
                if ((" " suites " ") !~ (" " suite " ")) next
                split(uris, u, /[ \t]+/)
                for (j in u) if (u[j] ~ /^https?:\/\//) { print u[j]; exit }
            }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        awk -v suite="$SUITE" '$1 == "deb" {
                i = 2
                if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                if ($i ~ /^https?:\/\// && $(i + 1) == suite) { print $i; exit }
            }' "$f"
    done
}

if [ "${BOTSCORE_SMOKE_REBUILD_BASE:-0}" = 1 ]; then
    podman rmi --force "$BASE_IMAGE" >/dev/null 2>&1 || true
    rm -f "$BASE_TARBALL"
fi
if podman image exists "$BASE_IMAGE"; then
    step "base image $BASE_IMAGE: cached"
else
    if [ ! -s "$BASE_TARBALL" ]; then
        mirror=${BOTSCORE_SMOKE_MIRROR:-$(debian_mirror | head -n 1)}
        [ -n "$mirror" ] || die "no Debian mirror for $SUITE in /etc/apt/sources*; set BOTSCORE_SMOKE_MIRROR"
        step "debootstrap $SUITE (minbase + python3) from the apt mirror; takes a minute or two"
        rootfs=$work/rootfs
        debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
            "$SUITE" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
            { tail -30 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
        # Nothing of this host in the image: no resolver, no hostname, no package caches.
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
            "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/* "$rootfs"/etc/resolv.conf \
            "$rootfs"/etc/hostname "$rootfs"/tmp/* "$rootfs"/debootstrap
        mkdir -p "$CACHE_DIR"
        tar --numeric-owner --xattrs -C "$rootfs" -czf "$BASE_TARBALL.part" .
        mv -f "$BASE_TARBALL.part" "$BASE_TARBALL"
        rm -rf --one-file-system "$rootfs"
    fi
    step "importing $BASE_TARBALL as $BASE_IMAGE"
    podman import --quiet \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["python3"]' \
        "$BASE_TARBALL" "$BASE_IMAGE" >/dev/null
fi

# ---------------------------------------------------------------- 3. build
# pip inside the build reaches the package index the way the host's pip does: the same
# index URLs (http(s) only; a file:// index of the host is not visible in the build) and
# the host's CA bundle, mounted read-only (TLS may be intercepted by a proxy here).
pip_setting() {
    local name=$1 var value
    var=PIP_$(printf '%s' "$name" | tr 'a-z-' 'A-Z_')
    value=${!var:-}
    if [ -z "$value" ]; then
        value=$(python3 -m pip config list 2>/dev/null |
            sed -n "s/^[a-z:]*[.]$name='\(.*\)'\$/\1/p" | head -n 1 || true)
    fi
    printf '%s' "$value"
}
only_http() {
    local u out=()
    for u in $1; do
        case $u in http://* | https://*) out+=("$u") ;; esac
    done
    printf '%s' "${out[*]}"
}
build_args=(--build-arg "BASE=$BASE_IMAGE")
index_url=$(only_http "$(pip_setting index-url)")
extra_index_url=$(only_http "$(pip_setting extra-index-url)")
trusted_host=$(pip_setting trusted-host)
[ -z "$index_url" ] || build_args+=(--build-arg "PIP_INDEX_URL=$index_url")
[ -z "$extra_index_url" ] || build_args+=(--build-arg "PIP_EXTRA_INDEX_URL=$extra_index_url")
[ -z "$trusted_host" ] || build_args+=(--build-arg "PIP_TRUSTED_HOST=$trusted_host")
cert=$(pip_setting cert)
[ -f "$cert" ] || cert=$CA_BUNDLE
mounts=()
if [ -f "$cert" ]; then
    mounts+=(--volume "$cert:$CA_BUNDLE:ro")
    build_args+=(--build-arg "PIP_CERT=$CA_BUNDLE")
fi

step "building $IMAGE from $BASE_IMAGE"
buildah bud --quiet --format docker --isolation chroot --layers \
    "${build_args[@]}" "${mounts[@]}" --tag "$IMAGE" . >"$work/build.log" 2>&1 ||
    { tail -40 "$work/build.log" >&2; die "buildah bud failed"; }

# ---------------------------------------------------------------- 4. run
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
step "running $CONTAINER on 127.0.0.1:$port (read-only root, spool on tmpfs)"
# runc, and explicit rlimits: podman's default nofile limit is refused in this sandbox
# ("error setting rlimit type 7: operation not permitted"). slirp4netns: no CNI plugins are
# installed, so the port is published from user space, on 127.0.0.1 only.
container_started=1
podman_ run --detach --name "$CONTAINER" --runtime runc \
    --network slirp4netns --publish "127.0.0.1:$port:8887" \
    --ulimit nofile=8192:8192 --ulimit nproc=4096:4096 \
    --read-only --tmpfs /var/lib/botscore:rw,U \
    --env BOTSCORE_AUDIT_SEGMENT_MAX_AGE_SECONDS=1 \
    "$IMAGE" >/dev/null

# ---------------------------------------------------------------- 5. checks
# HTTP from the host with python3's urllib (no proxy: the target is 127.0.0.1).
http() { # METHOD PATH [JSON] -> prints "STATUS X-Request-ID BODY"
    python3 - "$port" "$@" <<'EOF'
import json, sys, urllib.error, urllib.request as u
port, method, path = sys.argv[1:4]
data = sys.argv[4].encode() if len(sys.argv) > 4 else None
req = u.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                headers={"Content-Type": "application/json", "X-Request-ID": f"smoke-{port}-{path.strip('/')}"})
try:
    resp = u.build_opener(u.ProxyHandler({})).open(req, timeout=5)
except urllib.error.HTTPError as exc:
    resp = exc
print(resp.status, resp.headers.get("X-Request-ID", "-"), resp.read().decode())
EOF
}

step "waiting for /readyz"
ready=""
for _ in $(seq 1 120); do
    [ "$(podman inspect --format '{{.State.Running}}' "$CONTAINER")" = true ] || die "container exited"
    ready=$(http GET /readyz 2>/dev/null || true)
    case $ready in "200 "*) break ;; esac
    sleep 0.5
done
case $ready in "200 "*) log "/readyz: $ready" ;; *) die "/readyz not 200 within 60 s: ${ready:-no answer}" ;; esac

health=$(http GET /healthz)
case $health in "200 "*) log "/healthz: $health" ;; *) die "/healthz: $health" ;; esac

read -r status request_id body <<<"$(http POST /bot-score '{"x1": 0.1, "x2": 0.2}')"
[ "$status" = 200 ] || die "POST /bot-score: $status $body"
python3 -c 'import json, sys; p = json.loads(sys.argv[1])["p_bot"]; assert 0 <= p <= 1, p' "$body" ||
    die "POST /bot-score: bad body $body"
[ "$request_id" = "smoke-$port-bot-score" ] || die "X-Request-ID not echoed: $request_id"
log "POST /bot-score: $status $body (X-Request-ID $request_id)"

# Inside the container: uid, read-only root, nothing but the runtime in the venv.
podman exec "$CONTAINER" python3 -c '
import importlib.util, os, shutil, sys
status = dict(l.split(":", 1) for l in open("/proc/1/status").read().splitlines() if ":" in l)
uids, gids = status["Uid"].split(), status["Gid"].split()
assert set(uids) == {"10001"} and set(gids) == {"10001"}, ("PID 1 runs as", uids, gids)
assert os.getuid() == 10001, os.getuid()
cmdline = open("/proc/1/cmdline").read().split("\0")
assert "serve" in cmdline and cmdline[1].endswith("/botscore"), cmdline
try:
    open("/opt/venv/probe", "w")
    sys.exit("the root filesystem is writable")
except OSError:
    pass
for mod in ("sklearn", "numpy", "matplotlib", "skops", "botscore_train", "pytest", "hypothesis", "pip"):
    assert importlib.util.find_spec(mod) is None, mod + " is in the runtime image"
for tool in ("gcc", "cc", "make"):
    assert shutil.which(tool) is None, tool + " is in the runtime image"
import botscore.settings as s
assert s.SHIPPED_MODEL.is_file(), s.SHIPPED_MODEL
print("uid", uids[0], "gid", gids[0], "python", sys.version.split()[0], "cmd", " ".join(cmdline[1:]).strip())
' >"$work/inside.txt" 2>&1 || { cat "$work/inside.txt" >&2; die "checks inside the container failed"; }
log "inside: $(cat "$work/inside.txt")"
[ "$(podman exec "$CONTAINER" id -u)" = 10001 ] || die "id -u is not 10001"

# The audit record: in a shipped segment (sealed after 1 s, gzip JSON lines) under the spool.
step "waiting for the audit record $request_id in /var/lib/botscore"
found=""
for _ in $(seq 1 60); do
    found=$(podman exec "$CONTAINER" python3 -c '
import gzip, json, pathlib, sys
rid, root = sys.argv[1], pathlib.Path("/var/lib/botscore")
for path in sorted(root.glob("shipped/bot-score/dt=*/hour=*/*.jsonl.gz")):
    with gzip.open(path, "rt") as f:
        for line in f:
            if json.loads(line).get("id") == rid:
                print(path.relative_to(root)); sys.exit()
' "$request_id") || die "reading the spool failed"
    [ -z "$found" ] || break
    sleep 0.5
done
[ -n "$found" ] || {
    podman exec "$CONTAINER" find /var/lib/botscore -ls >&2 || true
    die "no audit record with id $request_id in a shipped segment within 30 s"
}
log "audit record: /var/lib/botscore/$found"

# The image's HEALTHCHECK: present in the config, and passing when run.
healthcheck=$(podman image inspect --format '{{json .HealthCheck}}' "$IMAGE")
case $healthcheck in *healthz*) ;; *) die "no HEALTHCHECK in the image config: $healthcheck" ;; esac
podman_ healthcheck run "$CONTAINER" >/dev/null || die "podman healthcheck run: unhealthy"
log "HEALTHCHECK: present and passing"
user=$(podman image inspect --format '{{.Config.User}}' "$IMAGE")
[ "$user" = 10001:10001 ] || die "image USER is '$user'"

# ---------------------------------------------------------------- 6. stop (SIGTERM)
step "stopping (SIGTERM, up to 30 s)"
podman_ stop --time 30 "$CONTAINER" >/dev/null
exit_code=$(podman inspect --format '{{.State.ExitCode}}' "$CONTAINER")
podman logs "$CONTAINER" >"$work/container.log" 2>&1 || true
[ "$exit_code" = 0 ] || { tail -20 "$work/container.log" >&2; die "exit code $exit_code after SIGTERM"; }
if grep -q Traceback "$work/container.log" || ! grep -q 'Application shutdown complete' "$work/container.log"; then
    cat "$work/container.log" >&2
    die "no clean shutdown in the container's log"
fi
log "stopped: exit code 0, $(grep -c . "$work/container.log") log lines, no traceback"
podman_ rm "$CONTAINER" >/dev/null
container_started=0

# ---------------------------------------------------------------- 7. SIGKILL; another host adopts
# Two containers on one named volume, as two tasks share EFS: the first answers and is killed
# with SIGKILL before it ships anything; the second, with another host name, adopts its
# segments once their heartbeat is BOTSCORE_AUDIT_ADOPT_AFTER_SECONDS old, and ships them.
VOLUME=botscore-smoke-spool-$$
ADOPTER=$CONTAINER-adopter
podman_ volume create "$VOLUME" >/dev/null
volume_created=1
on_volume() { # NAME HOSTNAME PORT
    podman_ run --detach --name "$1" --hostname "$2" --runtime runc \
        --network slirp4netns --publish "127.0.0.1:$3:8887" \
        --ulimit nofile=8192:8192 --ulimit nproc=4096:4096 \
        --read-only --volume "$VOLUME:/var/lib/botscore" \
        --env BOTSCORE_AUDIT_SYNC=always --env BOTSCORE_AUDIT_SEGMENT_MAX_AGE_SECONDS=3600 \
        --env BOTSCORE_AUDIT_ADOPT_AFTER_SECONDS=2 \
        "$IMAGE" >/dev/null
}
wait_ready() { # NAME
    for _ in $(seq 1 120); do
        [ "$(podman inspect --format '{{.State.Running}}' "$1")" = true ] || die "$1 exited"
        case $(http GET /readyz 2>/dev/null || true) in "200 "*) return 0 ;; esac
        sleep 0.5
    done
    die "$1: /readyz not 200 within 60 s"
}
step "SIGKILL: $CONTAINER on volume $VOLUME answers and is killed; $ADOPTER (another host) adopts"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
container_started=1
on_volume "$CONTAINER" killed-host "$port"
wait_ready "$CONTAINER"
python3 -c '
import sys, urllib.request as u
opener = u.build_opener(u.ProxyHandler({}))
for i in range(20):
    req = u.Request(f"http://127.0.0.1:{sys.argv[1]}/bot-score", data=b"{\"x1\": 0.1, \"x2\": 0.2}", method="POST",
                    headers={"Content-Type": "application/json", "X-Request-ID": f"adopt-{i}"})
    assert opener.open(req, timeout=5).status == 200
' "$port" || die "POSTs to $CONTAINER failed"
podman_ kill --signal KILL "$CONTAINER" >/dev/null
podman_ rm --force "$CONTAINER" >/dev/null
container_started=0
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
adopter_started=1
on_volume "$ADOPTER" adopter-host "$port"
wait_ready "$ADOPTER"
shipped=""
for _ in $(seq 1 60); do
    shipped=$(podman exec "$ADOPTER" python3 -c '
import gzip, json, pathlib
root = pathlib.Path("/var/lib/botscore/shipped")
ids = {json.loads(line)["id"] for path in root.rglob("*killed-host-*.jsonl.gz") for line in gzip.open(path, "rt")}
print(len(ids & {f"adopt-{i}" for i in range(20)}))
') || die "reading the shipped folder failed"
    [ "$shipped" = 20 ] && break
    sleep 0.5
done
[ "$shipped" = 20 ] || die "the adopter shipped $shipped of the killed container's 20 answers"
log "adopted: all 20 answers of the SIGKILLed container shipped by $ADOPTER under their own keys"
podman_ rm --force --time 30 "$ADOPTER" >/dev/null
adopter_started=0

# Bound the storage: images left untagged by earlier builds, once a week old (the layer
# cache of an unchanged build is simply rebuilt then).
podman image prune --force --filter until=168h >/dev/null 2>&1 || true

size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
log "PASS: $IMAGE ($(python3 -c 'import sys; print(f"{int(sys.argv[1]) / 1e6:.0f} MB")' "$size"), base $BASE_IMAGE)"
log "total $((SECONDS - started))s"
