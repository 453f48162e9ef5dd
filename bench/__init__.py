"""Performance benchmark for Bandeja (``make bench``); never part of the pass/fail tests."""
