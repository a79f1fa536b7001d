"""Analyses over the results store: the ratings panel and its trends, pairwise comparisons, evidence views."""
