"""TensorBoard for nnbench: event files per trial and per seed group, and the HParams dashboard's table."""
