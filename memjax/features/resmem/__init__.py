"""ResMem (a ResNet-152 and an AlexNet-like branch scoring memorability; non-commercial weights):
`model` (the network), `weights` (its `model.pt`, read without torch), `extractor` (the extractor
and the scorer that needs no training)."""
