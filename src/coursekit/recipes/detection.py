"""Recipes for the detection models (filled in with their chapters)."""
