"""Metrics, one module per kind: ``reconstruction`` (MSE, PSNR), ``classification`` (accuracy, linear
probe), ``segmentation`` (confusion matrix, IoU, mIoU, Dice, pixel accuracy) and ``detection`` (box and
mask AP)."""
