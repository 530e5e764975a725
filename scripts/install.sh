#!/usr/bin/env bash
# Install fer-edge as a systemd service on this machine (a Raspberry Pi or a laptop with a webcam).
#
#   sudo scripts/install.sh                 # what `make install-service` and `make deploy` run
#   scripts/install.sh --root /tmp/img --no-systemctl     # staged install (tests, images)
#
# It installs what pip installs: the wheel (dist/fer_edge-*.whl, `make wheel`) with its edge
# dependencies, in a virtualenv of its own; the service runs the wheel's `fer-edge` console script.
#   /opt/fer-edge/venvs/<version>-<sha>/  python3 -m venv --system-site-packages (apt's python3-picamera2),
#                               the wheel's `edge` extra (with opencv-python-headless) and the wheel
#   /opt/fer-edge/.venv         a symlink to the venv in use, switched by one rename only after the new
#                               venv, the model and the config passed their checks: a failed install
#                               leaves the running version as it was. The previous venv is kept.
#   /opt/fer-edge/models/emotion_int8.{tflite,json}   the model with its contract (always together)
#   /opt/fer-edge/{scripts,systemd,docs}   uninstall.sh, the unit and the guides, for reference
#   /etc/fer-edge/config.yaml   only if absent; an edited one is kept, the new one lands beside it
#                               as config.yaml.new. Keys of an older version that moved are moved
#                               in it (comments kept; the file before: config.yaml.bak)
#   /etc/systemd/system/fer-edge.service   then daemon-reload, enable, restart, status
# The CSV log is written by the service to /var/lib/fer-edge/emotions.csv (StateDirectory=).
#
# Exit codes: 0 installed (and running, unless --no-systemctl), 1 the service failed to start,
# 2 bad usage or input (missing wheel or model, invalid config or model), 3 pip could not install.
set -euo pipefail

NAME=fer-edge
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT=""
SYSTEMCTL=1
MQTT_PASSWORD=""
WHEEL=""
MODEL="$SRC/models/emotion_int8.tflite"
PYTHON="${PYTHON:-python3}"
ARGS=("$@")

usage() {
    cat <<EOF
usage: scripts/install.sh [--wheel FILE] [--model PATH] [--root DIR] [--no-systemctl] [--python PY]
                          [--mqtt-password-file FILE]

  --wheel FILE       the fer-edge wheel to install [default: the fer_edge-*.whl in dist/ of this checkout,
                     built by 'make wheel' (make install-service and make deploy build it)]
  --model PATH       the .tflite to install (its contract .json must sit next to it)
                     [default: models/emotion_int8.tflite of this checkout]
  --root DIR         install under DIR (DIR/opt, DIR/etc, ...) instead of /; implies no service start
  --no-systemctl     do not call systemctl (no daemon-reload/enable/start)
  --python PY        interpreter that creates the venv [default: python3]
  --mqtt-password-file FILE
                     install FILE (the MQTT broker password, one line) as /etc/$NAME/mqtt-password, readable
                     by root only; the service gets it as a systemd credential, so config.yaml says
                     mqtt.password_file: /run/credentials/$NAME.service/mqtt-password
pip's own settings apply (PIP_INDEX_URL, PIP_FIND_LINKS, pip.conf).
EOF
}

die() { echo "install.sh: error: $*" >&2; exit 2; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --root) ROOT="$(realpath -m "${2:?--root needs a directory}")"; shift 2 ;;
        --no-systemctl) SYSTEMCTL=0; shift ;;
        --wheel) WHEEL="$(realpath -m "${2:?--wheel needs a .whl file}")"; shift 2 ;;
        --model) MODEL="$(realpath -m "${2:?--model needs a .tflite path}")"; shift 2 ;;
        --python) PYTHON="${2:?--python needs an interpreter}"; shift 2 ;;
        --mqtt-password-file)
            MQTT_PASSWORD="$(realpath -e "${2:?--mqtt-password-file needs a file}" 2>/dev/null)" \
                || die "--mqtt-password-file $2 not found"
            shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option '$1'" ;;
    esac
done

PREFIX="$ROOT/opt/$NAME"
ETC="$ROOT/etc/$NAME"
UNIT_DIR="$ROOT/etc/systemd/system"
VENV="$PREFIX/.venv"
CONTRACT="${MODEL%.tflite}.json"

# --- check the inputs before touching anything
if [[ -z "$WHEEL" ]]; then
    shopt -s nullglob
    wheels=("$SRC"/dist/fer_edge-*.whl)
    shopt -u nullglob
    [[ ${#wheels[@]} -gt 0 ]] || die "no wheel in $SRC/dist: build it with 'make wheel' (make install-service does), or pass --wheel FILE"
    [[ ${#wheels[@]} -eq 1 ]] || die "${#wheels[@]} wheels in $SRC/dist: pass the one to install with --wheel FILE"
    WHEEL="${wheels[0]}"
fi
[[ "$(basename "$WHEEL")" == fer_edge-*.whl ]] || die "--wheel $WHEEL is not a fer_edge-*.whl file"
[[ -f "$WHEEL" ]] || die "wheel $WHEEL not found: build it with 'make wheel'"
[[ "$MODEL" == *.tflite ]] || die "--model $MODEL is not a .tflite file"
[[ -f "$MODEL" ]] || die "model $MODEL not found. Convert one first (make tflite) or pass --model PATH."
[[ -f "$CONTRACT" ]] || die "model contract $CONTRACT not found next to $MODEL: a model is installed only with its contract (make tflite writes both)."
for f in "systemd/$NAME.service" config.yaml; do
    [[ -f "$SRC/$f" ]] || die "$SRC/$f missing: run this script from a fer-edge checkout or deploy copy"
done

# Writing /opt and /etc needs root; a staged install (--root) does not.
if [[ -z "$ROOT" && $EUID -ne 0 ]]; then
    if command -v sudo >/dev/null; then
        echo "install.sh: root is needed to write /opt, /etc and the unit; re-running with sudo"
        exec sudo PYTHON="$PYTHON" "$0" "${ARGS[@]}"
    fi
    die "run as root (sudo scripts/install.sh)"
fi

# --- the venv of this wheel: built beside the one in use, which keeps running meanwhile
WHEEL_NAME="$(basename "$WHEEL")"
VERSION="$(cut -d- -f2 <<<"$WHEEL_NAME")"
ID="$VERSION-$(sha256sum "$WHEEL" | cut -c1-12)"
NEW="$PREFIX/venvs/$ID"
mkdir -p "$PREFIX/venvs"
if [[ -f "$NEW/.complete" ]]; then
    echo "== $WHEEL_NAME is installed already in $NEW"
else
    rm -rf "$NEW"
    echo "== installing $WHEEL_NAME with its edge dependencies into $NEW (a few minutes on a Pi)"
    fail() { rm -rf "$NEW"; echo "install.sh: error: $1; the installed version was left as it was" >&2; exit 3; }
    "$PYTHON" -m venv --system-site-packages "$NEW" \
        || { rm -rf "$NEW"; die "cannot create a venv with $PYTHON: install python3-venv (sudo apt install python3-venv)"; }
    # The service is headless: opencv-python-headless gives the same cv2 without the Qt/OpenGL
    # libraries a Pi OS Lite lacks, so the edge extra is read from the wheel with that one swap.
    "$NEW/bin/python" - "$WHEEL" > "$NEW/edge-requirements.txt" 2>/dev/null <<'PY' || fail "$WHEEL_NAME is not a readable wheel"
import re, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
    lines = z.read(meta).decode().splitlines()
for line in lines:
    m = re.match(r'Requires-Dist: (.+?)\s*;\s*extra\s*==\s*"edge"\s*$', line)
    if m:
        print(re.sub(r"^opencv-python(?=[<>=!~ \[]|$)", "opencv-python-headless", m.group(1)))
PY
    "$NEW/bin/python" -m pip install -q --disable-pip-version-check -r "$NEW/edge-requirements.txt" \
        || fail "pip could not install the edge dependencies of $WHEEL_NAME (see above)"
    "$NEW/bin/python" -m pip install -q --disable-pip-version-check --no-deps "$WHEEL" \
        || fail "pip could not install $WHEEL_NAME (see above)"
    # apt's picamera2 imports apt's simplejpeg, built for Bookworm's numpy 1.24; the venv's numpy 2
    # (required by current OpenCV wheels) makes that import fail ("numpy.dtype size changed").
    # A simplejpeg from PyPI in the venv, built for numpy 2, shadows it.
    if "$NEW/bin/python" -c 'import importlib.util as u, sys; sys.exit(u.find_spec("picamera2") is None)' \
            && ! "$NEW/bin/python" -c 'import picamera2' 2>/dev/null; then
        echo "== picamera2 does not import with the venv's numpy: installing simplejpeg into $NEW"
        "$NEW/bin/python" -m pip install -q "simplejpeg>=1.8"
        "$NEW/bin/python" -c 'import picamera2' \
            || echo "install.sh: warning: picamera2 still does not import in $NEW (see above); the Pi camera module will not work, USB webcams will" >&2
    fi
    touch "$NEW/.complete"
fi

# --- checks with the new venv, before anything in use is replaced
# The config the service will read must suit this version's schema (exit 2 names the key).
validate_config() {   # validate_config CONFIG
    "$NEW/bin/python" -I -c '     # -I: the installed fer_edge, never one in the current folder
import sys
from fer_edge.common.config import ConfigError, load_config
try:
    load_config(sys.argv[1])
except ConfigError as exc:
    sys.exit(f"install.sh: error: {exc}")
' "$1" || { rm -f "$ETC/config.yaml.migrated"; echo "install.sh: the installed version was left as it was" >&2; exit 2; }
}
validate_config "$SRC/config.yaml"
# An edited config of an older version may hold keys that moved since (MOVED in fer_edge/common/config):
# they are moved in a copy, config.yaml.migrated, which is checked here and replaces config.yaml at the
# switch below.
rm -f "$ETC/config.yaml.migrated"
if [[ -f "$ETC/config.yaml" ]]; then
    if ! moved="$("$NEW/bin/python" -I -m fer_edge.common.config --migrate "$ETC/config.yaml" \
            --output "$ETC/config.yaml.migrated" 2>&1)"; then
        rm -f "$ETC/config.yaml.migrated"
        echo "install.sh: $moved" >&2
        echo "install.sh: the installed version was left as it was" >&2
        exit 2
    fi
    if [[ -f "$ETC/config.yaml.migrated" ]]; then
        echo "== $moved"
        validate_config "$ETC/config.yaml.migrated"
    else
        validate_config "$ETC/config.yaml"
    fi
fi

# The model and its contract travel together: both are staged in models/.staged/, checked there with
# the new venv (the contract, its sha256 and a real load with the runtime) and only then renamed into
# place. A bad pair is refused and the installed pair keeps working.
mkdir -p "$PREFIX/models"
STAGE="$PREFIX/models/.staged"
rm -rf "$STAGE"
mkdir -p "$STAGE"
install -m 0644 "$MODEL" "$STAGE/emotion_int8.tflite"
install -m 0644 "$CONTRACT" "$STAGE/emotion_int8.json"
echo "== checking model $MODEL (+ $(basename "$CONTRACT"))"
if ! (cd "$PREFIX" && "$NEW/bin/fer-check" "$STAGE/emotion_int8.tflite"); then
    rm -rf "$STAGE"
    echo "install.sh: the installed model and version were left as they were" >&2
    exit 2
fi

# --- switch: the venv by one rename of a symlink, then the model pair
if [[ -d "$VENV" && ! -L "$VENV" ]]; then       # an install of 0.9.0 or older: code in /opt/fer-edge/fer_edge
    rm -rf "$PREFIX/.venv.old"
    mv "$VENV" "$PREFIX/.venv.old"
fi
PREVIOUS="$(readlink "$VENV" 2>/dev/null || true)"
ln -sfn "venvs/$ID" "$PREFIX/.venv.tmp"
mv -Tf "$PREFIX/.venv.tmp" "$VENV"
echo "== $VENV -> venvs/$ID"
mv -f "$STAGE/emotion_int8.tflite" "$PREFIX/models/emotion_int8.tflite.tmp"
mv -f "$STAGE/emotion_int8.json" "$PREFIX/models/emotion_int8.json.tmp"
mv -f "$PREFIX/models/emotion_int8.tflite.tmp" "$PREFIX/models/emotion_int8.tflite"
mv -f "$PREFIX/models/emotion_int8.json.tmp" "$PREFIX/models/emotion_int8.json"
rmdir "$STAGE"
echo "== installed model $PREFIX/models/emotion_int8.tflite"
# Keep the venv in use and the previous one (a rollback: ln -sfn venvs/<previous> .venv); older ones go,
# and so does the source-tree layout of 0.9.0 and older.
for v in "$PREFIX"/venvs/*; do
    [[ "venvs/$(basename "$v")" == "venvs/$ID" || "venvs/$(basename "$v")" == "$PREVIOUS" ]] || rm -rf "$v"
done
rm -rf "$PREFIX/.venv.old" "$PREFIX/fer_edge" "$PREFIX/requirements-edge.txt" "$PREFIX/requirements-nodeps.txt" \
    "$PREFIX/config.yaml"

# --- the unit, uninstall.sh and the guides, for reference on the machine
copy_dir() {   # copy_dir NAME: $SRC/NAME -> $PREFIX/NAME, replaced whole
    [[ -d "$SRC/$1" ]] || return 0
    rm -rf "$PREFIX/$1.new"
    cp -r "$SRC/$1" "$PREFIX/$1.new"
    chmod -R u=rwX,go=rX "$PREFIX/$1.new"
    rm -rf "${PREFIX:?}/$1"
    mv "$PREFIX/$1.new" "$PREFIX/$1"
}
for d in scripts systemd docs; do copy_dir "$d"; done

# --- config: never overwrite an edited one
mkdir -p "$ETC"
if [[ -f "$ETC/config.yaml.migrated" ]]; then
    cp -p "$ETC/config.yaml" "$ETC/config.yaml.bak"
    mv -f "$ETC/config.yaml.migrated" "$ETC/config.yaml"
    echo "== moved the keys that moved in $ETC/config.yaml (the file before: $ETC/config.yaml.bak)"
fi
if [[ ! -f "$ETC/config.yaml" ]]; then
    install -m 0644 "$SRC/config.yaml" "$ETC/config.yaml"
    echo "== installed $ETC/config.yaml"
elif cmp -s "$SRC/config.yaml" "$ETC/config.yaml"; then
    rm -f "$ETC/config.yaml.new"
    echo "== $ETC/config.yaml is up to date"
else
    install -m 0644 "$SRC/config.yaml" "$ETC/config.yaml.new"
    echo "== kept your edited $ETC/config.yaml; the new default is $ETC/config.yaml.new"
    echo "   (compare: diff $ETC/config.yaml $ETC/config.yaml.new)"
fi

# --- the unit
# The unit's SupplementaryGroups= (the camera's devices): systemd refuses to start a unit whose group
# does not exist (status 216/GROUP). Raspberry Pi OS has both; a minimal Debian may lack `render`.
if [[ -z "$ROOT" ]]; then
    for g in $(sed -n 's/^SupplementaryGroups=//p' "$SRC/systemd/$NAME.service"); do
        getent group "$g" >/dev/null || { groupadd --system "$g" && echo "== created the system group $g (for the camera devices)"; }
    done
fi
mkdir -p "$UNIT_DIR"
install -m 0644 "$SRC/systemd/$NAME.service" "$UNIT_DIR/$NAME.service"
echo "== installed $UNIT_DIR/$NAME.service"
# The MQTT password reaches the service (a dynamic user) as a credential: root-only on disk,
# /run/credentials/$NAME.service/mqtt-password inside the service. Kept across reinstalls.
if [[ -n "$MQTT_PASSWORD" ]]; then
    install -m 0600 "$MQTT_PASSWORD" "$ETC/mqtt-password"
    echo "== installed the MQTT password as $ETC/mqtt-password"
fi
if [[ -f "$ETC/mqtt-password" ]]; then
    mkdir -p "$UNIT_DIR/$NAME.service.d"
    printf '[Service]\nLoadCredential=mqtt-password:/etc/%s/mqtt-password\n' "$NAME" > "$UNIT_DIR/$NAME.service.d/mqtt-password.conf"
fi

if [[ $SYSTEMCTL -eq 0 ]]; then
    echo "== done (no systemctl: the service was not enabled or started)"
    exit 0
fi
if [[ -n "$ROOT" ]]; then
    # Offline: only the enable symlink can be made in an image.
    systemctl --root="$ROOT" enable "$NAME.service"
    echo "== enabled $NAME.service in $ROOT (not started: --root)"
    exit 0
fi
[[ -d /run/systemd/system ]] || die "systemd is not running on this machine: the files are installed, but the service cannot be started (use --no-systemctl)"
systemctl daemon-reload
systemctl reset-failed "$NAME.service" 2>/dev/null || true    # clear a failed state left by an earlier version
systemctl enable "$NAME.service"
echo "== (re)starting $NAME.service: waits until the model and the camera are open (READY=1)"
if ! systemctl restart "$NAME.service"; then
    systemctl --no-pager --lines=0 status "$NAME.service" || true
    journalctl --no-pager -u "$NAME.service" -n 30 || true
    echo "install.sh: $NAME.service failed to start; see above and: journalctl -u $NAME -e" >&2
    exit 1
fi
systemctl --no-pager --lines=10 status "$NAME.service" || true
echo "== running. Follow it with: journalctl -u $NAME -f   (CSV: /var/lib/$NAME/emotions.csv)"
