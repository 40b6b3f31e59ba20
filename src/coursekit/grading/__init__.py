"""Exercises and grading: ``release`` writes student notebooks from the solutions, ``grade`` scores
submissions safely."""
