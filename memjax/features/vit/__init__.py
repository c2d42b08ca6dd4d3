"""CLIP, SigLIP (and SigLIP 2), DINOv2 and DINOv3: `model` (one vision transformer, its variants
and outputs; `rope`: DINOv3's rotary position embeddings), `architecture` (a weight file's
`ViTConfig`, from `config_files` beside it and its `tensor_shapes`, both as a `file_arch.FileArch`),
`weights` (which layout a file has, and its conversion; `tensors` and one `from_*` module per
source layout), `extractor`."""
