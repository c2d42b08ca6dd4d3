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
def test_training_draws_one_bar_for_the_run_with_rate(
  test_config, tmp_path, monkeypatch, capsys, on
):
  """One bar over every step of the run: where it is (fold k/N of the run, epoch), steps/s and
  examples/s; nothing when bars are off."""
  monkeypatch.setenv(progress.ENV, '1' if on else '0')
  config = test_config
  config.num_epochs, config.data.run_folds = 2, (0,)
  train.train_and_evaluate(config, str(tmp_path))
  err = capsys.readouterr().err
  drawn = 'fold 1/1 epoch 2/2: 100%' in err and '44/44' in err and 'examples/s' in err
  assert drawn is on


def test_run_progress_counts_resumed_steps_as_done_but_not_in_the_rate(monkeypatch):
  monkeypatch.setenv(progress.ENV, '0')
  now = [100.0]
  monkeypatch.setattr(progress.time, 'monotonic', lambda: now[0])
  shown = progress.RunProgress(total_steps=100, num_folds=2, examples_per_step=16)
  shown.skip(20)  # trained by an earlier run
  shown.advance(10)  # starts the clock (the first chunk compiles)
  now[0] = 102.0
  shown.advance(10)  # 10 steps in 2 s
  assert shown.done == 40
  assert shown.examples_per_second() == pytest.approx(10 * 16 / 2)
  assert shown.summary() == '80 examples/s, about 12 s left in the run'  # 60 steps * 16 / 80
