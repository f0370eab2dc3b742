"""Meshes under test: adapters that turn intents into a mesh's own resources."""
