"""Input rules shared by calls and schedules: one error root, field checks, durations."""
