"""Readers of the weight files that extractors load, none needing torch, safetensors or Keras.

`torch_checkpoint` reads `torch.save` state dicts (zip and legacy formats) with an allowlisting
unpickler; `safetensors` reads `.safetensors`; `keras_files` reads Keras HDF5 and `.keras` files;
`weight_files` reads `.npz` archives, any tensor file by its extension, a Keras or PyTorch file
by its content, and a file's sha256 (checked against a published digest).
"""
