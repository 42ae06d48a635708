"""MLflow for nnbench: runs, trials and seed groups as MLflow runs, live and from the store."""
