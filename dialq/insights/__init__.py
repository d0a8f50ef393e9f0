"""Transcripts and insights of ended calls: harvest, policy, transcript."""
