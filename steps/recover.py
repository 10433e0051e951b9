"""`recover`: end what a store outage or a process killed outright left open.

* Spill files: when the store does not answer for --store-timeout seconds, a run gives up on it
  and keeps what it could not write (metrics, and how it should end) in a spill file, one JSON
  line a value, under GDLAB_SPILL_DIR (default ~/.cache/gdlab/spill/<run id>.jsonl). Once the
  store answers again, this writes each file's metrics to its run (with their steps and
  timestamps), sets the run's failure_reason and ends it, if it is still open, then deletes the file.
* Orphans: a run whose process was killed outright (SIGKILL, the out-of-memory killer, a lost
  machine) stays RUNNING. Every gdlab run names its process (``gdlab.owner``: host, pid, start
  time) and refreshes ``gdlab.heartbeat`` while it is open; this ends KILLED every RUNNING run of
  the tracking store whose process is gone (on this host: no such process; on another: a
  heartbeat older than :func:`steps.run.heartbeat.stale_after_s`), with a ``failure_reason``
  that says what it saw, and never one whose process is alive.
* A sweep's temporary study journal (``gdlab-study-<pid>-*``) whose sweep is gone is removed.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from steps.cli.options import command


def read(path: Path) -> tuple[list[dict], list[str]]:
    """A spill file's good lines (parsed JSON objects), and one note per line that is not one: a
    truncated last line (a kill or a full disk leaves it) or bytes that are not UTF-8."""
    good, bad = [], []
    for number, raw in enumerate(path.read_bytes().splitlines(), 1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw.decode("utf-8"))
            if not isinstance(value, dict):
                raise ValueError("not a JSON object")
            good.append(value)
        except (UnicodeDecodeError, ValueError) as exc:
            why = "not UTF-8" if isinstance(exc, UnicodeDecodeError) else "not a JSON object (cut short?)"
            bad.append(f"{path}:{number}: {why}, skipped")
    return good, bad


def replay(path: Path) -> str:
    """Write one spill file's good lines to its run; a line of what was done. A file with lines
    that cannot be read has its good ones written and is kept as ``<file>.damaged`` (which
    `recover` no longer reads), and raises ClickException naming the bad lines."""
    import mlflow
    from mlflow.entities import Metric

    from steps.run import tracking
    from steps.run.lifecycle import NOT_DONE, end_if_open

    lines, bad = read(path)
    if not lines or "run_id" not in lines[0]:
        raise click.ClickException(f"{path}: not a gdlab spill file (no run id on its first line); the file is kept")
    head = lines[0]
    run_id, uri = head["run_id"], head.get("tracking_uri") or mlflow.get_tracking_uri()
    client = tracking.store_client(uri)
    metrics = [Metric(m["key"], m["value"], m["timestamp"], m["step"]) for m in lines if "key" in m]
    ends = [m["end"] for m in lines if "end" in m]
    try:
        status = client.get_run(run_id).info.status
    except Exception as exc:
        raise click.ClickException(f"{path}: could not read run {run_id} in {uri} ({exc}); the file is kept") from None
    if status not in NOT_DONE and metrics:
        # Someone ended it meanwhile (`mlflow runs`, the UI, a workflow closing its children): gdlab never
        # writes into a run that has ended, so its values stay where a person can read them.
        kept = path.with_name(path.name + ".ended")
        path.rename(kept)
        raise click.ClickException(
            f"{path}: run {run_id} has ended ({status}), so its {len(metrics)} metric values were not written "
            f"(gdlab never writes into a run that has ended); they are kept in {kept}"
        )
    try:
        for i in range(0, len(metrics), tracking.MAX_BATCH):
            chunk = metrics[i : i + tracking.MAX_BATCH]
            tracking.retry(lambda chunk=chunk: client.log_batch(run_id, metrics=chunk, synchronous=True))
        ended = ""
        if ends and end_if_open(client, run_id, ends[-1]["status"], ends[-1].get("failure_reason")):
            ended = f", ended {ends[-1]['status']}"
    except Exception as exc:  # the store still does not answer, or refuses: keep the file
        raise click.ClickException(f"{path}: could not write run {run_id} to {uri} ({exc}); the file is kept") from None
    done = f"run {run_id}: {len(metrics)} metric values written to {uri}{ended}"
    if bad:
        damaged = path.with_name(path.name + ".damaged")
        path.rename(damaged)
        said = f"{done}; {len(bad)} line(s) could not be read, the file is kept as {damaged}:"
        raise click.ClickException("\n".join([said, *bad]))
    path.unlink()
    return done


def orphans(client, waiting: set[str] = frozenset()) -> tuple[list[str], int]:
    """End KILLED every RUNNING run of the store whose process is gone, but those ``waiting`` for
    their spill file; (a line a run ended, how many RUNNING runs have a live process and were left alone)."""
    import datetime
    import time

    from mlflow.entities import ViewType

    from steps.run.heartbeat import stale_after_s
    from steps.run.lifecycle import HEARTBEAT_TAG, OWNER_TAG, end_if_open, live_owner

    experiments = [e.experiment_id for e in _all(client.search_experiments, view_type=ViewType.ACTIVE_ONLY)]
    running = []
    for i in range(0, len(experiments), 100):
        running += _all(client.search_runs, experiments[i : i + 100], "attributes.status = 'RUNNING'")
    ended, alive = [], 0
    for run in running:
        tags = run.data.tags
        if OWNER_TAG not in tags or run.info.run_id in waiting:
            continue  # not a gdlab run, or one from before owners: not ours to judge
        if live_owner(tags[OWNER_TAG], tags.get(HEARTBEAT_TAG)):
            alive += 1
            continue
        try:
            owner = json.loads(tags[OWNER_TAG])
            owner.get("host")
        except (ValueError, AttributeError):  # not a tag gdlab wrote: not ours to judge
            continue
        try:
            beat = float(tags.get(HEARTBEAT_TAG, "nan"))
            last = datetime.datetime.fromtimestamp(beat, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            when = f"its last heartbeat was at {last}, {time.time() - beat:.0f} s before recover looked"
        except (ValueError, OverflowError):
            when = "it never beat"
        seen = "no such process" if owner.get("host") == _host() else f"no heartbeat for over {stale_after_s():g} s"
        reason = (
            f"its process {owner.get('pid')} on {owner.get('host')} is gone ({seen}) and never closed the run "
            f"(killed outright?); {when}"
        )
        if end_if_open(client, run.info.run_id, "KILLED", reason):
            ended.append(f"run {run.info.run_id} ({run.info.run_name}): ended KILLED: {reason}")
    return ended, alive


def _host() -> str:
    import socket

    return socket.gethostname()


def _all(search, *args, **kwargs) -> list:
    """Every page of an MLflow search."""
    found, token = [], None
    while True:
        page = search(*args, max_results=1000, page_token=token, **kwargs)
        found += page
        token = page.token
        if not token:
            return found


def stale_journals() -> list[Path]:
    """The temporary study journals of sweeps that are gone (``gdlab-study-<pid>-*``, pid not alive)."""
    import os
    import re
    import tempfile

    gone = []
    for folder in Path(tempfile.gettempdir()).glob("gdlab-study-*"):
        match = re.fullmatch(r"gdlab-study-(\d+)-.*", folder.name)
        if not match or not folder.is_dir():
            continue
        try:
            os.kill(int(match.group(1)), 0)
        except ProcessLookupError:
            gone.append(folder)
        except (PermissionError, OverflowError):
            pass
    return gone


@command(examples=("python -m steps.recover",))
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def recover(files: tuple[Path, ...]):
    """End what a store outage or a killed process left open: write the metrics runs kept in spill
    files when their tracking store went away and end those runs (default: every file in
    GDLAB_SPILL_DIR, else ~/.cache/gdlab/spill); then (without FILES) end KILLED every RUNNING run
    whose process is gone, and remove the study journals of sweeps that are gone."""
    import shutil

    from steps.run import tracking

    given = bool(files)
    where = tracking.spill_dir()
    if not given:
        files = tuple(sorted(where.glob("*.jsonl"))) if where.is_dir() else ()
    failed = 0
    for path in files:  # every file, whatever an earlier one held
        try:
            click.echo(replay(path))
        except click.ClickException as exc:
            click.echo(f"Error: {exc.format_message()}", err=True)
            failed += 1
    if not given:  # then the runs nobody will end (a run whose values still wait in a spill file is not one)
        tracking.check_reachable()
        ended, alive = orphans(tracking.store_client(), waiting=_waiting(where))
        for line in ended:
            click.echo(line)
        if alive:
            click.echo(f"{alive} RUNNING run(s) have a live process: left alone")
        journals = stale_journals()
        for folder in journals:
            shutil.rmtree(folder, ignore_errors=True)
            click.echo(f"removed {folder}: the study journal of a sweep that is gone")
        if not (files or ended or alive or journals):
            click.echo(f"nothing to recover: no spill file in {where}, no run whose process is gone")
    if failed:
        raise SystemExit(1)  # something could not be recovered: said above, file by file


def _waiting(where: Path) -> set[str]:
    """The runs whose spill files are still there (`recover` could not write them)."""
    return {p.stem for p in where.glob("*.jsonl")} if where.is_dir() else set()


if __name__ == "__main__":
    recover()
