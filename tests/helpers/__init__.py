"""Shared test helpers (plain modules: tests import them, never each other)."""
