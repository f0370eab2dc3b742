"""The ledger's undo, without a lab: what a killed runner left is undone even when the
lab still looks healthy at that moment (the race the SIGKILL tests found)."""

from __future__ import annotations

from typing import Any

import pytest

from meshproof.chaos import faults, ledger


class StoppingTarget:
    """A target whose control plane is still terminating: ``components()`` says it is up
    (the killed runner's stop is in progress inside the lab) until someone starts it,
    and it goes down once the stop completes. A FAKE, for this race only."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.up = True
        self.calls = 0

    def components(self) -> dict[str, bool]:
        self.calls += 1
        if self.calls == 2 and not self.started:
            self.up = False  # the stop lands after the first look
        return {"controlplane": self.up}

    def start_component(self, name: str) -> None:
        self.started.append(name)
        self.up = True


class Converges:
    def apply_all(self, intents: list[Any]) -> str:
        return "token"

    def wait_programmed(self, token: str, timeout: float) -> float:
        return 0.0


@pytest.fixture
def fake_lab(monkeypatch, tmp_path):
    monkeypatch.setattr(ledger, "LEDGER_DIR", tmp_path)
    monkeypatch.setattr(ledger, "LEDGER", tmp_path / "ledger.json")
    t = StoppingTarget()
    monkeypatch.setattr(faults, "target", lambda: t)
    monkeypatch.setattr(faults, "adapter", lambda: Converges())
    from meshproof.targets.local.client import LocalTarget

    monkeypatch.setattr(LocalTarget, "running", classmethod(lambda cls: True))
    monkeypatch.setattr(faults.time, "sleep", lambda s: None)
    return t


def test_a_stop_still_in_progress_is_undone(fake_lab) -> None:
    ledger.record("component", name="controlplane")
    done = ledger.undo_all()
    assert fake_lab.started == ["controlplane"], "started although it looked up"
    assert fake_lab.up and done and ledger.entries() == []


def test_undo_starts_again_when_the_stop_lands_after_the_start(fake_lab) -> None:
    orig = fake_lab.start_component
    first = []

    def start(name: str) -> None:
        orig(name)
        if not first:
            first.append(name)
            fake_lab.up = False  # the in-flight stop kills what was just started

    fake_lab.start_component = start  # type: ignore[method-assign]
    ledger.record("component", name="controlplane")
    ledger.undo_all()
    assert fake_lab.started == ["controlplane", "controlplane"] and fake_lab.up
