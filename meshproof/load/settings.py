"""Settings of a load run, with defaults that finish within ~5 minutes on 2 cores.

Defaults: single hop at 1000 rps (the rate Istio publishes its overhead at),
productpage at 200 rps (each page is three requests through six sidecar
hops and two fresh upstream connections from the app: 200 pages/s keep the
box below ~60% busy, so queueing on the CPU does not pass for mesh latency).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from meshproof.errors import ConfigError

#: scenario -> default rate (rps)
DEFAULT_RATES = {"single-hop": 1000.0, "productpage": 200.0}
MAX_LATENESS_P99_US = 200.0
MAX_RATE_SHORTFALL = 0.01
MAX_ERROR_FRACTION = 0.001


@dataclass(frozen=True)
class ScenarioSettings:
    name: str
    rate: float
    duration_s: float = 10.0
    rounds: int = 5


@dataclass(frozen=True)
class LoadSettings:
    scenarios: tuple[ScenarioSettings, ...] = field(default_factory=lambda: (
        ScenarioSettings("single-hop", DEFAULT_RATES["single-hop"], 10.0, 5),
        ScenarioSettings("productpage", DEFAULT_RATES["productpage"], 8.0, 3)))
    warmup_s: float = 2.0
    floor_s: float = 4.0
    connections: int = 16
    payload: int = 0
    timeout_s: float = 5.0
    spin_us: float = 150.0
    pin_cpu: int | None = None  # pin sidecars, apps and generators to this CPU
    #: Nice of the load lab's pod processes while measuring (root; 0 leaves them): a busy
    #: neighbour must not pass for mesh latency (runner.prioritize).
    nice: int = -10
    #: Pods at SCHED_FIFO 1 and the generator at 2 while measuring (root; runner.prioritize);
    #: False: the pods get ``nice`` and the generator SCHED_FIFO 1.
    realtime: bool = True

    def __post_init__(self) -> None:
        for s in self.scenarios:
            if s.name not in DEFAULT_RATES:
                raise ConfigError(f"unknown scenario {s.name!r}",
                                  f"scenarios: {', '.join(DEFAULT_RATES)}")
            if not (0 < s.rate <= 20_000 and 0.5 <= s.duration_s <= 300 and 1 <= s.rounds <= 50):
                raise ConfigError(f"{s.name}: rate 0..20000, duration 0.5..300 s, rounds 1..50")
        if not -20 <= self.nice <= 19:
            raise ConfigError(f"nice {self.nice} is out of range", "give -20..19")
        if not (1 <= self.connections <= 256 and 0 <= self.payload <= 1_000_000
                and 0 <= self.warmup_s <= 60 and 0 <= self.floor_s <= 60):
            raise ConfigError("connections 1..256, payload 0..1e6 bytes, warm-up and floor "
                              "0..60 s")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def estimate_s(self) -> float:
        """Wall time of the measuring (bring-up excluded)."""
        per = [s.rounds * (2 * (s.duration_s + self.warmup_s + 0.3)
                           + (self.floor_s + self.warmup_s + 0.3 if self.floor_s else 0))
               for s in self.scenarios]
        return sum(per)


def with_overrides(base: LoadSettings, *, scenarios: list[str] | None = None,
                   rate: float | None = None, duration_s: float | None = None,
                   rounds: int | None = None, **rest: Any) -> LoadSettings:
    """Apply command-line overrides; rate/duration/rounds apply to every chosen scenario."""
    chosen = [s for s in base.scenarios if not scenarios or s.name in scenarios]
    for name in scenarios or []:
        if name not in {s.name for s in chosen}:
            chosen.append(ScenarioSettings(name, DEFAULT_RATES.get(name, 0.0)))
    chosen = [replace(s, rate=rate or s.rate, duration_s=duration_s or s.duration_s,
                      rounds=rounds or s.rounds) for s in chosen]
    extra = {k: v for k, v in rest.items() if v is not None}
    return replace(base, scenarios=tuple(chosen), **extra)
