"""Recipes for the segmentation models (filled in with their chapters)."""
