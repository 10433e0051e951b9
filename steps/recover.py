"""`recover`: write what runs could not write because their tracking store went away, and end them.

When the store does not answer for --store-timeout seconds, a run gives up on it and keeps
what it could not write (metrics, and how it should end) in a spill file, one JSON line a
value, under GDLAB_SPILL_DIR (default ~/.cache/gdlab/spill/<run id>.jsonl). Once the store
answers again, this writes each file's metrics to its run (with their steps and timestamps),
sets the run's failure_reason and ends it, if it is still open, then deletes the file.
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


@command(examples=("python -m steps.recover",))
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def recover(files: tuple[Path, ...]):
    """Write the metrics that runs kept in spill files when their tracking store went away, and
    end those runs (default: every file in GDLAB_SPILL_DIR, else ~/.cache/gdlab/spill)."""
    from steps.run import tracking

    if not files:
        where = tracking.spill_dir()
        files = tuple(sorted(where.glob("*.jsonl"))) if where.is_dir() else ()
        if not files:
            click.echo(f"nothing to recover in {where}")
            return
    failed = 0
    for path in files:  # every file, whatever an earlier one held
        try:
            click.echo(replay(path))
        except click.ClickException as exc:
            click.echo(f"Error: {exc.format_message()}", err=True)
            failed += 1
    if failed:
        raise SystemExit(1)  # something could not be recovered: said above, file by file


if __name__ == "__main__":
    recover()
