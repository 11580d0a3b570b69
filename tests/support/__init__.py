"""Shared test harnesses (servers the tests start for themselves)."""
