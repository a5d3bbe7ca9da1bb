#!/usr/bin/env bash
# Install everything the tests need on Debian 12/13 (or Ubuntu), then nbdtui itself,
# editable, with its test extras. Idempotent: it does nothing that is already done.
#
#   - apt packages: only when one is missing (then `apt-get update` + `apt-get install -y`),
#     as root or through sudo;
#   - Python: `python3 -m pip install -e '.[test]'` when python3 accepts it (a venv, pyenv,
#     a non-Debian Python); when python3 is "externally managed" (PEP 668, Debian's own),
#     a virtual environment .venv is created and used instead. scripts/test.sh then runs
#     .venv/bin/python. Skipped when nothing changed since the last successful install.
#
# Environment: NBDTUI_PYTHON=/path/to/python to choose the interpreter,
#              NBDTUI_FORCE_INSTALL=1 to reinstall anyway.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

APT_PACKAGES=(
    nbdkit qemu-utils nbd-server libnbd-bin       # the NBD servers and libnbd's oracles
    python3-libnbd                                # libnbd's Python binding and nbdsh (oracle writes)
    gddrescue                                     # ddrescuelog: checks copy --rescue's maps
    openssh-server openssh-client                 # sshd fixture, nbd+ssh://
    openssl                                       # TLS certificates for tests
    fio bsdextrautils tmux util-linux             # benchmarks, hexdump, TUI tests, setpriv
    fdisk gdisk dosfstools mtools e2fsprogs       # partition and filesystem oracles
    ntfs-3g file mount                            #   (sfdisk, sgdisk, blkid, losetup...)
    exfatprogs                                    # exFAT images and fsck.exfat
    xfsprogs btrfs-progs cryptsetup-bin mdadm lvm2 # volume oracles (xfs_db, dump-super, luksDump...)
    python3 python3-venv python3-pip ca-certificates
    diffutils                                     # cmp: the oracle of nbdtui diff
)

log() { printf 'install-deps: %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        log "need root (or sudo) to run: $*"
        exit 1
    fi
}

install_apt_packages() {
    if ! command -v dpkg-query >/dev/null; then
        log "not a Debian-like system: install by hand: ${APT_PACKAGES[*]}"
        return
    fi
    local missing=() pkg
    for pkg in "${APT_PACKAGES[@]}"; do
        if [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" != "install ok installed" ]; then
            missing+=("$pkg")
        fi
    done
    if [ ${#missing[@]} -eq 0 ]; then
        log "apt packages already installed"
        return
    fi
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${APT_PACKAGES[@]}" </dev/null
}

# Prints the interpreter to use: NBDTUI_PYTHON, an existing .venv, python3 when pip may
# install into it, or a new .venv.
choose_python() {
    if [ -n "${NBDTUI_PYTHON:-}" ]; then
        printf '%s\n' "$NBDTUI_PYTHON"
    elif [ -x .venv/bin/python ]; then
        printf '%s\n' "$PWD/.venv/bin/python"
    elif python3 - <<'PY'
import os, sys, sysconfig
in_venv = sys.prefix != sys.base_prefix
managed = os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED"))
sys.exit(0 if in_venv or not managed else 1)
PY
    then
        command -v python3
    else
        log "python3 is externally managed (PEP 668): creating .venv"
        python3 -m venv .venv
        printf '%s\n' "$PWD/.venv/bin/python"
    fi
}

install_python_packages() {
    local python stamp_dir=build stamp want
    python="$(choose_python)"
    case "$python" in /*) ;; *) python="$(command -v "$python")" ;; esac
    want="$("$python" -c 'import sys; print(sys.executable)') $(sha256sum pyproject.toml | cut -d' ' -f1)"
    # Run from / so that the checkout itself is not importable by accident.
    if [ -z "${NBDTUI_FORCE_INSTALL:-}" ] && [ -f "$stamp_dir/install-deps.stamp" ] \
        && [ "$(cat "$stamp_dir/install-deps.stamp")" = "$want" ] \
        && [ "$(cd / && "$python" -c 'import os, nbdtui, pytest, pytest_asyncio, pytest_timeout, hypothesis, ruff
print(os.path.dirname(os.path.dirname(os.path.abspath(nbdtui.__file__))))' 2>/dev/null)" = "$PWD" ]; then
        log "python packages up to date for $python"
        return
    fi
    log "pip install -e '.[test]' with $python"
    PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1 \
        "$python" -m pip install -q -e '.[test]' </dev/null
    mkdir -p "$stamp_dir"
    printf '%s\n' "$want" >"$stamp_dir/install-deps.stamp"
}

install_apt_packages
install_python_packages
