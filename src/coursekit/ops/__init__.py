"""Pure functions on tensors that models, the engine and the metrics share, one module per kind:
``boxes`` (IoU, box coding, anchors, NMS), ``losses`` (reconstruction, cross-entropy, Dice),
``penalties`` (sparse KL, contractive Jacobian norm) and ``corruption`` (the denoising AE's q(x̃ | x)).
They import torch and nothing else of coursekit's but each other."""
