"""Frozen image features: the extractors, the image pipeline that feeds them, and the store.

Shared services at this level: `extractor` (the `Extractor` interface and flip averaging),
`registry` (config kinds -> extractors), `geometry`, `image_decode` and `images` (image files ->
the crops an extractor takes), `extract` (extract mode). One subpackage per model family (`vgg`,
`efficientnet_lite`, `vit`, `resmem`: a `model` that knows nothing of files, `weights` that
loads it, an `extractor`), `readers` (the torch-free weight-file readers) and `store` (the
on-disk feature store).
"""
