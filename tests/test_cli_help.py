"""Every command's --help opens with the whole first paragraph of what its module says it does."""
from __future__ import annotations

import importlib

import pytest

from fer_edge.common.helptext import summary

COMMANDS = ["fer_edge.tools.check", "fer_edge.tools.report.cli", "fer_edge.convert.__main__", "fer_edge.train.cli",
            "fer_edge.train.teachers", "fer_edge.train.evaluate", "fer_edge.train.finalize",
            "fer_edge.train.distill"]


def test_summary_is_the_first_paragraph_on_one_line():
    doc = "Do a thing: ``cmd ARG\n[--opt]`` (``make thing``).\n\nMore detail that --help leaves out.\n"
    assert summary(doc) == "Do a thing: `cmd ARG [--opt]` (`make thing`)."
    assert summary(None) == ""


@pytest.mark.parametrize("name", COMMANDS)
def test_help_shows_the_whole_summary(name, capsys):
    mod = importlib.import_module(name)
    with pytest.raises(SystemExit) as done:
        mod.main(["--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    doc = mod.main.__doc__ if name.endswith("finalize") else mod.__doc__
    want = summary(doc)
    assert want.endswith((".", ")")), want
    assert want in text


@pytest.mark.parametrize("name, script", [("fer_edge.tools.report.cli", "fer-report"), ("fer_edge.train.cli", "fer-train"),
                                          ("fer_edge.convert.__main__", "fer-convert")])
def test_usage_names_the_command_as_it_was_started(name, script, capsys, monkeypatch):
    mod = importlib.import_module(name)
    for argv0, want in ((f"/usr/local/bin/{script}", script), ("-m", "python -m ")):
        monkeypatch.setattr("sys.argv", [argv0])
        with pytest.raises(SystemExit):
            mod.main(["--help"])
        out = capsys.readouterr().out
        assert out.startswith(f"usage: {want}"), out[:120]
