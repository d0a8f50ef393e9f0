"""Operating dialq: logs, metrics, doctor, the demo, a private Redis."""
