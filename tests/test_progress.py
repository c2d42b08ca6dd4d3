"""Progress bars on a terminal, plain log lines otherwise."""

import pytest

from memjax import train
from memjax.runtime import progress


def test_bars_only_on_a_terminal_or_when_asked(monkeypatch):
  monkeypatch.delenv(progress.ENV, raising=False)
  assert not progress.enabled()  # pytest captures stderr: not a terminal
  assert isinstance(progress.bar(10, 'x', 'img'), progress._Silent)
  monkeypatch.setenv(progress.ENV, '1')
  shown = progress.bar(10, 'x', 'img')
  assert shown.total == 10
  shown.close()
  monkeypatch.setenv(progress.ENV, '0')
  assert not progress.enabled()


@pytest.mark.parametrize('on', [True, False])
def test_training_draws_an_epoch_bar_with_rate(test_config, tmp_path, monkeypatch, capsys, on):
  monkeypatch.setenv(progress.ENV, '1' if on else '0')
  config = test_config
  config.num_epochs, config.data.run_folds = 1, (0,)
  train.train_and_evaluate(config, str(tmp_path))
  err = capsys.readouterr().err
  assert ('fold 0 epoch 1: 100%' in err and '22/22' in err and 'step/s' in err) is on
