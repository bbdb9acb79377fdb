"""ringscope: find data-harvesting rings run from inside merchant-affiliate partners.

The package follows the pipeline, one module per step::

    contract  → load       export → validated tables (DuckDB workspace)
    aggregate              events → per-account activity and entity links
                           (one SQL plan; DuckDB, or Spark through ``spark``)
    graph                  accounts, devices, IPs, partners → entity graph
    communities            Louvain and kin
    signals                behaviour against the population baseline
    rings                  candidate rings, scores, flags, reasons
    charts, report         figures and report.html
    pipeline               the wiring (used by the CLI and the notebooks)

Beside it: ``synth`` (synthetic exports with planted rings), ``evaluate`` and
``replay`` (quality against labels), ``cli``.
"""

__version__ = "0.1.0"
