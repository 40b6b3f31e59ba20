"""Models, one module per family (as torchvision's ``models/``), each with builder functions."""
