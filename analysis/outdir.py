"""The output folder: what ``--out`` may be, and how it is written, replaced and cleaned up.

A run (``run``, ``report``) writes into a temporary folder ``.OUT.part-PID`` beside
``OUT`` and moves it into place only when it is complete, so a run that dies halfway
leaves the previous output as it was. Every folder the tool writes carries a marker
file, :data:`MARKER`: which tool wrote it, the process, its state (``partial``,
``complete``, ``rejected``) and the files it wrote. The marker is how the tool
recognises its own folders; it never guesses from file names.

Rules for ``--out`` (:func:`check_out`):

* it may not be the export, hold the export or lie inside it; nor a file or a
  symbolic link; nor lie inside ``--previous`` (``--out`` may be ``--previous``);
* it may be missing, an empty folder, or an earlier output of the tool (the marker),
  as long as every file in it is one the tool wrote;
* any other folder is refused unless ``force``: then it is moved aside, whole, to a
  sibling ``OUT.before-ringscope-YYYYmmddTHHMMSSZ`` and the new output takes its place.
  Nothing the tool did not write is deleted or overwritten.

A run that stops on too many rejected rows keeps its quarantine
(:meth:`OutputFolder.keep_rejects`): ``OUT/rejects/`` then holds those rejects and a
``NOTE.txt``, and the rest of an earlier output stays as it was (its own rejects move
to ``OUT/rejects.previous/``).

SIGTERM, SIGHUP and Ctrl-C (:func:`interrupts`) stop a running DuckDB query, unwind
the run, remove the partial folder and end with exit code 128 + the signal number.
The next run removes the partial folders of runs that died without unwinding
(SIGKILL, power loss): folders beside ``OUT`` whose marker names a process of this
machine that is no longer alive.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

__all__ = ["MARKER", "OutputError", "Interrupted", "OutPlan", "OutputFolder", "check_out",
           "check_not_export",
           "clean_stale", "read_marker", "interrupts", "on_interrupt", "interrupted_by",
           "shielded", "interrupt_message", "exit_code"]

#: The marker file in every folder the tool writes.
MARKER = ".ringscope-output.json"
TOOL = "ringscope"
#: Names of the folders beside OUT that belong to one run of the tool.
_PART, _OLD = ".part-", ".old-"


class OutputError(ValueError):
    """``--out`` cannot be used (exit code 2); the message is one line naming the path."""


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal (SIGINT, SIGTERM, SIGHUP)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = int(signum)

    @property
    def name(self) -> str:
        try:
            return signal.Signals(self.signum).name
        except ValueError:
            return f"signal {self.signum}"


# -- the marker --------------------------------------------------------------------------------

def read_marker(folder: Path) -> dict | None:
    """The marker of ``folder`` (None when there is none, or it is not the tool's)."""
    path = Path(folder) / MARKER
    try:
        if not path.is_file() or path.stat().st_size > 10_000_000:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("tool") == TOOL else None


def _write_marker(folder: Path, **fields) -> None:
    data = {"tool": TOOL, "host": socket.gethostname(), **fields}
    tmp = folder / f"{MARKER}.tmp"
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, folder / MARKER)


def _files(folder: Path) -> list[str]:
    """Every file below ``folder`` (relative, POSIX), the marker left out."""
    out = []
    for p in folder.rglob("*"):
        if p.is_file() or p.is_symlink():
            rel = p.relative_to(folder).as_posix()
            if rel not in (MARKER, f"{MARKER}.tmp"):
                out.append(rel)
    return sorted(out)


def _empty_folders(folder: Path) -> list[str]:
    """Empty folders below ``folder`` (relative, POSIX, with a trailing ``/``): the tool
    writes none, so one there was made by someone else."""
    out = []
    for p in folder.rglob("*"):
        if p.is_dir() and not p.is_symlink() and not any(p.iterdir()):
            out.append(p.relative_to(folder).as_posix() + "/")
    return sorted(out)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:      # someone else's process: alive
        return True
    except OSError:
        return True
    return True


# -- checking --out ----------------------------------------------------------------------------

@dataclass
class OutPlan:
    """What :func:`check_out` decided: where the output goes and what happens to OUT."""

    out: Path
    #: OUT is a folder the tool did not write; with ``--force`` it is moved here first.
    backup: Path | None = None
    #: OUT holds an earlier output of the tool (its marker).
    earlier: dict | None = None


def _inside(a: Path, b: Path) -> bool:
    """Whether ``a`` is ``b`` or lies below it."""
    return a == b or b in a.parents


def _absolute(path: Path) -> Path:
    """``path`` made absolute with its parent's symbolic links resolved (not its own)."""
    path = Path(path).expanduser()
    return path.parent.resolve() / path.name if path.name else path.resolve()


def check_not_export(out: Path | str, export: Path | str, what: str = "--out") -> None:
    """Raise :class:`OutputError` when ``out`` is the export, holds it or lies inside it."""
    out_arg = Path(out)
    out = _absolute(out_arg)
    exp = Path(export).expanduser().resolve()
    for o in {out, out.resolve()}:
        if o == exp:
            raise OutputError(f"{what} {out_arg} is the export folder {exp}; the tool never "
                              f"writes into the export (choose another {what})")
        if _inside(exp, o):
            raise OutputError(f"{what} {out_arg} holds the export folder {exp}; the tool never "
                              f"replaces the export (choose another {what})")
        if _inside(o, exp):
            raise OutputError(f"{what} {out_arg} lies inside the export folder {exp}; the tool "
                              f"never writes into the export (choose another {what})")


def check_out(out: Path | str, *, export: Path | str | None = None,
              previous: Path | str | None = None, force: bool = False) -> OutPlan:
    """Check ``out`` against the rules of the module doc; raise :class:`OutputError` if it fails."""
    out_arg = Path(out)
    out = _absolute(out_arg)
    if str(out_arg).strip() == "" or out == Path(out.anchor):
        raise OutputError(f"--out {out_arg}: not a usable output folder")
    if export is not None:
        check_not_export(out_arg, export)
    if previous is not None:
        prev = _absolute(Path(previous))
        if out != prev and _inside(out, prev):
            raise OutputError(f"--out {out_arg} lies inside --previous {previous}; choose "
                              f"another --out (or --out {previous} itself)")
    if out.is_symlink():
        raise OutputError(f"--out {out_arg} is a symbolic link; give the folder itself")
    if not out.exists():
        if out.parent.exists() and not out.parent.is_dir():
            raise OutputError(f"--out {out_arg}: {out.parent} is a file, not a folder")
        return OutPlan(out)
    if not out.is_dir():
        raise OutputError(f"--out {out_arg} is a file, not a folder; the tool does not replace "
                          f"it (choose another --out)")
    try:
        entries = list(out.iterdir())
    except OSError as exc:
        raise OutputError(f"--out {out_arg}: cannot read the folder ({exc.strerror or exc})") \
            from None
    if not entries:
        return OutPlan(out)
    marker = read_marker(out)
    backup = out.with_name(f"{out.name}.before-{TOOL}-"
                           f"{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}")
    base, n = backup.name, 1
    while backup.exists():
        n += 1
        backup = backup.with_name(f"{base}-{n}")
    if marker is None:
        if force:
            return OutPlan(out, backup=backup)
        raise OutputError(f"--out {out_arg} is a folder that is not empty and was not written by "
                          f"{TOOL} (no {MARKER}); choose another --out, or add --force to move "
                          f"it aside to {backup.name} first")
    known = set(marker.get("files") or [])
    foreign = [f for f in _files(out) if f not in known] + _empty_folders(out)
    if foreign:
        if force:
            return OutPlan(out, backup=backup, earlier=marker)
        names = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3
                                          else "")
        raise OutputError(f"--out {out_arg} is an earlier output of {TOOL}, but holds files it did "
                          f"not write ({names}); move them away, or add --force to move the "
                          f"whole folder aside to {backup.name} first")
    return OutPlan(out, earlier=marker)


# -- writing -----------------------------------------------------------------------------------

class OutputFolder:
    """The partial folder of one run beside OUT, moved into place by :meth:`commit`.

    Use as a context manager: on leaving without :meth:`commit` (or
    :meth:`keep_rejects`) the partial folder is removed.
    """

    def __init__(self, plan: OutPlan, command: str):
        self.plan = plan
        self.out = plan.out
        self.command = command
        self.tmp: Path | None = None
        self.done = False
        self.notes: list[str] = []

    def __enter__(self) -> OutputFolder:
        parent = self.out.parent
        parent.mkdir(parents=True, exist_ok=True)
        clean_stale(self.out)
        pid = os.getpid()
        tmp = parent / f".{self.out.name}{_PART}{pid}"
        n = 0
        while tmp.exists() or tmp.is_symlink():
            if read_marker(tmp) is not None and not tmp.is_symlink():
                shutil.rmtree(tmp, ignore_errors=True)     # ours: a run of this same PID died
                if not tmp.exists():
                    break
            n += 1
            tmp = parent / f".{self.out.name}{_PART}{pid}-{n}"
        tmp.mkdir()
        self.tmp = tmp
        _write_marker(tmp, state="partial", pid=pid, command=self.command, started=_now())
        return self

    def __exit__(self, *exc) -> None:
        if not self.done and self.tmp is not None:
            with shielded():
                shutil.rmtree(self.tmp, ignore_errors=True)

    def _swap(self, state: str, **extra) -> None:
        """Move the partial folder into OUT (the earlier OUT aside, then removed)."""
        tmp, out = self.tmp, self.out
        with shielded():
            _write_marker(tmp, state=state, pid=os.getpid(), command=self.command,
                          finished=_now(), files=_files(tmp), **extra)
            if self.plan.backup is not None and out.exists():
                os.replace(out, self.plan.backup)
                self.notes.append(f"{out} was not an output of {TOOL}; it was moved "
                                  f"aside to {self.plan.backup}")
            old = out.parent / f".{out.name}{_OLD}{os.getpid()}"
            if out.exists():
                shutil.rmtree(old, ignore_errors=True)
                os.replace(out, old)
            os.replace(tmp, out)
            self.done = True
            if old.exists():
                shutil.rmtree(old, ignore_errors=True)

    def commit(self, **extra) -> Path:
        """The output is complete: move it into place (``extra``: more fields of its marker,
        such as what a report was made from)."""
        self._swap("complete", **extra)
        return self.out

    def keep_rejects(self, note: str) -> Path:
        """The run stopped on its rejects: keep ``rejects/`` (and a NOTE.txt) and nothing else.

        Returns the folder now holding the rejects. An earlier complete output keeps every
        file; only its ``rejects/`` moves to ``rejects.previous/``.
        """
        tmp, out = self.tmp, self.out
        with shielded():
            for p in tmp.iterdir():
                if p.name not in ("rejects", MARKER):
                    shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink()
            rej = tmp / "rejects"
            rej.mkdir(exist_ok=True)
            (rej / "NOTE.txt").write_text(note.rstrip() + "\n", encoding="utf-8")
            earlier = read_marker(out) if out.is_dir() else None
            empty = out.is_dir() and not any(out.iterdir())
            if not out.exists() or empty or (earlier or {}).get("state") == "rejected":
                self._swap("rejected", stopped=note.splitlines()[0][:300])
                return out / "rejects"
            if earlier is not None and self.plan.backup is None:
                # An earlier output: its files stay; only rejects/ changes.
                old = out / "rejects"
                if earlier.get("rejects") != "failed run":
                    prev = out / "rejects.previous"
                    if prev.exists():
                        shutil.rmtree(prev)
                    if old.exists():
                        os.replace(old, prev)
                elif old.exists():
                    shutil.rmtree(old)
                os.replace(rej, out / "rejects")
                earlier.pop("tool", None)
                earlier.pop("files", None)
                _write_marker(out, **{**earlier, "rejects": "failed run",
                                      "rejects_note": note.splitlines()[0][:300]},
                              files=_files(out))
                shutil.rmtree(tmp, ignore_errors=True)
                self.done = True
                return out / "rejects"
            # OUT is somebody else's folder: leave it alone, keep the rejects beside it.
            side = out.with_name(f"{out.name}.rejects")
            side_marker = read_marker(side) if side.is_dir() else None
            if side.exists() and (side_marker or {}).get("state") != "rejected":
                side = out.with_name(f"{out.name}.rejects-{os.getpid()}")
            _write_marker(tmp, state="rejected", pid=os.getpid(), command=self.command,
                          finished=_now(), files=_files(tmp))
            if side.exists():
                shutil.rmtree(side)
            os.replace(tmp, side)
            self.done = True
            return side / "rejects"


def clean_stale(out: Path) -> list[Path]:
    """Remove the partial folders of dead runs beside ``out``; put back a lost output.

    A folder ``.OUT.part-PID`` or ``.OUT.old-PID`` is a dead run's when its marker is
    the tool's, names this machine, and PID is not a live process. An ``.old-`` folder
    (an earlier output moved aside just before the new one moved in) goes back to OUT
    when OUT is missing; otherwise it is removed like a partial folder. Partial folders
    of dead runs into other outputs of the same folder (``.OTHER.part-PID``, marker state
    ``partial`` naming that PID) are removed too.
    """
    removed: list[Path] = []
    parent = out.parent
    if not parent.is_dir():
        return removed
    host = socket.gethostname()
    for p in sorted(parent.glob(f".{glob.escape(out.name)}.*-*")):   # the name, not a pattern
        rest = p.name[len(out.name) + 2:]          # after ".OUT."
        kind = _PART if rest.startswith(_PART[1:]) else _OLD if rest.startswith(_OLD[1:]) else None
        if kind is None or p.is_symlink() or not p.is_dir():
            continue
        try:
            pid = int(rest[len(kind) - 1:].split("-")[0])
        except ValueError:
            continue
        marker = read_marker(p)
        if marker is None or marker.get("host", host) != host:
            continue
        if pid == os.getpid() or _alive(pid):
            continue
        if kind == _OLD and not out.exists() and marker.get("state") in ("complete", "rejected"):
            os.replace(p, out)
            continue
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    # Partial folders of dead runs into other outputs in the same folder: never complete,
    # so nothing to put back; they hold real ids (ring_members.csv, rejects), so they go.
    for p in sorted(parent.glob(".*.part-*")):
        if p in removed or p.is_symlink() or not p.is_dir():
            continue
        try:
            pid = int(p.name.rsplit(".part-", 1)[1].split("-")[0])
        except (IndexError, ValueError):
            continue
        marker = read_marker(p)
        if (marker is None or marker.get("state") != "partial"
                or marker.get("host", host) != host or marker.get("pid") != pid):
            continue
        if pid == os.getpid() or _alive(pid):
            continue
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    return removed


# -- signals -----------------------------------------------------------------------------------

_lock = threading.Lock()
_callbacks: list[Callable[[], None]] = []
#: The first signal of the run (recorded by the handler or the watcher, whichever is first).
_received: list[int] = []
#: [raised, pending, shield depth, installed]
_flags = {"raised": False, "pending": False, "shield": 0, "installed": False}


def on_interrupt(callback: Callable[[], None]) -> Callable[[], None]:
    """Call ``callback`` (from a watcher thread) as soon as a signal arrives, e.g. a DuckDB
    connection's ``interrupt``. Returns a function that unregisters it."""
    with _lock:
        _callbacks.append(callback)

    def remove() -> None:
        with _lock:
            if callback in _callbacks:
                _callbacks.remove(callback)
    return remove


def interrupted_by() -> int | None:
    """The signal that stopped the run (None when none arrived)."""
    return _received[0] if _received else None


@contextmanager
def shielded() -> Iterator[None]:
    """Hold back a signal's exception while cleaning up (raised when the block ends)."""
    _flags["shield"] += 1
    try:
        yield
    finally:
        _flags["shield"] -= 1
    if _flags["shield"] == 0 and _flags["pending"]:
        _flags["pending"] = False
        _flags["raised"] = True
        raise Interrupted(_received[0])


def _record(signum: int) -> None:
    with _lock:
        if not _received:
            _received.append(int(signum))


def _handler(signum, frame) -> None:
    _record(signum)
    if _flags["raised"] or _flags["pending"]:
        return                               # one exception per run: the first signal's
    if _flags["shield"]:
        _flags["pending"] = True
        return
    _flags["raised"] = True
    raise Interrupted(_received[0])


def _watch(fd: int) -> None:
    try:
        while True:
            data = os.read(fd, 64)
            if not data or 0 in data:        # 0: the block ended
                return
            _record(data[0])
            with _lock:
                callbacks = list(_callbacks)
            for cb in callbacks:
                try:
                    cb()
                except Exception:  # noqa: BLE001 - a closed connection has nothing to stop
                    pass
    except OSError:
        return
    finally:
        os.close(fd)


@contextmanager
def interrupts() -> Iterator[None]:
    """Turn SIGINT, SIGTERM and SIGHUP into :class:`Interrupted` for the block (main thread).

    A watcher thread, woken by the signal itself, stops registered long calls
    (:func:`on_interrupt`), so a DuckDB query ends at once instead of running on.
    A signal that was ignored when the tool started (``nohup``) stays ignored.
    """
    if threading.current_thread() is not threading.main_thread() or _flags["installed"]:
        yield
        return
    sigs = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP")
                                              else [])
    previous = {}
    r, w = os.pipe()
    os.set_blocking(w, False)
    old_fd = -1
    _received.clear()
    _flags.update(raised=False, pending=False, shield=0, installed=True)
    threading.Thread(target=_watch, args=(r,), name="ringscope-signals", daemon=True).start()
    try:
        old_fd = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        for s in sigs:
            if s != signal.SIGINT and signal.getsignal(s) == signal.SIG_IGN:
                continue
            previous[s] = signal.signal(s, _handler)
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        try:
            signal.set_wakeup_fd(old_fd)
        except (ValueError, OSError):
            pass
        try:
            os.write(w, b"\0")
        except OSError:
            pass
        os.close(w)
        _flags["installed"] = False
        with _lock:
            _callbacks.clear()


def interrupt_message(signum: int) -> str:
    """The one line printed when a signal stopped the run."""
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    return (f"interrupted ({name}); the partial output was removed and the previous output "
            f"left as it was")


def exit_code(signum: int) -> int:
    """128 + the signal number: 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP."""
    return 128 + int(signum)
