#!/usr/bin/env bash
# Remove the fer-edge service installed by scripts/install.sh (`make uninstall-service`).
#
#   sudo scripts/uninstall.sh           # stop, disable, remove the unit and /opt/fer-edge;
#                                       # keeps /etc/fer-edge (your config) and the CSV log
#   sudo scripts/uninstall.sh --purge   # also delete /etc/fer-edge and /var/lib/fer-edge (the log!)
#   scripts/uninstall.sh --root DIR --no-systemctl    # a staged install (tests)
set -euo pipefail

NAME=fer-edge
ROOT=""
SYSTEMCTL=1
PURGE=0
ARGS=("$@")

usage() { echo "usage: scripts/uninstall.sh [--purge] [--root DIR] [--no-systemctl]"; }
die() { echo "uninstall.sh: error: $*" >&2; exit 2; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --purge) PURGE=1; shift ;;
        --root) ROOT="$(realpath -m "${2:?--root needs a directory}")"; shift 2 ;;
        --no-systemctl) SYSTEMCTL=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option '$1'" ;;
    esac
done

if [[ -z "$ROOT" && $EUID -ne 0 ]]; then
    if command -v sudo >/dev/null; then
        exec sudo "$0" "${ARGS[@]}"
    fi
    die "run as root (sudo scripts/uninstall.sh)"
fi

UNIT="$ROOT/etc/systemd/system/$NAME.service"
if [[ $SYSTEMCTL -eq 1 && -z "$ROOT" && -d /run/systemd/system ]]; then
    systemctl disable --now "$NAME.service" 2>/dev/null || true
    systemctl reset-failed "$NAME.service" 2>/dev/null || true
elif [[ $SYSTEMCTL -eq 1 && -n "$ROOT" ]]; then
    systemctl --root="$ROOT" disable "$NAME.service" 2>/dev/null || true
fi
# The enable symlink is removed by `disable`; remove it by hand too when systemctl was not used.
rm -f "$UNIT" "$ROOT/etc/systemd/system/multi-user.target.wants/$NAME.service"
if [[ $SYSTEMCTL -eq 1 && -z "$ROOT" && -d /run/systemd/system ]]; then
    systemctl daemon-reload
fi
rm -rf "$ROOT/opt/$NAME"
echo "removed the unit and $ROOT/opt/$NAME"

# DynamicUser= keeps the state in /var/lib/private/NAME behind the /var/lib/NAME symlink.
STATE="$ROOT/var/lib/$NAME"
if [[ $PURGE -eq 1 ]]; then
    rm -rf "$ROOT/etc/${NAME:?}" "$UNIT.d" "$ROOT/var/lib/private/$NAME" "$STATE"
    echo "purged $ROOT/etc/$NAME, local unit drop-ins ($UNIT.d) and the CSV log in $STATE"
else
    echo "kept the config in $ROOT/etc/$NAME, drop-ins in $UNIT.d and the CSV log in $STATE (--purge deletes them)"
fi
