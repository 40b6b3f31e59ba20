"""Recipes for the regularised and stacked autoencoders (filled in with their chapters)."""
