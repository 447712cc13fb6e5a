"""The alert rules (deploy/prometheus/alerts.yml) are valid and pass their unit
tests (alerts.test.yml) under Debian's ``promtool`` (``make system-deps``), and
every rule has a test in which it fires and one in which it stays quiet."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yml"
COMPOSE = ROOT / "deploy" / "compose"
#: What issue 12 asks the rules to cover, at least.
REQUIRED = {
    "BeeldbelQueueWaitTooLong",
    "BeeldbelNoStaffOnline",
    "BeeldbelMediaNodeDown",
    "BeeldbelMediaNodeDrainingTooLong",
    "BeeldbelSfuLossHigh",
    "BeeldbelSfuRttHigh",
    "BeeldbelControlPlane5xx",
    "BeeldbelPurgeNotRun",
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.fail("promtool is missing: make system-deps installs prometheus")
    return subprocess.run(  # noqa: S603
        [tool, *args], capture_output=True, text=True, timeout=60, check=False
    )


def alert_names() -> set[str]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return {rule["alert"] for group in groups for rule in group["rules"]}


def test_the_rules_are_valid() -> None:
    done = promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert alert_names() >= REQUIRED


def test_the_rule_tests_pass() -> None:
    done = promtool("test", "rules", str(RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_each_rule_is_tested_firing_and_quiet() -> None:
    tests: list[dict[str, Any]] = yaml.safe_load(
        RULE_TESTS.read_text(encoding="utf-8")
    )["tests"]
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in tests:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert fires >= alert_names(), alert_names() - fires
    assert quiet >= alert_names(), alert_names() - quiet


def _mounted(service: dict[str, Any], target: str) -> Path:
    """The file of the compose stack that ``service`` sees at ``target``."""
    volume: str
    for volume in service["volumes"]:
        source, _, rest = volume.partition(":")
        if rest.split(":")[0] == target:
            return (COMPOSE / source).resolve()
    raise AssertionError(f"nothing mounted at {target}")


def test_the_compose_prometheus_loads_these_rules() -> None:
    compose = yaml.safe_load((COMPOSE / "compose.yaml").read_text(encoding="utf-8"))
    service = compose["services"]["prometheus"]
    config = yaml.safe_load(
        _mounted(service, "/etc/prometheus/prometheus.yml").read_text("utf-8")
    )
    (rule_file,) = config["rule_files"]
    assert _mounted(service, rule_file) == RULES
