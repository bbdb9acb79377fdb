"""End to end on a tiny hand-built export: export folder → flagged rings."""

import json

import pandas as pd

from analysis.cli import main


def test_tiny_export_flags_exactly_the_ring(ring_export, tmp_path):
    out = tmp_path / "out"
    assert main(["run", str(ring_export), "--out", str(out)]) == 0
    rings = pd.read_csv(out / "rings.csv")
    members = pd.read_csv(out / "ring_members.csv")
    flagged = rings[rings["flagged"]]
    assert len(flagged) == 1
    ring_id = flagged["ring_id"].iloc[0]
    assert set(members.loc[members["ring_id"] == ring_id, "account_id"]) == {"s1", "k1", "k2", "k3"}
    assert "P1" in flagged["partner_ids"].iloc[0]
    # The call centre is volume without harm: explained, not flagged.
    review = pd.read_csv(out / "partners_review.csv")
    p2 = review[review["partner_id"] == "P2"]
    assert len(p2) == 1 and not p2["flagged"].iloc[0]
    assert p2["why"].iloc[0].startswith("not flagged")


def test_outputs_and_run_record(ring_export, tmp_path):
    out = tmp_path / "out"
    assert main(["run", str(ring_export), "--out", str(out), "--seed", "3"]) == 0
    rings = pd.read_csv(out / "rings.csv")
    assert list(rings.columns[:11]) == ["ring_id", "rank", "score", "flagged", "n_accounts",
                                        "partner_ids", "first_seen", "last_seen", "profiles_read",
                                        "records_harvested", "reasons"]
    assert rings["rank"].tolist() == sorted(rings["rank"])
    assert rings["score"].is_monotonic_decreasing
    members = pd.read_csv(out / "ring_members.csv")
    assert list(members.columns) == ["ring_id", "account_id", "account_type", "partner_id",
                                     "account_score"]
    record = json.loads((out / "run.json").read_text())
    for table, c in record["tables"].items():
        assert c["accepted"] + c["rejected"] == c["rows"], table
    assert record["parameters"]["seed"] == 3
    assert set(record["inputs"]) == {"accounts", "partners", "events"}
    assert {"read_validate", "aggregate", "graph", "communities", "signals", "rings",
            "report"} <= set(record["timings_s"])
    assert (out / "report.html").read_text().count("plotly") > 0
    for t in ("accounts", "partners", "events"):
        assert (out / "rejects" / f"{t}.csv").exists()


def test_reasons_state_measured_values(ring_export, tmp_path):
    out = tmp_path / "out"
    main(["run", str(ring_export), "--out", str(out)])
    reasons = pd.read_csv(out / "rings.csv").query("flagged")["reasons"].iloc[0]
    assert "read 160 profiles of 160 users with no order from its merchants" in reasons
    assert "linked to partner P1 (promotions)" in reasons


def test_as_of_replays_the_past(ring_export, tmp_path):
    # The ring starts reading on 2020-01-13; as of the 11th nothing is knowable.
    out = tmp_path / "out"
    assert main(["run", str(ring_export), "--out", str(out), "--as-of", "2020-01-11"]) == 0
    rings = pd.read_csv(out / "rings.csv")
    assert not rings["flagged"].any() if len(rings) else True
    record = json.loads((out / "run.json").read_text())
    assert record["events_after_as_of"] > 0
    assert record["events_used"] + record["events_after_as_of"] == record["tables"]["events"]["accepted"]


def test_same_seed_same_bytes(ring_export, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    main(["run", str(ring_export), "--out", str(a), "--seed", "5"])
    main(["run", str(ring_export), "--out", str(b), "--seed", "5"])
    for name in ("rings.csv", "ring_members.csv", "partners_review.csv", "rejects/events.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


class RecordingBar:
    """A stand-in for tqdm that records what a run shows."""

    def __init__(self, total):
        self.total, self.n, self.shown, self.closed = total, 0, [], False

    def set_description_str(self, text):
        self.shown.append(text)

    def update(self, k):
        self.n += k

    def close(self):
        self.closed = True


def test_progress_names_every_step_in_order(ring_export, tmp_path):
    from analysis.pipeline import STEPS, run

    bars = []
    run(ring_export, tmp_path / "out", progress=lambda total: bars.append(RecordingBar(total))
        or bars[-1])
    (bar,) = bars
    assert bar.total == len(STEPS) == bar.n and bar.closed
    shown = [s.removeprefix("ringscope ") for s in bar.shown if s != "ringscope read_validate"]
    assert shown == list(STEPS)


def test_memory_limit_is_used_and_running_out_says_what_to_do(ring_export, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", str(ring_export), "--out", str(out), "--memory-limit", "500MB"]) == 0
    assert json.loads((out / "run.json").read_text())["parameters"]["memory_limit"] == "500MB"
    before = (out / "rings.csv").read_bytes()
    capsys.readouterr()
    # Too little memory for DuckDB to work at all: one line that names the way out, and the
    # earlier outputs stay as they were.
    assert main(["run", str(ring_export), "--out", str(out), "--memory-limit", "1MB"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: DuckDB ran out of memory") and "--memory-limit" in err
    assert "\n" not in err and "Traceback" not in err
    assert (out / "rings.csv").read_bytes() == before
