"""What the documentation shows must work as shown: the Home Assistant automation of docs/fleet.md is in
HA's current syntax and names the entity that discovery creates."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

from fer_edge.edge.mqtt import Topics

ROOT = Path(__file__).resolve().parent.parent


def yaml_blocks(path: Path) -> list:
    return [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", path.read_text(), re.S)]


def test_fleet_automation_uses_current_home_assistant_syntax():
    automations = [a for b in yaml_blocks(ROOT / "docs/fleet.md") if isinstance(b, dict) and "automation" in b
                   for a in b["automation"]]
    assert automations, "docs/fleet.md has no automation example"
    entities = {cfg["default_entity_id"] for _, cfg in Topics("fer", "hall", "homeassistant").discovery()}
    for auto in automations:
        # HA 2024.10: plural section keys, `trigger:` names the trigger type, `action:` the action
        assert {"triggers", "actions"} <= auto.keys() and not {"trigger", "action"} & auto.keys(), auto
        for trig in auto["triggers"]:
            assert "trigger" in trig and "platform" not in trig, trig
            assert trig["entity_id"] in entities, (trig["entity_id"], entities)
        for act in auto["actions"]:
            assert "action" in act and "service" not in act, act


# ---- README figures come from BENCHMARKS.md's latest run ----------------------------------------------
# README marks what it quotes: `<!-- figures from BENCHMARKS.md: edge, web -->` before a paragraph or table
# (every number in it must be one of those sections' numbers, as rounded in the README), and
# `<!-- output from BENCHMARKS.md: edge -->` before a code block (the output that section recorded).
FIGURES = re.compile(r"<!-- (figures|output) from BENCHMARKS\.md: ([a-z_, ]+) -->\n+(.*?)(?:\n\n|\Z)", re.S)
NUMBER = re.compile(r"(?<![A-Za-z\d.])\d+(?:,\d{3})*(?:\.\d+)?")      # not the 256 of sha256


def bench_sections() -> dict[str, str]:
    from bench.__main__ import _sections
    return _sections((ROOT / "BENCHMARKS.md").read_text())


def numbers(text: str) -> list[str]:
    return [n.replace(",", "") for n in NUMBER.findall(text)]


def quoted(readme_number: str, measured: list[str]) -> bool:
    """The README's number is one of the measured ones, rounded to as many decimals as the README shows."""
    places = len(readme_number.partition(".")[2])
    return any(round(float(m), places) == float(readme_number) for m in measured)


def test_quoted_figures_checker_catches_a_stale_figure():
    measured = numbers("| 400x300 | 1337 | **174** (yes) | 13.2 | 14.9x | -1.9% |")
    assert all(quoted(n, measured) for n in ("174", "13", "15", "2", "1337", "400"))
    assert not quoted("202.9", measured) and not quoted("161", measured) and not quoted("13.3", measured)


def test_readme_figures_match_benchmarks():
    readme, sections = (ROOT / "README.md").read_text(), bench_sections()
    marks = FIGURES.findall(readme)
    assert {kind for kind, _, _ in marks} == {"figures", "output"}, marks
    for kind, names, text in marks:
        names = [n.strip() for n in names.split(",")]
        assert set(names) <= sections.keys(), names
        if kind == "figures":
            measured = [n for name in names for n in numbers(sections[name])]
            stale = [n for n in numbers(text) if not quoted(n, measured)]
            assert not stale, f"README quotes {stale}, not in BENCHMARKS.md's {names}: {text[:200]}"
            continue
        block = re.search(r"```\n(.*?)```", text, re.S).group(1)
        recorded = re.findall(r"```\n(.*?)```", sections[names[0]], re.S)
        if recorded:
            assert block == recorded[-1], "README's example output is not the one BENCHMARKS.md recorded"
        else:   # a section measured before it recorded its output: no time or rate may be typed by hand
            summary = block.splitlines()[0]
            assert "in T s (F frames/s)" in summary, summary
            assert summary.split()[1] in numbers(sections[names[0]]), summary


def test_readme_shows_the_csv_header_the_edge_writes():
    import json

    from fer_edge.edge.csvlog import header_for
    labels = tuple(json.loads((ROOT / "models/emotion_int8.json").read_text())["labels"])
    section = (ROOT / "README.md").read_text().split("### The CSV emotion log", 1)[1]
    block = section.split("```", 2)[1]
    assert block.strip().splitlines()[0] == ",".join(header_for(labels))
    described = {name.strip(" `") for line in section.splitlines() if line.startswith("| `")
                 for name in line.split("|")[1].split(",")}
    assert set(header_for(labels)[:11]) <= described, described
