"""``python -m analysis.workshop synth|evaluate|screenshots``: the workshop's commands.

* ``synth OUT_DIR`` writes a synthetic export to ``OUT_DIR/export/`` and, outside
  it, ``labels.csv`` and ``truth.json``;
* ``evaluate OUT_DIR --labels labels.csv`` scores a run against labels (``--cases
  CASES.csv`` against the analysts' verdicts)
  (``--replay`` replays weekly as-of dates over an export instead);
* ``screenshots OUT_DIR [--docs DIR]`` renders the README's pictures from a report run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m analysis.workshop",
                                description="Synthetic exports, evaluation and screenshots.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("synth", help="write a synthetic export with planted rings")
    s.add_argument("out_dir", type=Path)
    s.add_argument("--seed", type=int, default=7)
    s.add_argument("--accounts", type=int, default=5000)
    s.add_argument("--days", type=int, default=120)
    s.add_argument("--format", choices=["csv", "csv.gz", "parquet"], default="csv")
    s.add_argument("--scenarios", default=None, help="comma-separated ring scenarios")

    e = sub.add_parser("evaluate", help="score a run's flagged rings against labels")
    e.add_argument("out_dir", type=Path, help="a run's output folder (or, with --replay, "
                                              "the export folder)")
    e.add_argument("--labels", type=Path, default=None)
    e.add_argument("--cases", type=Path, default=None,
                   help="score a tracked run against the analysts' verdicts instead of labels")
    e.add_argument("--replay", action="store_true",
                   help="replay weekly as-of dates over an export and report days to flag")
    e.add_argument("--truth", type=Path, default=None,
                   help="truth.json with each ring's first harvest (for --replay)")
    e.add_argument("--seed", type=int, default=7)
    e.add_argument("--out", type=Path, default=None, help="where --replay writes its table")

    c = sub.add_parser("screenshots", help="render docs/report.png and docs/ring_network.png "
                                           "from a report run")
    c.add_argument("out_dir", type=Path)
    c.add_argument("--docs", type=Path, default=None)
    return p


def _synth(a) -> int:
    from .synth import generate

    scen = [s.strip() for s in a.scenarios.split(",")] if a.scenarios else None
    res = generate(a.out_dir, seed=a.seed, accounts=a.accounts, days=a.days, fmt=a.format,
                   scenarios=scen)
    print(f"export in {res.export_dir} ({res.n_events:,} events); labels in {res.labels_path}")
    return 0


def _evaluate(a) -> int:
    if a.replay:
        from .replay import replay

        table = replay(a.out_dir, a.labels, truth=a.truth, seed=a.seed, out=a.out)
        print(table.to_string(index=False))
        return 0
    from .evaluate import evaluate, evaluate_verdicts

    if a.cases is not None:
        res = evaluate_verdicts(a.out_dir, a.cases)
        print(json.dumps(res, indent=2))
        return 0
    if a.labels is None:
        raise ValueError("evaluate needs --labels or --cases")
    ev = evaluate(a.out_dir, a.labels)
    for line in ev.lines():
        print(line)
    # Beside the run's folder, not in it: the run's folder holds only what the tool wrote,
    # so the next run into it is not refused (make demo twice).
    saved = a.out_dir.parent / f"{a.out_dir.name}.evaluation.json"
    saved.write_text(json.dumps(ev.as_dict(), indent=2) + "\n")
    return 0


def _screenshots(a) -> int:
    from .screens import docs_screenshots

    for path in docs_screenshots(a.out_dir, a.docs):
        print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    try:
        return {"synth": _synth, "evaluate": _evaluate, "screenshots": _screenshots}[a.command](a)
    except (ValueError, OSError) as exc:
        print(f"error: {' '.join(str(exc).split())[:300]}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
