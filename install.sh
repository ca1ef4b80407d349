#!/bin/sh
# Installs spedy-runner and lays out a runner folder (compose.yml and an empty
# .env). POSIX sh; safe to run again (it changes only what differs).
#
# Where the binary comes from, first match wins:
#   1. SPEDY_INSTALL_BINARY=/path/to/spedy-runner   a binary you already have
#   2. SPEDY_RELEASE_URL=<base URL>                 a release archive, checksum verified
#   3. a source checkout around this script         cargo build --release (or --from-source)
#   4. the default release URL                      as 2
set -eu

DEFAULT_RELEASE_URL=https://github.com/spedy-ai/spedy-runner/releases/latest/download

usage() {
    cat <<'EOF'
Usage: install.sh [--prefix DIR] [--dir DIR] [--from-source] [--uninstall] [--help]

Installs spedy-runner into PREFIX/bin, its man page and shell completions, and
lays out a runner folder with compose.yml and an empty .env (mode 0600).
Running it again changes only what differs.

Options:
  --prefix DIR    where to install (default /usr/local as root, else ~/.local)
  --dir DIR       the runner folder (default /opt/spedy-runner as root,
                  else ~/spedy-runner)
  --from-source   build from this source checkout with cargo even when a
                  release archive could be used
  --uninstall     remove what install.sh installed under PREFIX; the runner
                  folder stays (its .env holds your runner token)
  -h, --help      this text

Environment:
  SPEDY_INSTALL_BINARY   install this prebuilt spedy-runner binary (no download,
                         no build)
  SPEDY_RELEASE_URL      base URL of a release: install.sh fetches
                         spedy-runner-<arch>-unknown-linux-gnu.tar.gz and its .sha256
                         from there and verifies the checksum (https:// or file://;
                         default: the latest GitHub release when not in a checkout)
  SPEDY_DOCKER_GID       the Docker socket's group id written into compose.yml
                         (default: read from /var/run/docker.sock)
  CARGO                  the cargo to build with (default: cargo on PATH)

Then: cd <dir> && spedy-runner setup
EOF
}

say() { printf '%s\n' "install.sh: $*"; }
warn() { printf '%s\n' "install.sh: warning: $*" >&2; }
die() {
    printf '%s\n' "install.sh: error: $*" >&2
    exit 1
}

script_dir=$(CDPATH='' cd -- "$(dirname -- "$0")" 2>/dev/null && pwd) || script_dir=
if [ "$(id -u)" -eq 0 ]; then
    prefix=/usr/local
    runner_dir=/opt/spedy-runner
else
    prefix=${HOME:?HOME is not set}/.local
    runner_dir=$HOME/spedy-runner
fi
mode=install
from_source=no

while [ "$#" -gt 0 ]; do
    case $1 in
        --prefix | --dir)
            if [ "$#" -lt 2 ] || [ -z "$2" ]; then die "$1 needs a folder, e.g. $1 /opt/spedy"; fi
            if [ "$1" = --prefix ]; then prefix=$2; else runner_dir=$2; fi
            shift 2
            ;;
        --prefix=*) prefix=${1#*=}; shift ;;
        --dir=*) runner_dir=${1#*=}; shift ;;
        --from-source) from_source=yes; shift ;;
        --uninstall) mode=uninstall; shift ;;
        -h | --help) usage; exit 0 ;;
        *)
            printf '%s\n' "install.sh: error: unknown argument: $1" >&2
            usage >&2
            exit 2
            ;;
    esac
done

bin_dir=$prefix/bin
binary=$bin_dir/spedy-runner
man_page=$prefix/share/man/man1/spedy-runner.1
bash_completion=$prefix/share/bash-completion/completions/spedy-runner
zsh_completion=$prefix/share/zsh/site-functions/_spedy-runner
fish_completion=$prefix/share/fish/vendor_completions.d/spedy-runner.fish

tmp=
cleanup() { if [ -n "$tmp" ]; then rm -rf "$tmp"; fi; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# Puts `src` at `dest` with `perm` unless it is already there, byte for byte.
# Writes next to the target and renames, so a running binary is never torn.
put_file() {
    src=$1 dest=$2 perm=$3
    if [ -f "$dest" ] && cmp -s "$src" "$dest"; then
        chmod "$perm" "$dest"
        say "up to date: $dest"
        return 0
    fi
    mkdir -p "$(dirname -- "$dest")"
    cp "$src" "$dest.tmp.$$"
    chmod "$perm" "$dest.tmp.$$"
    mv -f "$dest.tmp.$$" "$dest"
    say "installed: $dest"
}

in_checkout() {
    [ -n "$script_dir" ] && [ -f "$script_dir/Cargo.toml" ] &&
        grep -q '^name = "spedy-runner"' "$script_dir/Cargo.toml"
}

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d ' ' -f 1
    elif command -v shasum >/dev/null 2>&1; then
        shasum -a 256 "$1" | cut -d ' ' -f 1
    else
        die "neither sha256sum nor shasum is installed, so the download cannot be verified"
    fi
}

fetch() {
    case $1 in
        https://* | file://*) ;;
        *) die "refusing to download from $1: only https:// and file:// URLs are accepted" ;;
    esac
    if command -v curl >/dev/null 2>&1; then
        curl --proto '=https,file' --tlsv1.2 -fsSL -o "$2" "$1" || die "cannot download $1"
    elif command -v wget >/dev/null 2>&1; then
        case $1 in
            file://*) cp "${1#file://}" "$2" || die "cannot read $1" ;;
            *) wget --https-only -q -O "$2" "$1" || die "cannot download $1" ;;
        esac
    else
        die "neither curl nor wget is installed; set SPEDY_INSTALL_BINARY or build from source"
    fi
}

# Downloads the release archive and its checksum, verifies, and unpacks it
# into $tmp/release; sets `staged` to the binary found there.
from_release() {
    base=${SPEDY_RELEASE_URL:-$DEFAULT_RELEASE_URL}
    base=${base%/}
    case $(uname -s)-$(uname -m) in
        Linux-x86_64 | Linux-amd64) triple=x86_64-unknown-linux-gnu ;;
        Linux-aarch64 | Linux-arm64) triple=aarch64-unknown-linux-gnu ;;
        *) die "no release archive for $(uname -s) $(uname -m); build from a source checkout with --from-source" ;;
    esac
    archive=spedy-runner-$triple.tar.gz
    say "downloading $base/$archive"
    fetch "$base/$archive" "$tmp/$archive"
    fetch "$base/$archive.sha256" "$tmp/$archive.sha256"
    expected=$(cut -d ' ' -f 1 <"$tmp/$archive.sha256")
    actual=$(sha256_of "$tmp/$archive")
    if [ -z "$expected" ] || [ "$expected" != "$actual" ]; then
        die "checksum mismatch for $archive: expected ${expected:-nothing}, got $actual; nothing was installed"
    fi
    say "checksum verified: sha256 $actual"
    mkdir -p "$tmp/release"
    tar -xzf "$tmp/$archive" -C "$tmp/release" || die "cannot unpack $archive"
    staged=$(find "$tmp/release" -type f -name spedy-runner | head -n 1)
    [ -n "$staged" ] || die "$archive holds no spedy-runner binary"
    compose_src=$(find "$tmp/release" -type f -name compose.yml | head -n 1)
}

from_source_checkout() {
    cargo=${CARGO:-cargo}
    command -v "$cargo" >/dev/null 2>&1 ||
        die "cargo is not installed; install Rust (https://rustup.rs) or set SPEDY_INSTALL_BINARY"
    say "building spedy-runner from source in $script_dir (cargo build --release; this takes a few minutes)"
    (cd "$script_dir" && "$cargo" build --release --locked --bin spedy-runner) ||
        die "cargo build failed"
    staged=${CARGO_TARGET_DIR:-$script_dir/target}/release/spedy-runner
    [ -x "$staged" ] || die "cargo built no binary at $staged"
}

# Sets `staged` (the binary to install) and `compose_src` (compose.yml).
stage_binary() {
    compose_src=
    if in_checkout; then compose_src=$script_dir/docker/compose.yml; fi
    if [ -n "${SPEDY_INSTALL_BINARY:-}" ] && [ "$from_source" = no ]; then
        [ -f "$SPEDY_INSTALL_BINARY" ] || die "SPEDY_INSTALL_BINARY=$SPEDY_INSTALL_BINARY is not a file"
        staged=$SPEDY_INSTALL_BINARY
        say "using the prebuilt binary $staged"
    elif [ -n "${SPEDY_RELEASE_URL:-}" ] && [ "$from_source" = no ]; then
        from_release
    elif in_checkout; then
        from_source_checkout
    elif [ "$from_source" = yes ]; then
        die "--from-source needs this script inside a spedy-runner source checkout"
    else
        from_release
    fi
    "$staged" --version >/dev/null 2>&1 || die "$staged does not run on this machine"
}

install_docs() {
    if "$staged" completions man >"$tmp/man" 2>/dev/null; then
        put_file "$tmp/man" "$man_page" 0644
    else
        warn "no man page: $staged completions man failed"
    fi
    for shell in bash zsh fish; do
        case $shell in
            bash) dest=$bash_completion ;;
            zsh) dest=$zsh_completion ;;
            fish) dest=$fish_completion ;;
        esac
        if "$staged" completions "$shell" >"$tmp/$shell" 2>/dev/null; then
            put_file "$tmp/$shell" "$dest" 0644
        else
            warn "no $shell completions"
        fi
    done
}

check_docker() {
    if ! command -v docker >/dev/null 2>&1; then
        warn "docker is not installed: spedy-runner runs every job in a Docker container (https://docs.docker.com/engine/install/)"
    elif ! docker info >/dev/null 2>&1; then
        warn "docker is installed but no engine answers (is it running, and may this user use /var/run/docker.sock?)"
    else
        say "found a Docker engine"
    fi
    if docker compose version >/dev/null 2>&1; then
        compose="docker compose"
    elif command -v docker-compose >/dev/null 2>&1; then
        compose=docker-compose
    else
        compose="docker compose"
        warn "no Docker Compose found: needed to run the supervisor as a service (or run \`spedy-runner run\` yourself)"
    fi
}

# The runner folder: compose.yml with the socket's group filled in, and an
# empty .env (mode 0600) unless one exists; an existing file is never replaced.
lay_out_runner_dir() {
    mkdir -p "$runner_dir"
    chmod 0750 "$runner_dir"
    if [ -n "$compose_src" ] && [ -f "$compose_src" ]; then
        gid=${SPEDY_DOCKER_GID:-}
        if [ -z "$gid" ] && [ -S /var/run/docker.sock ]; then
            gid=$(stat -c %g /var/run/docker.sock 2>/dev/null || echo 0)
        fi
        sed "s/\${SPEDY_DOCKER_GID:-0}/\${SPEDY_DOCKER_GID:-${gid:-0}}/" "$compose_src" >"$tmp/compose.yml"
        if [ -f "$runner_dir/compose.yml" ] && ! cmp -s "$tmp/compose.yml" "$runner_dir/compose.yml"; then
            put_file "$tmp/compose.yml" "$runner_dir/compose.yml.new" 0644
            warn "kept your $runner_dir/compose.yml; the new one is compose.yml.new"
        else
            put_file "$tmp/compose.yml" "$runner_dir/compose.yml" 0644
        fi
    else
        warn "no compose.yml to copy (not in a checkout or release archive); take docker/compose.yml from the source"
    fi
    if [ -e "$runner_dir/.env" ]; then
        chmod 0600 "$runner_dir/.env"
        say "kept: $runner_dir/.env (mode 0600)"
    else
        (umask 077 && : >"$runner_dir/.env")
        say "created: $runner_dir/.env (empty, mode 0600)"
    fi
}

do_install() {
    tmp=$(mktemp -d)
    stage_binary
    put_file "$staged" "$binary" 0755
    install_docs
    check_docker
    lay_out_runner_dir
    case :${PATH:-}: in
        *:"$bin_dir":*) run=spedy-runner ;;
        *)
            run=$binary
            warn "$bin_dir is not on your PATH"
            ;;
    esac
    cat <<EOF

spedy-runner is installed. Next step: create this host's runner token.

    cd $runner_dir && $run setup

setup writes SPEDY_API_URL and SPEDY_RUNNER_TOKEN into .env. Then start the
supervisor with \`$compose up -d\` (or \`$run run\`) and check the host with
\`$run doctor\`.
EOF
}

do_uninstall() {
    for f in "$binary" "$man_page" "$bash_completion" "$zsh_completion" "$fish_completion"; do
        if [ -e "$f" ]; then
            rm -f "$f"
            say "removed: $f"
        fi
    done
    say "spedy-runner is uninstalled from $prefix"
    if [ -d "$runner_dir" ]; then
        say "kept the runner folder $runner_dir (its .env holds the runner token);"
        say "stop the service with \`docker compose down\` there, then remove it with: rm -r $runner_dir"
    fi
}

if [ "$mode" = uninstall ]; then do_uninstall; else do_install; fi
