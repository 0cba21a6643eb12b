"""Tests of the integration tier."""
