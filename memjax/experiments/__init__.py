"""The experiment modes built on the training library: `baseline` (classical regressors on the
MLP's folds), `sweep` (K), `search` (Optuna), `transfer` (cross-dataset scoring) and `report`
(tables, figures and pages from finished workdirs)."""
