"""A missing reference library skips its tests on a developer's machine and fails them in CI."""

import pytest
from references import require


def test_a_missing_reference_fails_under_ci(monkeypatch):
  monkeypatch.setenv('CI', 'true')
  with pytest.raises(pytest.fail.Exception, match='memjax_no_such_reference is not installed'):
    require('memjax_no_such_reference')


@pytest.mark.parametrize('value', [None, '', '0', 'false'])
def test_a_missing_reference_skips_outside_ci(monkeypatch, value):
  if value is None:
    monkeypatch.delenv('CI', raising=False)
  else:
    monkeypatch.setenv('CI', value)
  with pytest.raises(pytest.skip.Exception, match='memjax_no_such_reference is not installed'):
    require('memjax_no_such_reference')


def test_an_installed_reference_is_imported():
  assert require('numpy').__name__ == 'numpy'
