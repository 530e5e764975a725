"""scripts/deploy.sh to a "Pi" reached through a stand-in for ssh: the wheel, the model and the unit travel
(no source tree), install.sh installs them there, uninstall.sh removes them; bad input is refused
before anything is copied."""
from __future__ import annotations

import os
import shutil

import pytest

from tests.test_install import ROOT, SCRIPTS, sh, skip_offline, wheel  # noqa: F401 (wheel: a fixture)


# ---- deploy: rsync + ssh to a "Pi", then uninstall --------------------------------------------------

FAKE_SSH = """#!/bin/bash
# Stands in for ssh to a Raspberry Pi (hardware we do not have): runs the remote command locally,
# in $FAKE_PI_HOME, the way sshd runs it through the user's shell. rsync uses it as its transport.
while [[ "$1" == -* ]]; do
    case "$1" in -l|-p|-i|-o|-e) shift 2 ;; *) shift ;; esac
done
echo "$1" >> "$FAKE_PI_HOME/.ssh-hosts"
shift
cd "$FAKE_PI_HOME" && exec bash -c "$*"
"""


@pytest.fixture
def fake_pi(tiny_tflite, wheel, tmp_path):
    """A throw-away checkout (scripts, unit, config, model, dist/ with the wheel) and a fake ssh."""
    src = tmp_path / "checkout"
    for name in ("fer_edge", "scripts", "systemd", "docs"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "config.yaml", src / "config.yaml")
    (src / "models").mkdir()
    shutil.copy(tiny_tflite, src / "models/emotion_int8.tflite")
    shutil.copy(tiny_tflite.with_suffix(".json"), src / "models/emotion_int8.json")
    (src / "dist").mkdir()
    shutil.copy(wheel, src / "dist" / wheel.name)
    bindir, home = tmp_path / "bin", tmp_path / "pi-home"
    bindir.mkdir(), home.mkdir()
    (bindir / "ssh").write_text(FAKE_SSH)
    (bindir / "ssh").chmod(0o755)
    return src, home, {"PATH": f"{bindir}:{os.environ['PATH']}", "FAKE_PI_HOME": str(home)}


def test_deploy_ships_the_wheel_and_installs_it_then_uninstall(fake_pi, tiny_tflite, wheel, tmp_path):
    """deploy.sh copies the wheel, the model and the unit with rsync (no source tree) and runs install.sh
    there (here: into a root, with systemctl --root enabling the unit offline); uninstall.sh keeps the
    log and the config unless --purge."""
    for tool, package in (("rsync", "rsync"), ("systemctl", "systemd")):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (Debian package '{package}'; tests/system_deps.py installs it)")
    src, home, env = fake_pi
    root = tmp_path / "pi-root"
    secret = tmp_path / "broker-password"
    secret.write_text("s3cret\n")
    r = sh(src / "scripts/deploy.sh", "pi@raspberrypi.local", "--root", root, "--mqtt-password-file", secret, env=env)
    skip_offline(r)
    assert r.returncode == 0, r.stdout + r.stderr
    stage = home / "fer-edge-deploy"
    assert sorted(p.name for p in (stage / "dist").iterdir()) == [wheel.name]
    assert (stage / "models/emotion_int8.json").is_file() and not (stage / "fer_edge").exists()
    assert (root / "opt/fer-edge/.venv/bin/fer-edge").is_file()
    # the MQTT password: root-only on the Pi, handed to the service as a credential, not left in the stage
    installed_secret = root / "etc/fer-edge/mqtt-password"
    assert installed_secret.read_text() == "s3cret\n" and installed_secret.stat().st_mode & 0o777 == 0o600
    dropin = (root / "etc/systemd/system/fer-edge.service.d/mqtt-password.conf").read_text()
    assert "LoadCredential=mqtt-password:/etc/fer-edge/mqtt-password" in dropin
    assert not (stage / "mqtt-password").exists()
    assert "pi@raspberrypi.local" in (home / ".ssh-hosts").read_text()
    assert (root / "opt/fer-edge/models/emotion_int8.tflite").read_bytes() == tiny_tflite.read_bytes()
    wants = root / "etc/systemd/system/multi-user.target.wants/fer-edge.service"
    assert wants.is_symlink(), r.stdout + r.stderr
    # and back out: systemctl --root disables it offline; the log and the config stay unless --purge
    state = root / "var/lib/fer-edge"
    state.mkdir(parents=True)
    (state / "emotions.csv").write_text("timestamp,emotion\n")
    r = sh(root / "opt/fer-edge/scripts/uninstall.sh", "--root", root)
    assert r.returncode == 0, r.stderr
    assert not wants.is_symlink() and not (root / "opt/fer-edge").exists()
    assert (state / "emotions.csv").is_file() and (root / "etc/fer-edge/config.yaml").is_file()
    r = sh(SCRIPTS / "uninstall.sh", "--root", root, "--no-systemctl", "--purge")
    assert r.returncode == 0, r.stderr
    assert not state.exists() and not (root / "etc/fer-edge").exists()


@pytest.mark.parametrize("bad", ["model", "wheel", "password"])
def test_deploy_refuses_bad_input_before_copying_anything(fake_pi, tmp_path, bad):
    src, home, env = fake_pi
    args = {"model": ["--model", src / "models/none_int8.tflite"], "wheel": ["--wheel", tmp_path / "nope.whl"],
            "password": ["--mqtt-password-file", "/nonexistent"]}[bad]
    r = sh(src / "scripts/deploy.sh", "pi@raspberrypi.local", *args, env=env)
    assert r.returncode == 2, r.stdout + r.stderr
    want = {"model": "none_int8.tflite not found", "wheel": "--wheel " + str(tmp_path / "nope.whl") + " not found",
            "password": "--mqtt-password-file /nonexistent not found"}[bad]
    assert want in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (home / ".ssh-hosts").exists() and not (home / "fer-edge-deploy").exists()   # nothing copied


def test_deploy_without_a_wheel_says_make_wheel(fake_pi):
    src, home, env = fake_pi
    shutil.rmtree(src / "dist")
    r = sh(src / "scripts/deploy.sh", "pi@raspberrypi.local", env=env)
    assert r.returncode == 2 and "make wheel" in r.stderr and not (home / ".ssh-hosts").exists(), r.stderr
