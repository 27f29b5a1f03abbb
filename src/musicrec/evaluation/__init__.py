"""Ranking and beyond-accuracy metrics, the evaluation protocol (intervals, segments), the report, studies."""
