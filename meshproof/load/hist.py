"""HDR histograms in microseconds: the one latency representation of the load tests.

Why HDR: Locust's own stats bucket response times to 1 ms below 100 ms,
coarser than the whole overhead being measured. An HDR histogram with 3
significant digits over 1 us .. 60 s keeps every value below 2.048 ms exact
to the microsecond (and within 0.1% above), merges across rounds, and
encodes compactly into the JSON report for re-analysis.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from hdrh.histogram import HdrHistogram

LOWEST_US, HIGHEST_US, DIGITS = 1, 60_000_000, 3
#: percentiles every report carries: name -> percentile (max is 100)
PERCENTILES: dict[str, float] = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p99.9": 99.9,
                                 "max": 100.0}
#: the ones a release gate may judge; p99.9 and max are dominated by VM stalls
GATED = ("p50", "p90", "p99")


def new() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)


def record_us(h: HdrHistogram, us: float) -> None:
    h.record_value(int(min(max(round(us), LOWEST_US), HIGHEST_US)))


def decode(text: str) -> HdrHistogram:
    """The generator's encoded histogram (empty string: no samples)."""
    return HdrHistogram.decode(text.encode()) if text else new()


def from_counts(counts: Mapping[str, int]) -> HdrHistogram:
    """The histogram of a stdlib generator's answer (``loadtests/podgen.py``): counts per
    HDR bucket's lowest value in us, so this is the histogram of the raw values."""
    h = new()
    for value, n in counts.items():
        h.record_value(int(min(max(int(value), LOWEST_US), HIGHEST_US)), int(n))
    return h


def encode(h: HdrHistogram) -> str:
    return h.encode().decode() if h.total_count else ""


#: the histograms every generator answer carries (``<name>_hdr``, or ``<name>_counts``)
ANSWER_HISTS = ("latency", "lateness", "dispatch")


def with_hdr(answer: dict[str, Any]) -> dict[str, Any]:
    """A generator's answer with its histograms HDR-encoded (``<name>_hdr``), whichever
    encoding the generator used: the one form the runner and the report read."""
    out = dict(answer)
    for name in ANSWER_HISTS:
        counts = out.pop(f"{name}_counts", None)
        if counts is not None:
            out[f"{name}_hdr"] = encode(from_counts(counts))
    out.pop("encoding", None)
    return out


def merge(hists: Iterable[HdrHistogram]) -> HdrHistogram:
    out = new()
    for h in hists:
        if h.total_count:
            out.add(h)
    return out


def percentiles(h: HdrHistogram) -> dict[str, float]:
    """The report's percentiles in microseconds (0 for an empty histogram)."""
    if not h.total_count:
        return {name: 0.0 for name in PERCENTILES}
    out = {name: float(h.get_value_at_percentile(p)) for name, p in PERCENTILES.items()
           if name != "max"}
    out["max"] = float(h.get_max_value())
    out["mean"] = round(h.get_mean_value(), 1)
    out["count"] = float(h.total_count)
    return out


def cdf(h: HdrHistogram, points: int = 400) -> tuple[list[float], list[float]]:
    """(latency us, fraction <= it) sampled for a plot."""
    xs: list[float] = []
    ys: list[float] = []
    if not h.total_count:
        return xs, ys
    for i in range(points + 1):
        q = 100.0 * (1 - 10 ** (-5 * i / points))  # dense in the tail
        xs.append(float(h.get_value_at_percentile(q)))
        ys.append(q / 100)
    xs.append(float(h.get_max_value()))
    ys.append(1.0)
    return xs, ys
