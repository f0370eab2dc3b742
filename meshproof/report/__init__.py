"""Reports: the ConformanceReport YAML (``conformance``) and the diff of two (``diff``).
Importable without pytest or a target: the chaos suite and the CLI use them."""
