"""memjax's CLIP / SigLIP / DINOv2 == KerasHub's (the maintained reference), same random weights.

The weights are written as Hugging Face `model.safetensors` files (test_vit.py's writers) and
memjax reads those files. KerasHub gets the same tensors: DINOv2 through KerasHub's own
Hugging Face converter (`keras_hub/src/utils/transformers/convert_dinov2.py`), CLIP and SigLIP
as KerasHub's checkpoint conversion scripts port them (`tools/checkpoint_conversion/
convert_{clip,siglip}_checkpoints.py`: PyTorch [out, in] weights transposed, attention split
per head). Both run in float32 on the same normalised pixels; features must agree to 1e-4.

KerasHub is a test-only dependency; memjax itself never imports it. Keras 3 runs on the backend
it was imported with: TensorFlow in this suite (conftest imports TensorFlow, which imports
Keras); with KERAS_BACKEND=jax the differences are the same (<= 1.8e-6 either way).
"""

import numpy as np
import pytest
import test_vit as tv
from references import require

from memjax.features.vit import variants as vit_variants

keras_hub = require('keras_hub')
import keras  # noqa: E402  (already imported by TensorFlow, with its backend)

require('safetensors')

TOLERANCE = 1e-4
BACKEND = (
  f'KerasHub {keras_hub.__version__}, Keras {keras.__version__} on {keras.backend.backend()}'
)


def _normalised(cfg: vit_variants.ViTConfig, images: np.ndarray) -> np.ndarray:
  x = images.astype(np.float32) / 255.0
  return ((x - np.array(cfg.mean, np.float32)) / np.array(cfg.std, np.float32)).astype(np.float32)


class _Port:
  """`port_weights`, `port_ln`, `port_dense`, `port_mha` of KerasHub's conversion scripts."""

  def __init__(self, tensors: dict):
    self.tensors = tensors

  def weight(self, variable, key: str, hook=None) -> None:
    value = self.tensors[key]
    variable.assign(hook(value) if hook else value)

  def ln(self, layer, key: str) -> None:
    self.weight(layer.gamma, f'{key}.weight')
    self.weight(layer.beta, f'{key}.bias')

  def dense(self, layer, key: str) -> None:
    self.weight(layer.kernel, f'{key}.weight', lambda x: x.T)
    if layer.bias is not None:
      self.weight(layer.bias, f'{key}.bias')

  def mha(self, layer, key: str, heads: int, d: int) -> None:
    for dense, name in ((layer.query_dense, 'q'), (layer.key_dense, 'k'), (layer.value_dense, 'v')):
      self.weight(dense.kernel, f'{key}.{name}_proj.weight', lambda x: x.T.reshape(d, heads, -1))
      self.weight(dense.bias, f'{key}.{name}_proj.bias', lambda x: x.reshape(heads, -1))
    out = layer.output_dense
    self.weight(out.kernel, f'{key}.out_proj.weight', lambda x: x.T.reshape(heads, -1, d))
    self.weight(out.bias, f'{key}.out_proj.bias')

  def mha_torch(self, layer, key: str, heads: int, d: int) -> None:
    """`nn.MultiheadAttention` (one `in_proj` for q, k, v), as SigLIP's pooling head has."""
    denses = (layer.query_dense, layer.key_dense, layer.value_dense)
    for i, dense in enumerate(denses):
      part = slice(i * d, (i + 1) * d)
      self.weight(
        dense.kernel, f'{key}.in_proj_weight', lambda x, s=part: x[s].T.reshape(d, heads, -1)
      )
      self.weight(dense.bias, f'{key}.in_proj_bias', lambda x, s=part: x[s].reshape(heads, -1))
    out = layer.output_dense
    self.weight(out.kernel, f'{key}.out_proj.weight', lambda x: x.T.reshape(heads, -1, d))
    self.weight(out.bias, f'{key}.out_proj.bias')


def _keras_clip(cfg: vit_variants.ViTConfig, tensors: dict, images: np.ndarray) -> dict:
  from keras_hub.src.models.clip.clip_backbone import CLIPBackbone
  from keras_hub.src.models.clip.clip_text_encoder import CLIPTextEncoder
  from keras_hub.src.models.clip.clip_vision_encoder import CLIPVisionEncoder

  size = cfg.image_size
  vision = CLIPVisionEncoder(
    cfg.patch, cfg.width, cfg.depth, cfg.heads, cfg.mlp, cfg.act, image_shape=(size, size, 3)
  )
  text = CLIPTextEncoder(10, 8, 8, 1, 2, 16, max_sequence_length=4)
  model = CLIPBackbone(vision, text, projection_dim=cfg.proj_dim)
  port, v = _Port(tensors), 'vision_model.'
  emb = vision.embedding
  port.weight(emb.patch_embedding.kernel, f'{v}embeddings.patch_embedding.weight',
              lambda x: x.transpose(2, 3, 1, 0))  # fmt: skip
  port.weight(emb.position_embedding.embeddings, f'{v}embeddings.position_embedding.weight')
  port.weight(emb.class_embedding, f'{v}embeddings.class_embedding')
  port.weight(emb.position_ids, f'{v}embeddings.position_ids')  # a buffer, as the script ports
  port.ln(vision.pre_layer_norm, f'{v}pre_layrnorm')
  for i, layer in enumerate(vision.encoder_layers):
    p = f'{v}encoder.layers.{i}'
    port.mha(layer.attention, f'{p}.self_attn', cfg.heads, cfg.width)
    port.ln(layer.layer_norm_1, f'{p}.layer_norm1')
    port.ln(layer.layer_norm_2, f'{p}.layer_norm2')
    port.dense(layer.dense_1, f'{p}.mlp.fc1')
    port.dense(layer.dense_2, f'{p}.mlp.fc2')
  port.ln(vision.layer_norm, f'{v}post_layernorm')
  port.dense(model.vision_projection, 'visual_projection')
  x = _normalised(cfg, images)
  sequence = np.asarray(vision({'images': x}))
  return {'embedding': np.asarray(model.get_vision_embeddings(x)), 'pooled': sequence[:, 0]}


def _keras_siglip(cfg: vit_variants.ViTConfig, tensors: dict, images: np.ndarray) -> dict:
  from keras_hub.src.models.siglip.siglip_vision_encoder import SigLIPVisionEncoder

  size = cfg.image_size
  vision = SigLIPVisionEncoder(
    cfg.patch, cfg.width, cfg.depth, cfg.heads, cfg.mlp, 'gelu_approximate', cfg.eps,
    image_shape=(size, size, 3),
  )  # fmt: skip
  port, v = _Port(tensors), 'vision_model.'
  emb = vision.embedding
  port.weight(emb.patch_embedding.kernel, f'{v}embeddings.patch_embedding.weight',
              lambda x: x.transpose(2, 3, 1, 0))  # fmt: skip
  port.weight(emb.patch_embedding.bias, f'{v}embeddings.patch_embedding.bias')
  port.weight(emb.position_embedding.embeddings, f'{v}embeddings.position_embedding.weight')
  for i, layer in enumerate(vision.encoder_layers):
    p = f'{v}encoder.layers.{i}'
    port.mha(layer.self_attn, f'{p}.self_attn', cfg.heads, cfg.width)
    port.ln(layer.layer_norm1, f'{p}.layer_norm1')
    port.ln(layer.layer_norm2, f'{p}.layer_norm2')
    port.dense(layer.mlp.fc1, f'{p}.mlp.fc1')
    port.dense(layer.mlp.fc2, f'{p}.mlp.fc2')
  port.ln(vision.post_layer_norm, f'{v}post_layernorm')
  head = vision.head
  port.weight(head.probe, f'{v}head.probe')
  port.mha_torch(head.attention, f'{v}head.attention', cfg.heads, cfg.width)
  port.ln(head.layer_norm, f'{v}head.layernorm')
  port.dense(head.mlp.fc1, f'{v}head.mlp.fc1')
  port.dense(head.mlp.fc2, f'{v}head.mlp.fc2')
  x = _normalised(cfg, images)
  tokens = keras.Model(vision.inputs, vision.post_layer_norm.output)(x)
  return {'pooled': np.asarray(vision({'images': x})), 'patch_mean': np.asarray(tokens).mean(1)}


class _Loader:
  """The `loader` KerasHub's Hugging Face converters call (`port_weight`), over a dict."""

  def __init__(self, tensors: dict):
    self.tensors = tensors

  def port_weight(self, keras_variable, hf_weight_key, hook_fn=None):
    value = self.tensors[hf_weight_key]
    if hook_fn:
      value = hook_fn(value, list(keras_variable.shape))
    keras_variable.assign(value)


def _keras_dinov2(
  cfg: vit_variants.ViTConfig, tensors: dict, images: np.ndarray, pos_grid: int
) -> dict:
  from keras_hub.src.utils.transformers import convert_dinov2

  hf_config = {
    'model_type': 'dinov2_with_registers' if cfg.registers else 'dinov2',
    'image_size': pos_grid * cfg.patch,
    'patch_size': cfg.patch,
    'num_hidden_layers': cfg.depth,
    'hidden_size': cfg.width,
    'num_attention_heads': cfg.heads,
    'mlp_ratio': cfg.mlp // cfg.width,
    'layerscale_value': 1.0,
    'num_register_tokens': cfg.registers,
    'use_swiglu_ffn': False,
    'hidden_dropout_prob': 0.0,
    'drop_path_rate': 0.0,
  }
  kwargs = convert_dinov2.convert_backbone_config(hf_config)
  kwargs['image_shape'] = (cfg.image_size, cfg.image_size, 3)
  model = convert_dinov2.backbone_cls(**kwargs)
  convert_dinov2.convert_weights(model, _Loader(tensors), hf_config)
  tokens = np.asarray(model(_normalised(cfg, images)))
  patches = tokens[:, 1 + cfg.registers :].mean(axis=1)
  return {
    'cls': tokens[:, 0],
    'patch_mean': patches,
    'cls_patch_mean': np.concatenate([tokens[:, 0], patches], axis=-1),
  }


@pytest.mark.parametrize(
  ('name', 'pos_grid'),
  [('clip', None), ('clip_gelu', None), ('siglip', None), ('dinov2', None), ('dinov2_reg', 6)],
)
def test_features_equal_keras_hub(name, pos_grid, tmp_path):
  cfg = tv.TINY[name]
  tensors = tv.hf_tensors(cfg, seed=7, pos_grid=pos_grid)
  path = tv.save_safetensors(tensors, tmp_path / 'model.safetensors')
  images = tv.random_images(4, cfg.image_size, seed=7)
  if cfg.family == 'clip':
    want = _keras_clip(cfg, tensors, images)
  elif cfg.family == 'siglip':
    want = _keras_siglip(cfg, tensors, images)
  else:
    want = _keras_dinov2(cfg, tensors, images, pos_grid or cfg.grid)
  assert sorted(want) == sorted(vit_variants.OUTPUTS[cfg.family])  # every output is compared
  for output, reference in want.items():
    got = tv.features(cfg.family, f'tiny_{name}', path, images, output=output)
    assert got.shape == reference.shape and got.dtype == np.float32
    assert np.isfinite(got).all() and np.isfinite(reference).all(), output
    diff = float(np.abs(got - reference).max())
    scale = np.abs(got).max()
    print(f'{name} {output}: max abs difference {diff:.2e} (feature scale {scale:.2f}; {BACKEND})')
    assert diff <= TOLERANCE, (output, diff)
    # Not a degenerate agreement: the features are O(1) (scale 1.4-4.1) and differ between the
    # four images by far more than the tolerance, so a network ignoring its input would fail.
    assert scale > 0.5, (output, scale)
    assert np.abs(reference[1:] - reference[:1]).max(axis=-1).min() > 1000 * TOLERANCE, output
