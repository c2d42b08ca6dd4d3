"""What a ViT weight file says about its architecture: the record its readers return.

Two readers fill it: `config_files` (the `config.json` or `open_clip_config.json` beside the
weights) and `tensor_shapes` (what the tensors' shapes show). `architecture.resolve` turns them
into the final `ViTConfig`.
"""

import dataclasses

# ViTConfig field -> words for messages.
FIELD_WORDS = {
  'width': 'width',
  'depth': 'depth',
  'heads': 'attention heads',
  'mlp': 'MLP width',
  'patch': 'patch size',
  'image_size': 'image size',
  'act': 'activation',
  'eps': 'LayerNorm eps',
  'registers': 'register tokens',
  'proj_dim': 'projection width',
  'rope_theta': 'RoPE base period',
}


@dataclasses.dataclass(frozen=True)
class FileArch:
  """What a weight file says about its architecture.

  Attributes:
    fields: ViTConfig fields known from the file (keys of `FIELD_WORDS`).
    source: where they come from, as the start of a message ('/x/config.json says', ...).
    head: SigLIP: whether the file has the attention-pooling head (None: unknown).
    base: the built-in variant whose other fields (preprocessing) a file of this architecture
      takes (SigLIP 2's `v2_b16_224`; None: the family's default).
    defaults: fields the file gives that a variant may change, unchecked: the image size of
      DINOv3 (rotary embeddings) and of SigLIP 2 NaFlex (position embeddings resized).
  """

  fields: dict
  source: str
  head: bool | None = None
  base: str | None = None
  defaults: dict = dataclasses.field(default_factory=dict)
