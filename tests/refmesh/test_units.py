"""Pure pieces: intents, state JSON, programmed(), Envoy binary staging."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from meshproof.errors import ConfigError
from meshproof.intent import MTLSMode, Policy, TrafficSplit, effective_mtls, intent_from_dict
from refmesh import envoy_binary
from refmesh.controlplane import pending, programmed, syncz
from refmesh.state import MeshState, registry_from_dict, registry_to_dict

from .registry_fixture import small_registry


def test_intents_round_trip_and_precedence() -> None:
    split = TrafficSplit("bookinfo/reviews", (("reviews-v1", 0), ("reviews-v2", 100)))
    assert intent_from_dict(split.to_dict()) == split
    modes = [MTLSMode("PERMISSIVE"), MTLSMode("STRICT", "bookinfo"),
             MTLSMode("PERMISSIVE", "bookinfo", "reviews-v1")]
    assert [intent_from_dict(m.to_dict()) for m in modes] == modes
    assert effective_mtls(modes, "bookinfo", "reviews-v1").value == "PERMISSIVE"
    assert effective_mtls(modes, "bookinfo", "details-v1").value == "STRICT"
    assert effective_mtls(modes, "team-a", "echo").value == "PERMISSIVE"
    pol = Policy().with_intent(modes[1]).with_intent(split).with_intent(MTLSMode("PERMISSIVE", "bookinfo"))
    assert [m.mode.value for m in pol.mtls] == ["PERMISSIVE"]  # same scope replaces
    assert Policy.from_dict(pol.to_dict()) == pol
    with pytest.raises(ConfigError):
        TrafficSplit("reviews", (("a", 1),))
    with pytest.raises(ConfigError):
        TrafficSplit("bookinfo/reviews", (("a", 0),))


def test_state_json_round_trip() -> None:
    reg = small_registry()
    assert registry_to_dict(registry_from_dict(registry_to_dict(reg))) == registry_to_dict(reg)
    s = MeshState().merged({"registry": registry_to_dict(reg),
                            "policy": {"mtls": [{"mode": "STRICT"}]},
                            "node_options": {"a/b": {"inbound_port": 1}}})
    s.version = 7
    back = MeshState.from_dict(s.to_dict())
    assert back.version == 7 and back.content() == s.content()
    assert back.options_for("a/b").inbound_port == 1 and back.options_for("x/y").inbound_port == 15006
    with pytest.raises(ConfigError):
        MeshState().merged({"registy": {}})


def _status(acked: int | None, nack: dict | None = None, connected: bool = True) -> dict:  # type: ignore[type-arg]
    t = {"subscribed": True, "expected": True, "sent": 3, "acked": acked, "nack": nack}
    return {"version": 3, "nodes": {"a/b": {"connected": connected, "known": True, "streams": 1,
                                            "types": {k: dict(t) for k in ("cds", "eds", "lds", "rds")}}}}


def test_programmed_needs_every_type_acked_and_no_nack() -> None:
    assert programmed(_status(3), 3, ["a/b"])
    assert programmed(_status(4), 3, ["a/b"])
    assert not programmed(_status(2), 3, ["a/b"])
    assert "not connected" in pending(_status(3, connected=False), 3, ["a/b"])["a/b"]
    assert "NACK" in pending(_status(2, {"version": 3, "message": "bad"}), 3, ["a/b"])["a/b"]
    assert "not connected" in pending(_status(3), 3, ["c/d"])["c/d"]


def test_syncz_says_synced_stale_nack_and_not_sent() -> None:
    st = _status(3)
    types = st["nodes"]["a/b"]["types"]
    for t in types.values():
        t.update(sent_nonce="9", acked_nonce="9")
    types["eds"].update(acked=2, acked_nonce="8")           # sent 3, ACKed only 2
    types["lds"].update(nack={"version": 3, "message": "bad listener"})
    types["rds"].update(sent=None, acked=None, sent_nonce="", acked_nonce="")
    rows = {r["type"]: r for r in syncz(st)}
    assert [rows[t]["state"] for t in ("cds", "eds", "lds", "rds")] == \
        ["SYNCED", "STALE", "NACK", "NOT SENT"]
    assert rows["lds"]["nack"] == "bad listener" and rows["eds"]["acked"] == 2


def test_staged_envoy_copies_out_of_a_private_dir(sockdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tmp_path = sockdir  # under /tmp: every parent o+x, unlike pytest's 0700 basetemp
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    os.chmod(private, 0o700)
    fake = private / "envoy"
    fake.write_text("#!/bin/sh\necho 'envoy  version: abc/1.40.0/Clean/RELEASE/BoringSSL'\n")
    fake.chmod(0o755)
    monkeypatch.setattr(envoy_binary, "find_envoy", lambda: fake)
    envoy_binary.envoy_version.cache_clear()
    stage = tmp_path / "stage"
    tmp_path.chmod(0o755)
    out = envoy_binary.staged_envoy(stage)
    assert out == stage / "envoy-1.40.0"
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    assert envoy_binary.staged_envoy(stage) == out  # second call reuses the copy
    envoy_binary.envoy_version.cache_clear()


def test_find_envoy_gives_the_wheel_binary() -> None:
    p = envoy_binary.find_envoy()
    assert p.name == "envoy" and os.access(p, os.X_OK)
    assert envoy_binary.envoy_version(str(p)).count(".") == 2
