"""The workshop: synthetic exports, evaluation against labels, detection quality and
benchmarks. It may use the product (``analysis``); the product never imports it, and
``pip install .`` does not ship it (``tests/test_layers.py`` checks both).

``python -m analysis.workshop synth|evaluate|screenshots`` is its command line;
``python -m analysis.workshop.quality`` and ``python -m analysis.workshop.bench``
are ``make quality`` and ``make bench``.
"""
