"""Pseudonyms: stand-ins for account ids, device ids and IPs in management outputs.

Management sees rings, not people. ``report.html`` and the exported charts
carry no raw account id, device id or IP; where a chart needs to tell entities
apart it shows a pseudonym that is consistent within a run:

* a ring's accounts are ``R1-A01``, ``R1-A02`` … (``R1`` = the ring of rank 1,
  numbered in the order of ``ring_members.csv``: highest account score first);
* the devices and IPs the ring used are ``R1-D01`` … and ``R1-IP01`` …, the one
  used by the most ring accounts first;
* anything else (a neighbour of a ring, a hub IP) gets a keyed token such as
  ``A-3f9c2e81`` (HMAC-SHA256 under a key made for the run), so it cannot be
  turned back into the raw id by hashing guesses.

Partner ids are not pseudonymised: partners are firms, not people. The
investigator's files (``ring_members.csv``, the executed notebook 04) keep the
real ids; :meth:`Pseudonyms.table` gives the key from pseudonym to raw id for
them, and must never be written next to management outputs.

Examples
--------
>>> ps = Pseudonyms.from_rings(
...     members=[("ring-001", "acct-9"), ("ring-001", "acct-2"), ("ring-002", "x")],
...     entities=[("ring-001", "device", "emu-1"), ("ring-001", "ip", "10.0.0.9")],
...     key=b"k")
>>> ps.account("acct-9"), ps.account("acct-2"), ps.account("x")
('R1-A01', 'R1-A02', 'R2-A01')
>>> ps.device("emu-1"), ps.ip("10.0.0.9")
('R1-D01', 'R1-IP01')
>>> ps.account("someone-else")            # not in a ring: a keyed token
'A-6a029b7d'
>>> ps.scrub("acct-9 shared emu-1 with acct-2")
'R1-A01 shared R1-D01 with R1-A02'

Free text from the export (partner names and types, partner ids) is written by the
people under investigation and may hold any id of the export. :meth:`Pseudonyms.learn_export`
scrubs every such value once against all account ids, device ids and IPs of the
export's workspace (:func:`find_ids`); from then on :meth:`Pseudonyms.scrub` and
:meth:`Pseudonyms.scrub_figure` put the scrubbed value wherever the raw one appears:

>>> ps.learn(["Contact acct-9 or x1 at 10.0.0.9 / dev emu-1"],
...          lookup=lambda c: {v: "account" for v in c if v == "x1"})
1
>>> ps.scrub("partner P7 (Contact acct-9 or x1 at 10.0.0.9 / dev emu-1)")
'partner P7 (Contact R1-A01 or A-9f21595a at R1-IP01 / dev R1-D01)'
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable

import numpy as np
import pandas as pd

__all__ = ["Pseudonyms", "ring_label", "ring_number", "leaks", "find_ids", "scrub_ids"]

_PREFIX = {"account": "A", "device": "D", "ip": "IP"}
#: Inline scripts this long are a bundled library (plotly.js), not data from the export.
_BUNDLE_CHARS = 100_000
_TOKEN = re.compile(r"[^\w.:\-]+")
#: Longest id looked for inside free text (longer ids are looked for as substrings).
_MAX_ID = 256
#: Free-text values learnt from one export, at most.
_MAX_VALUES = 200_000


def _word(c: str) -> bool:
    return c.isalnum()


def candidates(text: str, max_len: int = _MAX_ID) -> set[str]:
    """Every substring of ``text`` that could be an id in it: it starts and ends where a
    run of letters and digits starts and ends (or at any other character), holds no
    leading or trailing blank, and is at most ``max_len`` long.

    >>> sorted(candidates("at 1.2.3.4/x"))[:6]
    ['.', '.2', '.2.', '.2.3', '.2.3.', '.2.3.4']
    >>> "1.2.3.4" in candidates("at 1.2.3.4/x") and "2.3" in candidates("at 1.2.3.4/x")
    True
    >>> "1.2.3" in candidates("1.2.34")
    False
    """
    n = len(text)
    cut = [i == 0 or i == n or not (_word(text[i - 1]) and _word(text[i])) for i in range(n + 1)]
    out = set()
    for i in range(n):
        if not cut[i] or text[i].isspace():
            continue
        for j in range(i + 1, min(n, i + max_len) + 1):
            if cut[j] and not text[j - 1].isspace():
                out.add(text[i:j])
    return out


def find_ids(con):
    """A lookup over the export's workspace: which strings are account ids (or event
    targets), device ids or IPs of the export. ``lookup(strings) -> {string: kind}``."""
    import pyarrow as pa

    tables = (("accounts", "account_id", "account"), ("targets", "target_id", "account"),
              ("devices", "device_id", "device"), ("ips", "ip", "ip"))
    present = []
    for table, col, kind in tables:
        try:
            con.execute(f"SELECT {col} FROM {table} LIMIT 0")
        except Exception:  # noqa: BLE001 - a workspace without that table
            continue
        present.append((table, col, kind))

    def lookup(strings) -> dict[str, str]:
        strings = sorted({s for s in strings if s})
        if not strings or not present:
            return {}
        con.register("ringscope_candidates", pa.table({"c": pa.array(strings, pa.string())}))
        try:
            sql = " UNION ALL ".join(
                f"SELECT c, '{kind}' AS kind, {i} AS o FROM ringscope_candidates "
                f"WHERE c IN (SELECT {col} FROM {table})"
                for i, (table, col, kind) in enumerate(present))
            rows = con.execute(f"SELECT c, kind FROM ({sql}) ORDER BY o DESC").fetchall()
        finally:
            con.unregister("ringscope_candidates")
        return {c: kind for c, kind in rows}     # accounts win (ordered last)
    return lookup


def long_ids(con) -> list[tuple[str, str]]:
    """The export's ids longer than :data:`_MAX_ID` (looked for as substrings)."""
    out = []
    for table, col, kind in (("accounts", "account_id", "account"), ("targets", "target_id",
                             "account"), ("devices", "device_id", "device"), ("ips", "ip", "ip")):
        try:
            out += [(r[0], kind) for r in con.execute(
                f"SELECT {col} FROM {table} WHERE length({col}) > {_MAX_ID} LIMIT 10000"
            ).fetchall()]
        except Exception:  # noqa: BLE001
            continue
    return out


def scrub_ids(text: str, found: dict[str, str], name) -> str:
    """Replace, left to right and longest first, the substrings of ``text`` in ``found``
    (from :func:`candidates`) by ``name(kind, raw)``."""
    if not found or not text:
        return text
    n = len(text)
    best: dict[int, int] = {}
    for raw in found:
        start = text.find(raw)
        while start >= 0:
            end = start + len(raw)
            ok = ((start == 0 or not (_word(text[start - 1]) and _word(text[start])))
                  and (end == n or not (_word(text[end - 1]) and _word(text[end]))))
            if ok and end > best.get(start, -1):
                best[start] = end
            start = text.find(raw, start + 1)
    out, pos = [], 0
    for start in sorted(best):
        if start < pos:
            continue
        end = best[start]
        out.append(text[pos:start])
        out.append(name(found[text[start:end]], text[start:end]))
        pos = end
    out.append(text[pos:])
    return "".join(out)


def ring_number(ring_id: str) -> int | None:
    """The rank number in a ring id: ``ring-007`` → 7 (None when there is none).

    >>> ring_number("ring-007"), ring_number("other")
    (7, None)
    """
    m = re.search(r"(\d+)\s*$", str(ring_id))
    return int(m.group(1)) if m else None


def ring_label(ring_id: str) -> str:
    """How management reads a ring id: ``ring-007`` → ``Ring 7``.

    >>> ring_label("ring-012")
    'Ring 12'
    """
    n = ring_number(ring_id)
    return f"Ring {n}" if n is not None else str(ring_id)


class Pseudonyms:
    """Consistent pseudonyms for one run (see the module doc)."""

    def __init__(self, mapping: dict[tuple[str, str], str], key: bytes | None = None):
        self._map = dict(mapping)
        self._key = key if key is not None else secrets.token_bytes(32)
        self._scrub_re: re.Pattern | None = None
        #: Free-text values of the export that hold ids → the same text scrubbed.
        self._free: dict[str, str] = {}
        self._free_re: re.Pattern | None = None
        self._learnt_from = None

    # -- construction ------------------------------------------------------------------
    @classmethod
    def from_rings(cls, members: Iterable[tuple[str, str]],
                   entities: Iterable[tuple[str, str, str]] = (),
                   key: bytes | None = None) -> Pseudonyms:
        """Build from (ring_id, account_id) pairs in member order and
        (ring_id, kind, raw id) entities in the order to number them."""
        mapping: dict[tuple[str, str], str] = {}
        counters: dict[tuple[str, str], int] = {}

        def add(ring_id: str, kind: str, raw: str) -> None:
            if (kind, raw) in mapping:      # first (best-ranked) ring wins
                return
            n = ring_number(ring_id)
            tag = f"R{n}" if n is not None else str(ring_id)
            counters[(tag, kind)] = counters.get((tag, kind), 0) + 1
            mapping[(kind, raw)] = f"{tag}-{_PREFIX[kind]}{counters[(tag, kind)]:02d}"

        for ring_id, account_id in members:
            add(str(ring_id), "account", str(account_id))
        for ring_id, kind, raw in entities:
            add(str(ring_id), kind, str(raw))
        return cls(mapping, key)

    @classmethod
    def for_findings(cls, findings, key: bytes | None = None) -> Pseudonyms:
        """Pseudonyms for every ring of a run: its accounts, devices and IPs."""
        rings = findings.rings.rings
        members = findings.rings.members
        if len(members) == 0:
            return cls({}, key)
        order = {r: i for i, r in enumerate(rings.sort_values("rank")["ring_id"])}
        members = members.assign(_o=members["ring_id"].map(order)).sort_values(
            "_o", kind="stable")
        pairs = list(zip(members["ring_id"], members["account_id"]))
        g = findings.graph
        e = g.edges[g.edges["kind"].isin(["device", "ip"])]
        e = e[e["u"].isin(members["aid"])]
        ring_of = pd.Series(members["ring_id"].to_numpy(), index=members["aid"].to_numpy())
        keys = g.nodes.set_index("node")["key"]
        ents = pd.DataFrame({"ring_id": ring_of.reindex(e["u"]).to_numpy(), "kind": e["kind"],
                             "node": e["v"].to_numpy()})
        ents = (ents.groupby(["ring_id", "kind", "node"]).size().rename("n").reset_index())
        ents["key"] = keys.reindex(ents["node"]).to_numpy()
        ents["_o"] = ents["ring_id"].map(order)
        ents = ents.sort_values(["_o", "kind", "n", "key"], ascending=[True, True, False, True],
                                kind="stable")
        triples = list(zip(ents["ring_id"], ents["kind"], ents["key"].astype(str)))
        return cls.from_rings(pairs, triples, key)

    # -- lookup ------------------------------------------------------------------------
    def _token(self, kind: str, raw: str) -> str:
        digest = hmac.new(self._key, f"{kind}\0{raw}".encode(), hashlib.sha256).hexdigest()
        return f"{_PREFIX[kind]}-{digest[:8]}"

    def get(self, kind: str, raw) -> str:
        """The pseudonym of a raw ``kind`` ("account", "device", "ip") id ("" when missing)."""
        if raw is None or (isinstance(raw, float) and np.isnan(raw)):
            return ""
        raw = str(raw)
        return self._map.get((kind, raw)) or self._token(kind, raw)

    def account(self, raw) -> str:
        return self.get("account", raw)

    def device(self, raw) -> str:
        return self.get("device", raw)

    def ip(self, raw) -> str:
        return self.get("ip", raw)

    def node(self, kind: str, raw) -> str:
        """A graph node's label: partners keep their id, the rest are pseudonymised."""
        return str(raw) if kind == "partner" else self.get(kind, raw)

    # -- free text from the export ------------------------------------------------------
    def learn(self, values, lookup, long: list[tuple[str, str]] = ()) -> int:
        """Scrub free-text ``values`` against the export's ids (``lookup``, see
        :func:`find_ids`; ``long``: ids too long to look up, found as substrings) and
        remember each value that changed. Returns how many did."""
        values = [v for v in dict.fromkeys(values) if isinstance(v, str) and v.strip()]
        per_value = {v: candidates(v) for v in values}
        mapped = {raw for (_k, raw) in self._map}
        found = lookup(set().union(*per_value.values())) if per_value else {}
        kinds = {raw: kind for (kind, raw) in self._map}
        changed = 0
        for v, cands in per_value.items():
            hits = {c: found.get(c) or kinds[c] for c in cands if c in found or c in mapped}
            hits.update({raw: kind for raw, kind in long if raw in v})
            clean = scrub_ids(v, hits, self.get)
            if clean != v:
                self._free[v] = clean
                changed += 1
        self._free_re = None
        return changed

    def learn_export(self, con) -> Pseudonyms:
        """Learn the export's free text (partner ids, names and types) from its workspace
        ``con``, so that no id of the export inside it reaches a management output."""
        if con is None or self._learnt_from is con:
            return self
        self._learnt_from = con
        try:
            rows = con.execute(f"""
                SELECT DISTINCT v FROM (
                    SELECT CAST(partner_id AS VARCHAR) AS v FROM partners UNION ALL
                    SELECT CAST(name AS VARCHAR) FROM partners UNION ALL
                    SELECT CAST(partner_type AS VARCHAR) FROM partners)
                WHERE v IS NOT NULL LIMIT {_MAX_VALUES}""").fetchall()
        except Exception:  # noqa: BLE001 - no partners table: nothing to learn
            return self
        self.learn([r[0] for r in rows], find_ids(con), long_ids(con))
        return self

    def _free_sub(self, text: str) -> str:
        if not self._free or not text:
            return text
        if self._free_re is None:
            import html as _html

            pairs = {}
            for raw, clean in self._free.items():
                pairs[raw] = clean
                for q in (True, False):
                    pairs.setdefault(_html.escape(raw, quote=q), _html.escape(clean, quote=q))
            self._free_pairs = pairs
            alt = "|".join(re.escape(r) for r in sorted(pairs, key=len, reverse=True))
            self._free_re = re.compile(alt)
        return self._free_re.sub(lambda m: self._free_pairs[m.group(0)], text)

    def scrub_figure(self, fig):
        """``fig`` with every free-text value of the export scrubbed, in every string it
        holds (titles, labels, hover texts, custom data)."""
        if not self._free:
            return fig
        import plotly.graph_objects as go

        def walk(v):
            if isinstance(v, str):
                return self._free_sub(v)
            if isinstance(v, dict):
                return {k: walk(x) for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return type(v)(walk(x) for x in v)
            if isinstance(v, np.ndarray) and v.dtype == object:
                return np.array([walk(x) for x in v.tolist()], dtype=object)
            return v
        return go.Figure(walk(fig.to_dict()))

    def scrub(self, text: str) -> str:
        """Replace every known raw id in ``text`` by its pseudonym, and every free-text
        value of the export (:meth:`learn_export`) by its scrubbed form."""
        text = self._free_sub(text)
        if not self._map or not text:
            return text
        if self._scrub_re is None:
            raws = sorted({raw for (_, raw) in self._map}, key=len, reverse=True)
            alt = "|".join(re.escape(r) for r in raws if r)
            self._scrub_re = re.compile(rf"(?<![\w.:-])(?:{alt})(?![\w.:-])")
            self._by_raw = {}
            for (_kind, raw), p in self._map.items():
                self._by_raw.setdefault(raw, p)
        return self._scrub_re.sub(lambda m: self._by_raw[m.group(0)], text)

    def table(self) -> pd.DataFrame:
        """The key: kind, raw id, pseudonym. For the investigator only."""
        return pd.DataFrame([(k, r, p) for (k, r), p in self._map.items()],
                            columns=["kind", "raw_id", "pseudonym"])

    def __len__(self) -> int:
        return len(self._map)


def _drop_bundles(text: str) -> str:
    parts, pos = [], 0
    while True:
        start = text.find("<script", pos)
        if start < 0:
            break
        end = text.find("</script>", start)
        if end < 0:
            break
        if end - start > _BUNDLE_CHARS:
            parts.append(text[pos:start])
            pos = end + len("</script>")
        else:
            parts.append(text[pos:end])
            pos = end
    parts.append(text[pos:])
    return "".join(parts)


def leaks(text: str, raw_ids: Iterable) -> set[str]:
    """The raw ids that occur in ``text`` (an HTML page or chart) as whole tokens.

    Bundled scripts (plotly.js) are skipped. Ids made of letters, digits and
    ``. : - _`` are matched as whole tokens; any other id (say one holding
    ``<`` or a blank) is looked for as a substring, raw and HTML-escaped.

    >>> sorted(leaks('<p>R1-A01 used 10.0.0.9 and a0001</p>', ["a0001", "a000", "10.0.0.9"]))
    ['10.0.0.9', 'a0001']
    >>> leaks("x &lt;b&gt;y", ["<b>y"])
    {'<b>y'}
    """
    import html as _html

    text = _drop_bundles(text)
    ids = {str(i) for i in raw_ids if i is not None and str(i).strip()}
    plain = {i for i in ids if not _TOKEN.search(i)}
    found = set(_TOKEN.split(text)) & plain
    for i in ids - plain:
        if i in text or _html.escape(i) in text or _html.escape(i, quote=False) in text:
            found.add(i)
    return found
