"""Targets: where the fixture topology runs (local netns lab, kube cluster)."""
