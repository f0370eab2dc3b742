"""This package gets its own lab, removed when the package ends (one lab per machine)."""

from meshproof.pytest_plugin import package_target  # noqa: F401
