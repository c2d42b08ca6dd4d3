"""The HTML report in a real browser: Debian's headless chromium, driven by Selenium through the
system chromedriver (no browser is downloaded). The page must render its tables and every image
offline, and a photo named like an HTML element must show as text, never become one.

Needs the Debian packages `chromium` and `chromium-driver` and the PyPI package `selenium`
(requirements-test.txt): skipped without them, except under `CI`, where `.ci/run` installs them
and their absence fails the test.
"""

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from memjax import results
from memjax.experiments import fold_predictions, report

EVIL = '<img src=x onerror=alert(1)>.jpg'
CHROMIUM, CHROMEDRIVER = shutil.which('chromium'), shutil.which('chromedriver')


def _missing(reason: str):
  if os.environ.get('CI', '').lower() not in ('', '0', 'false', 'no'):
    pytest.fail(f'{reason}; CI must install it (.ci/run: apt-get install chromium-driver).')
  pytest.skip(f'{reason}; install it (apt-get install chromium chromium-driver; pip selenium).')


@pytest.fixture
def browser():
  if not CHROMIUM or not CHROMEDRIVER:
    _missing('chromium or chromedriver is not installed')
  try:
    from selenium import webdriver
  except ImportError:
    _missing('selenium is not installed')
  options = webdriver.ChromeOptions()
  options.binary_location = CHROMIUM
  for arg in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'):
    options.add_argument(arg)
  driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(CHROMEDRIVER))
  yield driver
  driver.quit()


@pytest.fixture
def photo_run(tmp_path, test_config):
  """A finished image-folder run of 8 photos (one named like an HTML element) with 2 folds'
  test predictions, as train and report leave it."""
  photos = tmp_path / 'photos'
  photos.mkdir()
  names = [f'photo_{i}.png' for i in range(7)] + [EVIL]
  true = np.linspace(0.4, 0.9, len(names))
  for i, name in enumerate(names):
    Image.new('RGB', (64, 48), (30 * i, 200 - 20 * i, 90)).save(photos / name, format='PNG')
  with open(photos / 'scores.csv', 'w') as f:
    f.write('image,score\n' + ''.join(f'{n},{s}\n' for n, s in zip(names, true, strict=True)))
  config = test_config
  config.data.name, config.data.dir = 'image_folder', str(photos)
  workdir = tmp_path / 'runs' / 'my <b>photos'  # a folder name is shown too
  results.write_json(str(workdir / 'config.json'), config.to_dict())
  pred = true[::-1].copy()
  pred[-1] = 0.99  # the evil photo is the most memorable by prediction
  folds = []
  for fold, rows in enumerate((np.arange(0, 8, 2), np.arange(1, 8, 2))):
    path = os.path.join(results.fold_dir(str(workdir), fold), fold_predictions.PREDICTIONS_FILE)
    fold_predictions.save(path, rows, np.array(names)[rows], true[rows], pred[rows])
    folds.append({'fold': fold, 'spearman': 0.3 + 0.1 * fold, 'pearson': 0.4, 'mse': 0.02})
  summary = {
    'dataset': 'image_folder',
    'synthetic': False,
    'protocol': 'cv5',
    'head': 'regression',
    'features': ['efficientnet'],
    'folds': folds,
    'spearman_mean': 0.35,
    'spearman_std': 0.0707,
    'pearson_mean': 0.4,
    'mse_mean': 0.02,
    'range_ratio_mean': 0.5,
  }
  results.write_json(str(workdir / 'summary.json'), summary)
  return config, str(workdir)


def test_html_escapes_names(photo_run, tmp_path):
  config, workdir = photo_run
  config.report.runs, config.report.grid_size = (workdir,), 2
  summary = report.report(config, str(tmp_path / 'out'))
  with open(summary['written']['html']) as f:
    page = f.read()
  assert '<img src=x' not in page and '<b>photos' not in page
  assert '&lt;img src=x onerror=alert(1)&gt;.jpg' in page
  assert 'my &lt;b&gt;photos' in page


def test_report_renders_in_chromium(photo_run, tmp_path, browser):
  from selenium.webdriver.common.by import By

  config, workdir = photo_run
  config.report.runs, config.report.grid_size = (workdir,), 2
  summary = report.report(config, str(tmp_path / 'out'))
  browser.get('file://' + os.path.abspath(summary['written']['html']))
  browser.execute_script(
    'return Promise.all([...document.images].map(i => i.decode().catch(() => null)))'
  )
  images = browser.find_elements(By.TAG_NAME, 'img')
  sources = [i.get_attribute('src') for i in images]
  # The per-fold bars, the scatter plot, 2 most and 2 least memorable thumbnails.
  assert len(images) == 6, sources
  widths = browser.execute_script('return [...document.images].map(i => i.naturalWidth)')
  assert all(w > 0 for w in widths), list(zip(sources, widths, strict=True))
  assert not any(s.endswith('/x') for s in sources)
  tables = browser.find_elements(By.TAG_NAME, 'table')
  assert len(tables) == 1
  rows = tables[0].find_elements(By.CSS_SELECTOR, 'tbody tr')
  assert len(rows) == 1 and rows[0].find_elements(By.TAG_NAME, 'td')[0].text == 'my <b>photos'
  assert len(browser.find_elements(By.TAG_NAME, 'b')) == 0
  text = browser.find_element(By.TAG_NAME, 'body').text
  assert EVIL in text and 'predicted 0.990' in text
