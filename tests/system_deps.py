"""Install the Debian packages the tests and benchmarks use (Xvfb for the overlay window,
Chromium for the web page, Mosquitto for the MQTT tests), when they are missing and we may: as root or with passwordless sudo.

Never fails the build: a test whose tool is missing skips and says why.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

PI_CHECK = {"debootstrap": "debootstrap", "qemu-aarch64-static": "qemu-user-static", "update-binfmts": "binfmt-support",
            "systemd-nspawn": "systemd-container"}     # `make pi-check` (tests/system_deps.py --pi-check)
PACKAGES = {"Xvfb": "xvfb", "xauth": "xauth", "chromium": "chromium", "systemd-analyze": "systemd", "rsync": "rsync", "mosquitto": "mosquitto"}


def main() -> int:
    wanted = PI_CHECK if "--pi-check" in sys.argv[1:] else PACKAGES
    missing = sorted({pkg for tool, pkg in wanted.items() if shutil.which(tool) is None})
    if not missing or os.environ.get("FER_NO_APT"):
        return 0
    prefix = [] if os.geteuid() == 0 else (["sudo", "-n"] if shutil.which("sudo") else None)
    if prefix is None:
        print(f"note: {', '.join(missing)} missing and no root: the tests that need them will skip", file=sys.stderr)
        return 0
    print(f"installing Debian packages for the tests: {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]):
        r = subprocess.run(prefix + cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            print(f"note: {' '.join(cmd)} failed ({r.stderr.strip()[-300:]}); dependent tests will skip", file=sys.stderr)
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
