"""Scaling-law fits (Chinchilla approaches 2 and 3), their plots and their summary tables."""
