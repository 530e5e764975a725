#!/usr/bin/env bash
# Install fer-edge as a systemd service on this machine (a Raspberry Pi or a laptop with a webcam).
#
#   sudo scripts/install.sh                 # what `make install-service` and `make deploy` run
#   scripts/install.sh --root /tmp/img --no-systemctl --venv-from .venv   # staged install (tests)
#
# From the checkout (or deploy copy) this script lives in, it installs:
#   /opt/fer-edge/{fer_edge,scripts,systemd,docs,requirements-edge.txt,config.yaml}  the code (fer_edge
#                               without train/ and convert/, which the edge never imports)
#   /opt/fer-edge/models/emotion_int8.{tflite,json}   the model with its contract (always together)
#   /opt/fer-edge/.venv         python3 -m venv --system-site-packages (apt's python3-picamera2)
#   /etc/fer-edge/config.yaml   only if absent; an edited one is kept, the new one lands beside it
#                               as config.yaml.new
#   /etc/systemd/system/fer-edge.service   then daemon-reload, enable, restart, status
# The CSV log is written by the service to /var/lib/fer-edge/emotions.csv (StateDirectory=).
#
# Exit codes: 0 installed (and running, unless --no-systemctl), 1 the service failed to start,
# 2 bad usage or input (missing model, invalid config).
set -euo pipefail

NAME=fer-edge
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT=""
SYSTEMCTL=1
VENV_FROM=""
SKIP_VENV=0
MQTT_PASSWORD=""
MODEL="$SRC/models/emotion_int8.tflite"
PYTHON="${PYTHON:-python3}"
ARGS=("$@")

usage() {
    cat <<EOF
usage: scripts/install.sh [--root DIR] [--no-systemctl] [--model PATH] [--venv-from PATH | --skip-venv] [--python PY]
                          [--mqtt-password-file FILE]

  --root DIR         install under DIR (DIR/opt, DIR/etc, ...) instead of /; implies no service start
  --no-systemctl     do not call systemctl (no daemon-reload/enable/start)
  --model PATH       the .tflite to install (its contract .json must sit next to it)
                     [default: models/emotion_int8.tflite of this checkout]
  --venv-from PATH   link an existing virtualenv as /opt/$NAME/.venv instead of creating one
                     (tests: saves the pip install; everything else runs as for real)
  --skip-venv        keep the existing /opt/$NAME/.venv as it is
  --python PY        interpreter that creates the venv [default: python3]
  --mqtt-password-file FILE
                     install FILE (the MQTT broker password, one line) as /etc/$NAME/mqtt-password, readable
                     by root only; the service gets it as a systemd credential, so config.yaml says
                     mqtt.password_file: /run/credentials/$NAME.service/mqtt-password
EOF
}

die() { echo "install.sh: error: $*" >&2; exit 2; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --root) ROOT="$(realpath -m "${2:?--root needs a directory}")"; shift 2 ;;
        --no-systemctl) SYSTEMCTL=0; shift ;;
        --model) MODEL="$(realpath -m "${2:?--model needs a .tflite path}")"; shift 2 ;;
        --venv-from) VENV_FROM="$(realpath -m "${2:?--venv-from needs a virtualenv path}")"; shift 2 ;;
        --skip-venv) SKIP_VENV=1; shift ;;
        --python) PYTHON="${2:?--python needs an interpreter}"; shift 2 ;;
        --mqtt-password-file) MQTT_PASSWORD="$(realpath -m "${2:?--mqtt-password-file needs a file}")"; shift 2 ;;
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
[[ "$MODEL" == *.tflite ]] || die "--model $MODEL is not a .tflite file"
[[ -f "$MODEL" ]] || die "model $MODEL not found. Convert one first (make tflite) or pass --model PATH."
[[ -z "$MQTT_PASSWORD" || -f "$MQTT_PASSWORD" ]] || die "--mqtt-password-file $MQTT_PASSWORD not found"
[[ -f "$CONTRACT" ]] || die "model contract $CONTRACT not found next to $MODEL: a model is installed only with its contract (make tflite writes both)."
[[ -f "$SRC/systemd/$NAME.service" ]] || die "$SRC/systemd/$NAME.service missing: run this script from a fer-edge checkout"
if [[ -n "$VENV_FROM" && ! -x "$VENV_FROM/bin/python" ]]; then
    die "--venv-from $VENV_FROM has no bin/python"
fi

# An edited config from an earlier install must suit this version's schema: check it with the
# existing venv before anything is replaced (a first install validates the new config further down).
validate_config() {   # validate_config PYTHON CODE_DIR CONFIG
    PYTHONPATH="$2" "$1" -c '
import sys
from fer_edge.common.config import ConfigError, load_config
try:
    load_config(sys.argv[1])
except ConfigError as exc:
    sys.exit(f"install.sh: error: {exc}")
' "$3" || exit 2
}
if [[ -f "$ETC/config.yaml" && -x "$VENV/bin/python" ]]; then
    validate_config "$VENV/bin/python" "$SRC" "$ETC/config.yaml"
fi

# Writing /opt and /etc needs root; a staged install (--root) does not.
if [[ -z "$ROOT" && $EUID -ne 0 ]]; then
    if command -v sudo >/dev/null; then
        echo "install.sh: root is needed to write /opt, /etc and the unit; re-running with sudo"
        exec sudo PYTHON="$PYTHON" "$0" "${ARGS[@]}"
    fi
    die "run as root (sudo scripts/install.sh)"
fi
[[ -n "$ROOT" ]] && SYSTEMCTL_ROOT=1 || SYSTEMCTL_ROOT=0

# --- code: each directory is replaced whole, so files deleted upstream do not linger
copy_dir() {   # copy_dir NAME [TAR-EXCLUDES...]: $SRC/NAME -> $PREFIX/NAME
    local src="$SRC/$1" dst="$PREFIX/$1"
    shift
    [[ -d "$src" ]] || return 0
    rm -rf "$dst.new"
    mkdir -p "$dst.new"
    (cd "$src" && tar --exclude=__pycache__ --exclude='*.pyc' "$@" -cf - .) | tar -xf - -C "$dst.new"
    chmod -R u=rwX,go=rX "$dst.new"
    rm -rf "$dst"
    mv "$dst.new" "$dst"
}
echo "== installing code to $PREFIX"
mkdir -p "$PREFIX/models"
copy_dir fer_edge --exclude=./train --exclude=./convert
for d in scripts systemd docs; do copy_dir "$d"; done
install -m 0644 "$SRC/requirements-edge.txt" "$SRC/config.yaml" "$PREFIX/"

# The model and its contract travel together: both are staged in models/.staged/, checked there (the
# contract, its sha256 and a real load with the runtime, once the venv exists below) and only then
# renamed into place. A bad pair is refused and the installed pair keeps working.
STAGE="$PREFIX/models/.staged"
rm -rf "$STAGE"
mkdir -p "$STAGE"
install -m 0644 "$MODEL" "$STAGE/emotion_int8.tflite"
install -m 0644 "$CONTRACT" "$STAGE/emotion_int8.json"

# --- virtualenv with the edge dependencies. --system-site-packages: picamera2/libcamera come from
# apt (python3-picamera2) and are never pip-installed. The service is headless, so it gets
# opencv-python-headless: same cv2, without the Qt/OpenGL libraries a Pi OS Lite does not have.
if [[ -n "$VENV_FROM" ]]; then
    echo "== linking the existing virtualenv $VENV_FROM as $VENV"
    rm -rf "$VENV"
    ln -s "$VENV_FROM" "$VENV"
elif [[ $SKIP_VENV -eq 1 ]]; then
    [[ -x "$VENV/bin/python" ]] || die "--skip-venv, but $VENV/bin/python does not exist"
    echo "== keeping the virtualenv $VENV"
else
    if [[ ! -x "$VENV/bin/python" ]]; then
        echo "== creating the virtualenv $VENV"
        "$PYTHON" -m venv --system-site-packages "$VENV" \
            || die "cannot create a venv with $PYTHON: install python3-venv (sudo apt install python3-venv)"
    fi
    REQ="$VENV/fer-edge-requirements.txt"
    sed -E 's/^opencv-python([<>=!~ ;[]|$)/opencv-python-headless\1/' "$PREFIX/requirements-edge.txt" > "$REQ.new"
    if ! cmp -s "$REQ.new" "$REQ"; then
        echo "== installing the edge dependencies into $VENV (a few minutes on a Pi)"
        "$VENV/bin/python" -m pip install -q --upgrade pip
        "$VENV/bin/python" -m pip install -q -r "$REQ.new"
        mv -f "$REQ.new" "$REQ"
    else
        rm -f "$REQ.new"
        echo "== edge dependencies already installed in $VENV"
    fi
    # apt's picamera2 imports apt's simplejpeg, built for Bookworm's numpy 1.24; the venv's numpy 2
    # (required by current OpenCV wheels) makes that import fail ("numpy.dtype size changed").
    # A simplejpeg from PyPI in the venv, built for numpy 2, shadows it.
    if "$VENV/bin/python" -c 'import importlib.util as u, sys; sys.exit(u.find_spec("picamera2") is None)' \
            && ! "$VENV/bin/python" -c 'import picamera2' 2>/dev/null; then
        echo "== picamera2 does not import with the venv's numpy: installing simplejpeg into $VENV"
        "$VENV/bin/python" -m pip install -q "simplejpeg>=1.8"
        "$VENV/bin/python" -c 'import picamera2' \
            || echo "install.sh: warning: picamera2 still does not import in $VENV (see above); the Pi camera module will not work, USB webcams will" >&2
    fi
fi
PY="$VENV/bin/python"

# Byte-compile now: under ProtectSystem=strict the service cannot write __pycache__ itself.
"$PY" -m compileall -q "$PREFIX/fer_edge" >/dev/null

# The staged model must load with its contract (checksum included) and run before it replaces anything.
echo "== checking model $MODEL (+ $(basename "$CONTRACT"))"
if ! PYTHONPATH="$PREFIX" "$PY" -m fer_edge.edge.check "$STAGE/emotion_int8.tflite"; then
    rm -rf "$STAGE"
    echo "install.sh: the installed model was left as it was" >&2
    exit 2
fi
mv -f "$STAGE/emotion_int8.tflite" "$PREFIX/models/emotion_int8.tflite.tmp"
mv -f "$STAGE/emotion_int8.json" "$PREFIX/models/emotion_int8.json.tmp"
mv -f "$PREFIX/models/emotion_int8.tflite.tmp" "$PREFIX/models/emotion_int8.tflite"
mv -f "$PREFIX/models/emotion_int8.json.tmp" "$PREFIX/models/emotion_int8.json"
rmdir "$STAGE"
echo "== installed model $PREFIX/models/emotion_int8.tflite"

# --- config: never overwrite an edited one
mkdir -p "$ETC"
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
# Validate the config the service will read against this version's schema (exit 2 names the key).
validate_config "$PY" "$PREFIX" "$ETC/config.yaml"

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
if [[ $SYSTEMCTL_ROOT -eq 1 ]]; then
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
