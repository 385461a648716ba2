"""Analyses of results: summaries, trends, the theory checked on recorded runs."""
