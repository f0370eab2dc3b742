"""Locust scenarios and the open-loop generator that runs them inside a client pod."""
