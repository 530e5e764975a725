#!/usr/bin/env bash
# Deploy fer-edge to a Raspberry Pi (`make deploy PI=pi@raspberrypi.local`, which builds the wheel first).
#
#   scripts/deploy.sh USER@HOST [--wheel FILE] [install.sh options, e.g. --model models/other_int8.tflite]
#
# 1. rsync the wheel (dist/fer_edge-*.whl, `make wheel`), the model with its contract, config.yaml,
#    the unit, install.sh/uninstall.sh and the guides to ~/fer-edge-deploy on the Pi (over ssh);
# 2. ssh there and run scripts/install.sh (it re-runs itself with sudo) from that copy: the wheel with
#    its edge dependencies in a venv of its own under /opt/fer-edge, /etc/fer-edge, the unit, enable,
#    restart, status (see scripts/install.sh). No source tree travels and nothing sets PYTHONPATH.
# Needs ssh access (a key is easiest: ssh-copy-id USER@HOST) and rsync on both ends.
# Environment: FER_EDGE_STAGE=DIR changes the staging directory on the Pi (relative to its home).
set -euo pipefail

die() { echo "deploy.sh: error: $*" >&2; exit 2; }

[[ $# -ge 1 && "$1" != -* ]] || die "usage: scripts/deploy.sh USER@HOST [--wheel FILE] [install.sh options]"
TARGET="$1"; shift
STAGE="${FER_EDGE_STAGE:-fer-edge-deploy}"
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$SRC"

# Every input is checked here, before anything is copied.
MODEL=models/emotion_int8.tflite
WHEEL=""
INSTALL_ARGS=()
MQTT_PASSWORD=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --model) MODEL="$(realpath --relative-to="$SRC" "${2:?--model needs a .tflite path}")"; shift 2 ;;
        --wheel) WHEEL="$(realpath -e "${2:?--wheel needs a .whl file}" 2>/dev/null)" || die "--wheel $2 not found"; shift 2 ;;
        --mqtt-password-file)
            MQTT_PASSWORD="$(realpath -e "${2:?--mqtt-password-file needs a file}" 2>/dev/null)" \
                || die "--mqtt-password-file $2 not found"
            [[ -f "$MQTT_PASSWORD" ]] || die "--mqtt-password-file $2 is not a file"
            shift 2 ;;
        *) INSTALL_ARGS+=("$1"); shift ;;
    esac
done
if [[ -z "$WHEEL" ]]; then
    shopt -s nullglob
    wheels=(dist/fer_edge-*.whl)
    shopt -u nullglob
    [[ ${#wheels[@]} -gt 0 ]] || die "no wheel in $SRC/dist: build it with 'make wheel' (make deploy does), or pass --wheel FILE"
    [[ ${#wheels[@]} -eq 1 ]] || die "${#wheels[@]} wheels in $SRC/dist: pass the one to deploy with --wheel FILE"
    WHEEL="$SRC/${wheels[0]}"
fi
[[ "$(basename "$WHEEL")" == fer_edge-*.whl ]] || die "--wheel $WHEEL is not a fer_edge-*.whl file"
CONTRACT="${MODEL%.tflite}.json"
[[ -f "$MODEL" ]] || die "model $MODEL not found. Convert one first: make tflite"
[[ -f "$CONTRACT" ]] || die "model contract $CONTRACT not found next to $MODEL (make tflite writes both)"
[[ "$MODEL" != ../* ]] || die "--model must be inside this checkout ($SRC)"
command -v rsync >/dev/null || die "rsync is not installed here (sudo apt install rsync)"

# The wheel travels as dist/<its name> (the only wheel there: --delete-after removes older ones).
LINKS="$(mktemp -d)"
trap 'rm -rf "$LINKS"' EXIT
mkdir "$LINKS/dist"
ln -s "$WHEEL" "$LINKS/dist/$(basename "$WHEEL")"
FILES=(scripts/install.sh scripts/uninstall.sh systemd config.yaml "$MODEL" "$CONTRACT")
[[ -d docs ]] && FILES+=(docs)

echo "== copying $(basename "$WHEEL") and the model to $TARGET:$STAGE"
# --relative keeps the paths (models/..., scripts/...); --delete-after removes files deleted here.
if ! rsync -az --relative --delete-after "${FILES[@]}" "$TARGET:$STAGE/" \
        || ! rsync -azL --delete-after "$LINKS/dist" "$TARGET:$STAGE/"; then
    die "rsync to $TARGET failed: check that 'ssh $TARGET' works and that rsync is installed on the Pi (sudo apt install rsync)"
fi

# The MQTT password travels on its own, readable by the Pi user only, and is deleted after the install.
if [[ -n "$MQTT_PASSWORD" ]]; then
    rsync -a --chmod=F600 "$MQTT_PASSWORD" "$TARGET:$STAGE/mqtt-password" \
        || die "copying the MQTT password to $TARGET failed"
    INSTALL_ARGS+=(--mqtt-password-file mqtt-password)
fi

echo "== installing on $TARGET (install.sh runs itself with sudo, which may ask for the password)"
# -t: a terminal for sudo's password prompt. printf %q: pass options through the remote shell intact.
REMOTE="cd $(printf '%q' "$STAGE") && ./scripts/install.sh --wheel $(printf '%q' "dist/$(basename "$WHEEL")") --model $(printf '%q' "$MODEL")"
for a in "${INSTALL_ARGS[@]+"${INSTALL_ARGS[@]}"}"; do REMOTE+=" $(printf '%q' "$a")"; done
[[ -z "$MQTT_PASSWORD" ]] || REMOTE+="; status=\$?; rm -f mqtt-password; exit \$status"
ssh -t "$TARGET" "$REMOTE"
