"""Test doubles and helpers shared by the test suites (real local servers, not mocks)."""
