"""VGG16/19 fc7 and the captioning embedding: `model` (the network, its shapes and
preprocessing), `weights` (Keras and torchvision files, the projection `.npz`), `extractor`."""
