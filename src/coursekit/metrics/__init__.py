"""Metrics, one module per kind: ``reconstruction`` (MSE, PSNR), ``classification`` (accuracy, linear
probe), ``segmentation`` (confusion matrix, IoU, mIoU, Dice, pixel accuracy), ``detection`` (box and
mask AP) and ``filters`` (smoothness of a layer's weights)."""
