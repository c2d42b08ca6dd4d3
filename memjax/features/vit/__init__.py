"""CLIP, SigLIP (and SigLIP 2), DINOv2 and DINOv3: `model` (one vision transformer, its variants
and outputs; `rope`: DINOv3's rotary position embeddings), `file_arch` (a weight file's
architecture), `weights` (which layout a file has, and its conversion; `tensors` and one `from_*`
module per source layout), `extractor`."""
