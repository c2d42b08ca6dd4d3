"""CLIP, SigLIP and DINOv2: `model` (one vision transformer, its variants and outputs),
`file_arch` (a weight file's architecture), `weights` (which layout a file has, and its
conversion; `tensors` and one `from_*` module per source layout), `extractor`."""
