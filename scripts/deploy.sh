#!/usr/bin/env bash
# Deploy fer-edge to a Raspberry Pi (`make deploy PI=pi@raspberrypi.local`).
#
#   scripts/deploy.sh USER@HOST [install.sh options, e.g. --model models/other_int8.tflite]
#
# 1. rsync the edge code, config, unit, scripts and the model with its contract to
#    ~/fer-edge-deploy on the Pi (over ssh; only changed files travel);
# 2. ssh there and run scripts/install.sh (it re-runs itself with sudo) from that copy: venv, /opt/fer-edge, /etc/fer-edge,
#    unit, enable, restart, status (see scripts/install.sh).
# Needs ssh access (a key is easiest: ssh-copy-id USER@HOST) and rsync on both ends.
# Environment: FER_EDGE_STAGE=DIR changes the staging directory on the Pi (relative to its home).
set -euo pipefail

die() { echo "deploy.sh: error: $*" >&2; exit 2; }

[[ $# -ge 1 && "$1" != -* ]] || die "usage: scripts/deploy.sh USER@HOST [install.sh options]"
TARGET="$1"; shift
STAGE="${FER_EDGE_STAGE:-fer-edge-deploy}"
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$SRC"

# The model to ship: install.sh's --model when given (relative to this checkout), else the default.
MODEL=models/emotion_int8.tflite
INSTALL_ARGS=()
MQTT_PASSWORD=""
while [[ $# -gt 0 ]]; do
    if [[ "$1" == --model ]]; then
        MODEL="$(realpath --relative-to="$SRC" "${2:?--model needs a .tflite path}")"; shift 2
    elif [[ "$1" == --mqtt-password-file ]]; then
        MQTT_PASSWORD="$(realpath "${2:?--mqtt-password-file needs a file}")" || die "--mqtt-password-file $2 not found"
        shift 2
    else
        INSTALL_ARGS+=("$1"); shift
    fi
done
CONTRACT="${MODEL%.tflite}.json"
[[ -f "$MODEL" ]] || die "model $MODEL not found. Convert one first: make tflite"
[[ -f "$CONTRACT" ]] || die "model contract $CONTRACT not found next to $MODEL (make tflite writes both)"
[[ "$MODEL" != ../* ]] || die "--model must be inside this checkout ($SRC)"
command -v rsync >/dev/null || die "rsync is not installed here (sudo apt install rsync)"

FILES=(fer_edge/__init__.py fer_edge/common fer_edge/edge scripts systemd config.yaml requirements-edge.txt "$MODEL" "$CONTRACT")
[[ -d docs ]] && FILES+=(docs)

echo "== copying to $TARGET:$STAGE"
# --relative keeps the paths (models/..., fer_edge/edge/...); --delete-after removes files deleted here.
if ! rsync -az --relative --delete-after --exclude __pycache__ --exclude '*.pyc' \
        "${FILES[@]}" "$TARGET:$STAGE/"; then
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
REMOTE="cd $(printf '%q' "$STAGE") && ./scripts/install.sh --model $(printf '%q' "$MODEL")"
for a in "${INSTALL_ARGS[@]+"${INSTALL_ARGS[@]}"}"; do REMOTE+=" $(printf '%q' "$a")"; done
[[ -z "$MQTT_PASSWORD" ]] || REMOTE+="; status=\$?; rm -f mqtt-password; exit \$status"
ssh -t "$TARGET" "$REMOTE"
