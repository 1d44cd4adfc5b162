#!/usr/bin/env bash
# Build the grading image on a machine that reaches no image registry (CI, this
# project's machines), and print its name as the last line of stdout.
#
#  1. installs docker.io if dockerd is missing, and starts dockerd when none
#     answers: no bridge network (--bridge=none --iptables=false), its own data root;
#  2. makes the base image (Debian bookworm, Python 3.11) with debootstrap and
#     `docker import`, once: skipped while the image exists;
#  3. fills docker/wheels from pip's local wheel store (what constraints.txt pins);
#  4. builds the real Dockerfile with --network none, stand-in assets.
#
# Each step is skipped when already done; the image is named after a hash of
# its sources, so it is rebuilt only when they change. Needs root.
# Env: AUTOGRADER_DOCKER_BASE (base image name), AUTOGRADER_DOCKER_ROOT (dockerd data root), PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."

base=${AUTOGRADER_DOCKER_BASE:-autograder-base:bookworm}
data_root=${AUTOGRADER_DOCKER_ROOT:-/var/lib/autograder-docker}
python=${PYTHON:-.venv/bin/python}
needed_gb=15
export DOCKER_BUILDKIT=0 # the classic builder: no buildx here
log() { echo "docker-image: $*" >&2; }

exec 9>/var/lock/autograder-docker-image.lock
flock 9 # one build at a time on this machine

# 1. Docker
if ! command -v dockerd >/dev/null; then
    log "installing docker.io"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
    log "starting dockerd (no bridge network; data in $data_root; log in /var/log/autograder-dockerd.log)"
    mkdir -p "$data_root"
    # 9>&-: the daemon must not hold this script's lock
    setsid nohup dockerd --bridge=none --iptables=false --ip-masq=false --data-root "$data_root" \
        </dev/null >/var/log/autograder-dockerd.log 2>&1 9>&- &
    for _ in $(seq 120); do
        docker info >/dev/null 2>&1 && break
        sleep 0.5
    done
    docker info >/dev/null 2>&1 || { tail -20 /var/log/autograder-dockerd.log >&2; exit 1; }
fi

# 2. The base image
if ! docker image inspect "$base" >/dev/null 2>&1; then
    command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    rootfs=$(mktemp -d /var/tmp/autograder-rootfs.XXXXXX)
    trap 'rm -rf "$rootfs"' EXIT
    log "making $base with debootstrap (about a minute)"
    debootstrap --variant=minbase --include=python3,python3-venv,libseccomp2 bookworm "$rootfs" >"$rootfs.log" 2>&1 \
        || { tail -20 "$rootfs.log" >&2; exit 1; }
    rm -f "$rootfs.log"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
        "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/*
    tar -C "$rootfs" -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["/bin/bash"]' - "$base" >/dev/null
    rm -rf "$rootfs"
    trap - EXIT
fi

# The image's name: a hash of everything the build reads (wheels follow from
# pyproject.toml and constraints.txt), and of the base.
sources=$(
    find Dockerfile .dockerignore pyproject.toml constraints.txt README.md autograder assignments solutions \
        -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum
    docker image inspect --format '{{.Id}}' "$base"
)
image="autograder:$(sha256sum <<<"$sources" | cut -c1-16)"
if docker image inspect "$image" >/dev/null 2>&1; then
    log "$image is up to date"
    echo "$image"
    exit 0
fi

# 3. The wheels, downloaded again only when the pins (dependencies, constraints) change
wheels=docker/wheels
requirements=$(
    "$python" -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + p['optional-dependencies']['standins']))"
)
pins=$(printf '%s\n' "$requirements" | cat - constraints.txt | sha256sum | cut -c1-16)
if [ "$(cat "$wheels/.stamp" 2>/dev/null)" != "$pins" ]; then
    log "collecting wheels into $wheels"
    rm -f "$wheels"/*.whl "$wheels/.stamp"
    printf '%s\n' "$requirements" >"$wheels/requirements.txt"
    "$python" -m pip download --quiet --only-binary=:all: -c constraints.txt -d "$wheels" \
        -r "$wheels/requirements.txt" hatchling 2>"$wheels/download.log" \
        || { tail -20 "$wheels/download.log" >&2; exit 1; }
    rm -f "$wheels/requirements.txt" "$wheels/download.log"
    echo "$pins" >"$wheels/.stamp"
fi

# New pins make the images of earlier ones, and their build cache, of no use:
# their disk (about 15 GB a set) is freed before building.
if [ -z "$(docker images --quiet --filter "label=org.autograder.pins=$pins")" ]; then
    docker images --filter label=org.autograder.pins --format '{{.Repository}}:{{.Tag}}' \
        | xargs -r docker rmi >/dev/null 2>&1 || true
    docker image prune --force >/dev/null
fi

free_gb=$(df --output=avail -BG "$(docker info --format '{{.DockerRootDir}}')" | tail -1 | tr -dc 0-9)
if [ "$free_gb" -lt "$needed_gb" ]; then
    log "only ${free_gb} GB free for Docker; the build needs about ${needed_gb} GB"
    exit 1
fi

# 4. The image, offline, with stand-in assets
log "building $image (the first build takes minutes)"
started=$(date +%s)
docker build --network none \
    --build-arg BASE="$base" --build-arg ASSETS=synth --build-arg PIP_NO_INDEX=1 --label org.autograder.pins="$pins" \
    --tag "$image" --tag autograder:local . >&2
log "built $image in $(($(date +%s) - started)) s"
echo "$image"
