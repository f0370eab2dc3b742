"""meshproof: prove, with evidence, that a service mesh does what it promises."""

__version__ = "0.1.0"
