"""The reference mesh meshproof ships: CA, per-pod agent, xDS control plane, sidecar bootstrap.

Each component is a separate process (``python -m refmesh.ca``,
``refmesh.agent``, ``refmesh.controlplane``) that the local target launches;
the config builders under ``refmesh.xds`` are pure functions so they can be
unit-tested and validated offline with ``envoy --mode validate``.
"""
