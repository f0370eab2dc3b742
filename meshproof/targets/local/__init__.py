"""The local target: the fixture topology in Linux network namespaces on this host."""
