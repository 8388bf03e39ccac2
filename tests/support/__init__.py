"""Helpers shared by the test fixtures: backing-service discovery, fresh databases, containers."""
