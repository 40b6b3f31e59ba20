"""Recipes for the autoencoders models (filled in with their chapters)."""
