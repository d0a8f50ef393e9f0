"""What tests, chaos runs and benchmarks check: the audit (lost, doubled, stuck, orphans, leaks)."""
