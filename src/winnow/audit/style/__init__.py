"""Photograph or drawing, without labels: hand statistics of an image's texture and noise
(features), the learned noise residual (denoiser) and the unsupervised decision (domain)."""
