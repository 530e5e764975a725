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
