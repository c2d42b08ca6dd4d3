"""EfficientNet-Lite0/1/2: `model` (the network and its variants), `weights` (the packaged `.pth`
files, their checksums and conversion), `extractor`."""
