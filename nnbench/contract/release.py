"""Which release of nnbench this is (``nnbench.__version__``): stored with every run, bundle and plugin record."""

VERSION = "0.1.0"
