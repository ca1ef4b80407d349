#!/bin/sh
# Builds the spedy-runner (supervisor) and spedy-platform images with no
# registry: static binaries from this workspace (cargo, glibc +crt-static),
# then docker/Dockerfile.offline with the legacy builder. The e2e compose test
# runs this script too.
set -eu

usage() {
    cat <<'USAGE'
Usage: docker/build-offline.sh [--profile dev|release] [--target-dir DIR]
                               [--runner-image NAME] [--platform-image NAME]

Builds static spedy-runner and spedy-platform binaries from this workspace and
packs each into a FROM-scratch image, with no registry involved.

Options (each has an environment twin):
  --profile P         cargo profile, dev or release   SPEDY_BUILD_PROFILE  (release)
  --target-dir DIR    cargo target dir for the static build
                                                      SPEDY_STATIC_TARGET_DIR (<workspace>/target/static)
  --runner-image N    tag of the supervisor image     SPEDY_RUNNER_IMAGE   (spedy-runner:local)
  --platform-image N  tag of the platform image       SPEDY_PLATFORM_IMAGE (spedy-platform:local)
  -h, --help          this text

Then: cd docker && SPEDY_RUNNER_IMAGE=spedy-runner:local docker compose up -d
USAGE
}

root=$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd)
profile=${SPEDY_BUILD_PROFILE:-release}
target_dir=${SPEDY_STATIC_TARGET_DIR:-$root/target/static}
runner_image=${SPEDY_RUNNER_IMAGE:-spedy-runner:local}
platform_image=${SPEDY_PLATFORM_IMAGE:-spedy-platform:local}

need_value() {
    if [ "$#" -lt 2 ] || [ -z "$2" ]; then
        echo "build-offline.sh: $1 needs a value" >&2
        exit 2
    fi
}

while [ "$#" -gt 0 ]; do
    case $1 in
        --profile) need_value "$@"; profile=$2; shift 2 ;;
        --target-dir) need_value "$@"; target_dir=$2; shift 2 ;;
        --runner-image) need_value "$@"; runner_image=$2; shift 2 ;;
        --platform-image) need_value "$@"; platform_image=$2; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "build-offline.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

case $profile in
    dev) out=debug ;;
    release) out=release ;;
    *) echo "build-offline.sh: --profile must be dev or release, not $profile" >&2; exit 2 ;;
esac

ca=${SPEDY_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
if [ ! -r "$ca" ]; then
    echo "build-offline.sh: no CA bundle at $ca (install ca-certificates, or set SPEDY_CA_BUNDLE)" >&2
    exit 2
fi

triple=x86_64-unknown-linux-gnu
echo "==> static $profile build of spedy-runner and spedy-platform into $target_dir"
# `--target` is mandatory with +crt-static (otherwise proc-macros break); the
# flags are set here rather than inherited so that a stray RUSTFLAGS cannot
# change them. Debug info is left out: it only makes the images bigger.
(
    cd "$root"
    unset CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_TARGET CARGO_TARGET_DIR
    RUSTFLAGS="-C target-feature=+crt-static" \
        CARGO_PROFILE_DEV_DEBUG=0 \
        "${CARGO:-cargo}" build --profile "$profile" --target "$triple" --target-dir "$target_dir" \
        -p spedy-runner -p spedy-platform --bins
)

bin_dir=$target_dir/$triple/$out
context=$target_dir/image-context
rm -rf "$context"
mkdir -p "$context/data"
cp "$bin_dir/spedy-runner" "$bin_dir/spedy-platform" "$context/"
cp "$ca" "$context/ca-certificates.crt"

echo "==> docker build $platform_image and $runner_image"
DOCKER_BUILDKIT=0 docker build -q -f "$root/docker/Dockerfile.offline" --target platform \
    -t "$platform_image" "$context"
DOCKER_BUILDKIT=0 docker build -q -f "$root/docker/Dockerfile.offline" --target supervisor \
    -t "$runner_image" "$context"
echo "built $runner_image and $platform_image"
