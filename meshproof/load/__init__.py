"""Load tests: the latency the mesh adds, open loop, microsecond HDR histograms.

See docs/load.md. The generator itself (Locust + a precise open-loop
scheduler) lives in ``loadtests/`` and runs inside a client pod; this package
is the harness side: topology, settings, orchestration, report, gate, plots.
"""
