"""memjax: predicting image memorability with JAX/Flax (Squalli-Houssaini et al., ICASSP 2018)."""
