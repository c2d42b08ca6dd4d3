"""Independent re-scoring: the numbers a run reports, recomputed without memjax's glue.

A small image run (colour-grid features computed on the fly) whose validation Spearman peaks
and then falls as the model overfits noisy labels, so its best checkpoint is not its latest.
For its folds the tests pick the best step from the checkpoints' stored validation metrics,
restore that step with orbax alone, run the MLP in NumPy on features computed in NumPy from the
image files, recompute thresholds and s_k from the fold's training scores (both `score_values`
rules), score with SciPy, and compare with `eval.json`, `--mode=evaluate` and `--mode=predict`.
"""

import csv
import os

import numpy as np
import numpy_mlp
import pytest
from scipy import stats

from memjax import datasets, evaluate, fold_data, predict, train

NUM_IMAGES = 160
SIDE = 256  # = color_grid's resize_to: files are read as they are, then centre-cropped to 224


def _write_images(root: str, seed: int = 0, label_noise: float = 0.7) -> dict:
  """Images of 4x4 flat colour cells (+ pixel noise) whose score is a random linear function of
  the cell colours plus noise as large as most of the signal (the model can overfit it)."""
  from PIL import Image

  rng = np.random.default_rng(seed)
  os.makedirs(root)
  weights = rng.normal(size=48)
  raw = []
  for i in range(NUM_IMAGES):
    cells = rng.uniform(0, 1, size=(4, 4, 3))
    pixels = np.kron(cells, np.ones((SIDE // 4, SIDE // 4, 1))) * 255
    pixels = np.clip(pixels + rng.normal(0, 10, pixels.shape), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(os.path.join(root, f'{i:03d}.png'))
    raw.append(cells.reshape(-1) @ weights / 4 + rng.normal(0, label_noise))
  raw = np.asarray(raw)
  scores = 1 / (1 + np.exp(-(raw - raw.mean()) / raw.std()))
  out = {}
  with open(os.path.join(root, 'scores.csv'), 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['image', 'score'])
    for i, s in enumerate(scores):
      writer.writerow([f'{i:03d}.png', f'{s:.4f}'])
      out[f'{i:03d}.png'] = float(f'{s:.4f}')
  return out


def _config(image_dir: str, score_values: str):
  from configs import test as test_cfg

  config = test_cfg.get_config()
  config.data.name = 'image_folder'
  config.data.dir = image_dir
  config.data.on_the_fly = True
  config.data.val_fraction = 0.3
  config.features = ('color_grid',)
  config.model.branch_units.color_grid = (64,)
  config.model.hidden_units = (64,)
  config.model.dropout = 0.0
  config.batch_size = 8
  config.num_epochs = 12  # validation Spearman peaks around epoch 8-9, then falls
  config.optimizer.learning_rate = 1e-2
  config.score_values = score_values
  return config


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  """{rule: (config, workdir, train summary)}: both folds with `upper_threshold`, fold 0 with
  `class_mean`; plus the image folder's scores and NumPy features."""
  root = tmp_path_factory.mktemp('rescoring')
  image_dir = str(root / 'images')
  truth = _write_images(image_dir)
  out = {}
  for rule, run_folds in (('upper_threshold', ()), ('class_mean', (0,))):
    config = _config(image_dir, rule)
    config.data.run_folds = run_folds
    workdir = str(root / rule)
    out[rule] = (config, workdir, train.train_and_evaluate(config, workdir))
  names = sorted(truth)
  features = np.stack([numpy_mlp.color_grid(os.path.join(image_dir, n)) for n in names])
  return out, truth, dict(zip(names, features, strict=True))


def _fold_rows(config, fold: int):
  """The fold's (ids, train/val/test split) as memjax plans it (folds.py has its own tests)."""
  data = datasets.load(config)
  return data.ids, fold_data.plan_folds(config, data)[fold].split


def _best_step(fold_dir: str) -> tuple[int, int]:
  """(best step by the stored validation Spearman, latest step)."""
  found = {s: numpy_mlp.checkpoint_meta(fold_dir, s) for s in numpy_mlp.checkpoint_steps(fold_dir)}
  val = {s: m['val']['spearman'] for s, m in found.items() if m.get('val')}
  return max(val, key=val.get), max(found)


def _rescore(config, workdir, fold, truth, features):
  """What the fold's eval.json should say, recomputed from the files."""
  fold_dir = os.path.join(workdir, f'fold_{fold}')
  best, latest = _best_step(fold_dir)
  ids, split = _fold_rows(config, fold)
  scores = np.array([truth[i] for i in ids])
  x = np.stack([features[i] for i in ids])
  cuts = numpy_mlp.thresholds(scores[split.train], config.num_classes)
  values = numpy_mlp.score_values(scores[split.train], cuts, config.score_values)

  def predicted(step, rows):
    params = numpy_mlp.checkpoint_params(fold_dir, step)
    logits = numpy_mlp.forward(params, {'color_grid': x[rows]}, config.features)
    return numpy_mlp.softmax(logits) @ values

  # The stored validation metric that picks the checkpoint is itself right, at every kept step.
  for step in numpy_mlp.checkpoint_steps(fold_dir):
    stored = numpy_mlp.checkpoint_meta(fold_dir, step)['val']['spearman']
    again = stats.spearmanr(predicted(step, split.val), scores[split.val]).statistic
    assert stored == pytest.approx(again, abs=1e-4), (fold, step)
  m = predicted(best, split.test)
  return {
    'best': best,
    'latest': latest,
    'thresholds': cuts,
    'values': values,
    'spearman': stats.spearmanr(m, scores[split.test]).statistic,
    'pearson': stats.pearsonr(m, scores[split.test]).statistic,
    'mse': float(np.mean((m - scores[split.test]) ** 2)),
    'num_test': split.test.size,
  }


def _check(eval_json: dict, expected: dict) -> None:
  assert eval_json['checkpoint_step'] == expected['best']
  np.testing.assert_allclose(eval_json['thresholds'], expected['thresholds'], rtol=0, atol=1e-12)
  np.testing.assert_allclose(eval_json['score_values'], expected['values'], rtol=0, atol=1e-12)
  assert eval_json['num_examples'] == expected['num_test']
  assert eval_json['spearman'] == pytest.approx(expected['spearman'], abs=1e-4)
  assert eval_json['pearson'] == pytest.approx(expected['pearson'], abs=1e-5)
  assert eval_json['mse'] == pytest.approx(expected['mse'], rel=1e-5)


@pytest.mark.parametrize('rule', ['upper_threshold', 'class_mean'])
def test_eval_json_is_the_best_checkpoint_rescored_independently(runs, rule):
  by_rule, truth, features = runs
  config, workdir, summary = by_rule[rule]
  checked = 0
  for fold_result in summary['folds']:
    fold = fold_result['fold']
    expected = _rescore(config, workdir, fold, truth, features)
    # The run overfits: if best == latest, this test could not tell them apart.
    assert expected['best'] < expected['latest'], (rule, fold, expected['best'])
    on_disk = evaluate.results.read_json(os.path.join(workdir, f'fold_{fold}', 'eval.json'))
    _check(on_disk, expected)
    _check(fold_result, expected)
    checked += 1
  assert checked == (2 if rule == 'upper_threshold' else 1)
  if rule == 'class_mean':  # the two rules really give different s_k on these scores
    other = by_rule['upper_threshold'][2]['folds'][0]['score_values']
    assert np.max(np.abs(np.subtract(other, summary['folds'][0]['score_values']))) > 0.05


def test_evaluate_mode_rescores_the_best_checkpoint(runs):
  by_rule, truth, features = runs
  config, workdir, _ = by_rule['upper_threshold']
  again = evaluate.evaluate(config, workdir)
  assert [f['fold'] for f in again['folds']] == [0, 1]
  for fold_result in again['folds']:
    _check(fold_result, _rescore(config, workdir, fold_result['fold'], truth, features))


def test_evaluate_mode_latest_checkpoint_is_the_latest(runs):
  by_rule, truth, features = runs
  config, workdir, _ = by_rule['class_mean']
  config = config.copy_and_resolve_references()
  config.eval.checkpoint = 'latest'
  fold_result = evaluate.evaluate(config, workdir)['folds'][0]
  expected = _rescore(config, workdir, 0, truth, features)
  ids, split = _fold_rows(config, 0)
  x = np.stack([features[i] for i in ids])[split.test]
  params = numpy_mlp.checkpoint_params(os.path.join(workdir, 'fold_0'), expected['latest'])
  probs = numpy_mlp.softmax(numpy_mlp.forward(params, {'color_grid': x}, config.features))
  m = probs @ expected['values']
  scores = np.array([truth[i] for i in ids])[split.test]
  assert fold_result['checkpoint_step'] == expected['latest']
  assert fold_result['spearman'] == pytest.approx(stats.spearmanr(m, scores).statistic, abs=1e-4)


def test_predict_is_the_fold_mean_of_the_numpy_forward(runs):
  by_rule, truth, features = runs
  config, workdir, _ = by_rule['upper_threshold']
  config = config.copy_and_resolve_references()
  config.predict.input = config.data.dir
  out = predict.predict(config, workdir)
  with open(out['output']) as f:
    written = {os.path.basename(r['path']): r for r in csv.DictReader(f)}
  assert sorted(written) == sorted(truth) and out['num_folds'] == 2
  names = sorted(truth)
  x = np.stack([features[n] for n in names])
  scores, probs = [], []
  for fold in (0, 1):
    fold_dir = os.path.join(workdir, f'fold_{fold}')
    best, _ = _best_step(fold_dir)
    ids, split = _fold_rows(config, fold)
    train_scores = np.array([truth[i] for i in ids[split.train]])
    cuts = numpy_mlp.thresholds(train_scores, config.num_classes)
    values = numpy_mlp.score_values(train_scores, cuts, config.score_values)
    p = numpy_mlp.softmax(
      numpy_mlp.forward(
        numpy_mlp.checkpoint_params(fold_dir, best), {'color_grid': x}, config.features
      )
    )
    probs.append(p)
    scores.append(p @ values)
  got = np.array([float(written[n]['score']) for n in names])
  np.testing.assert_allclose(got, np.mean(scores, axis=0), rtol=0, atol=2e-6)
  got_probs = np.array([[float(written[n][f'prob_{k}']) for k in range(4)] for n in names])
  np.testing.assert_allclose(got_probs, np.mean(probs, axis=0), rtol=0, atol=5e-6)


def test_evaluate_mode_scores_a_named_step(runs):
  by_rule, truth, features = runs
  config, workdir, _ = by_rule['class_mean']
  fold_dir = os.path.join(workdir, 'fold_0')
  best, latest = _best_step(fold_dir)
  (step,) = set(numpy_mlp.checkpoint_steps(fold_dir)) - {best, latest}  # 2 latest + best kept
  config = config.copy_and_resolve_references()
  config.eval.checkpoint = str(step)
  fold_result = evaluate.evaluate(config, workdir)['folds'][0]
  ids, split = _fold_rows(config, 0)
  x = np.stack([features[i] for i in ids])[split.test]
  train_scores = np.array([truth[i] for i in ids[split.train]])
  cuts = numpy_mlp.thresholds(train_scores, config.num_classes)
  values = numpy_mlp.score_values(train_scores, cuts, 'class_mean')
  params = numpy_mlp.checkpoint_params(fold_dir, step)
  m = numpy_mlp.softmax(numpy_mlp.forward(params, {'color_grid': x}, config.features)) @ values
  scores = np.array([truth[i] for i in ids[split.test]])
  assert fold_result['checkpoint_step'] == step
  assert fold_result['spearman'] == pytest.approx(stats.spearmanr(m, scores).statistic, abs=1e-4)
