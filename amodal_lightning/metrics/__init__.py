"""Metrics: pure functions of masks (and of images, for appearance), each named after the protocol it follows.

``layers``      SAS's layer metrics (per-layer IoU, sequential and teacher-forced mIoU)
``objects``     per-object amodal metrics (C2F-Seg's mIoU and occluded mIoU, PCNet's pooled IoU, buckets)
``appearance``  whole-object appearance (PSNR and SSIM over the amodal region and its hidden part)
``ap``          amodal instance segmentation AP (pycocotools' COCOeval; amodal, visible, hidden, AISFormer's buckets)
"""
