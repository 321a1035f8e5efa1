"""Kill a study at random moments and restart it: is anything lost, left running or cut short?

A tiny-model ``metapeft tune`` study (MetaPEFTSampler, SQLite storage with heartbeats,
artifacts, the Pareto plot) is started, killed after a random delay with SIGKILL or
SIGTERM, and started again, ``--kills`` times; then, once a dead worker's heartbeat is
stale (``GRACE_SECONDS`` after the last kill), it is run to its end. After every kill the
script reads the storage and every file the study wrote. It reports:

- completed trials lost: a trial seen COMPLETE after some kill and not COMPLETE at the end;
- zombies: trials still RUNNING (or WAITING) after the final run;
- duplicated experience: experience rows (``ExperienceBuffer.from_storages``) beyond one
  per finished trial;
- truncated files: a PNG without its end chunk, a JSON file or safetensors that does not
  parse, a SQLite database that fails ``PRAGMA integrity_check``, or an artifact a trial
  names that is missing;
- temporary files left: a SIGKILL cannot clean those up (SIGTERM does).

Exits non-zero when any of the first four is not 0.

    python benchmarks/faults.py                 # 20 kills, about 6 minutes
    python benchmarks/faults.py --kills 30 --seed 1
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import metapeft_optuna  # noqa: F401  (preloads BLAS before mlx)
from metapeft_optuna import schema
from metapeft_optuna.cli.resume import counted_trials
from metapeft_optuna.meta import ExperienceBuffer
from metapeft_optuna.meta.storages import GRACE_SECONDS
from metapeft_optuna.training.dashboard import TRIAL_ARTIFACTS

import optuna
from optuna.trial import TrialState

STUDY = "faults"
PNG_END = b"IEND\xaeB`\x82"


def tune_command(storage: str, trials: int, study: str = STUDY, *extra: str) -> list[str]:
    """A tiny-model ``metapeft tune`` study on parity@64 (``extra``: more options)."""
    return [
        sys.executable,
        "-c",
        "import sys; from metapeft_optuna.cli import main; sys.exit(main())",
        "tune",
        "--task",
        "parity@64",
        "--model",
        "tiny",
        "--trials",
        str(trials),
        "--eval-examples",
        "16",
        "--quiet",
        "--storage",
        storage,
        "--study-name",
        study,
        *extra,
    ]


def load(work: Path) -> optuna.Study | None:
    if not (work / "study.db").exists():
        return None
    try:
        return optuna.load_study(study_name=STUDY, storage=f"sqlite:///{work / 'study.db'}")
    except KeyError:  # killed before the study was created
        return None


def truncated_files(work: Path, study: optuna.Study | None) -> list[str]:
    """Files the study wrote that a reader cannot use, each as ``path: why``."""
    bad = []
    for path in sorted(p for p in work.rglob("*") if p.is_file()):
        if path.name.startswith(".") or path.suffix == ".log":
            continue  # temporary names are counted apart; our own log
        data = path.read_bytes()
        kind = path.suffix or _artifact_kind(data)
        try:
            if kind == ".png" and not data.endswith(PNG_END):
                raise ValueError("no PNG end chunk")
            if kind == ".json":
                json.loads(data)
            if kind == ".safetensors":
                check_safetensors(data)
            if kind == ".db":
                with sqlite3.connect(path) as db:
                    (verdict,) = db.execute("PRAGMA integrity_check").fetchone()
                if verdict != "ok":
                    raise ValueError(verdict)
        except Exception as exc:  # noqa: BLE001 - every way a file can be unusable
            bad.append(f"{path.relative_to(work)}: {exc}")
    for trial in study.get_trials(deepcopy=False) if study else ():
        for name, artifact in (trial.user_attrs.get(TRIAL_ARTIFACTS) or {}).items():
            if not (work / "artifacts" / artifact).is_file():
                bad.append(f"trial {trial.number}'s artifact {name}: missing")
    return bad


def check_safetensors(data: bytes) -> None:
    """Raise unless ``data`` is a whole safetensors file: its JSON header, then exactly
    the bytes the header's tensors span."""
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    if len(data) != 8 + size + end:
        raise ValueError(f"{len(data)} bytes, the header spans {8 + size + end}")


def _artifact_kind(data: bytes) -> str:
    """An artifact's file has no suffix: tell its kind by its first bytes."""
    if data.startswith(b"\x89PNG"):
        return ".png"
    if data[8:9] == b"{" and len(data) > 8:  # safetensors: 8-byte header length, JSON
        return ".safetensors"
    return ".json" if data.lstrip().startswith(b"{") else ""


def temporary_files(work: Path) -> list[str]:
    return sorted(str(p.relative_to(work)) for p in work.rglob(".*"))


def run(kills: int, trials: int, max_delay: float, seed: int) -> int:
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="metapeft-faults-"))
    log = open(work / "runs.log", "w")  # noqa: SIM115 - every run appends to it
    seen_complete: dict[int, tuple] = {}
    inside, truncated, start = 0, set(), time.perf_counter()
    print(f"{kills} kills of `metapeft tune` (tiny model, {trials} trials) in {work}")
    signals = [signal.SIGKILL, signal.SIGTERM]
    done_kills, runs = 0, 0
    while done_kills < kills:
        study = load(work)
        if study and counted_trials(study) >= trials - 2:  # kills land in a running study
            trials += 10
        before = {t.number: t.state for t in study.trials} if study else {}
        proc = subprocess.Popen(
            tune_command(f"sqlite:///{work / 'study.db'}", trials), stdout=log, stderr=log
        )
        runs += 1
        delay = rng.uniform(0.5, max_delay)
        try:
            proc.wait(timeout=delay)
            continue  # it ended by itself (the study reached its trials): no kill
        except subprocess.TimeoutExpired:
            chosen = rng.choice(signals)
            proc.send_signal(chosen)
            code = proc.wait()
        done_kills += 1
        study = load(work)
        after = study.trials if study else []
        hit = [
            t.number
            for t in after
            if t.state in (TrialState.RUNNING, TrialState.FAIL)
            and before.get(t.number) != t.state
            and (t.state == TrialState.RUNNING or "interrupted" in str(t.user_attrs))
        ]
        inside += bool(hit)
        for t in after:
            if t.state == TrialState.COMPLETE:
                seen_complete[t.number] = tuple(t.values)
        bad = set(truncated_files(work, study)) - truncated
        truncated.update(bad)
        print(
            f"  kill {done_kills:2d}: {signal.Signals(chosen).name} after {delay:4.1f} s, "
            f"exit {code}, {'inside trial ' + str(hit[0]) if hit else 'between trials'}; "
            f"{len(seen_complete)} complete so far" + (f"; TRUNCATED {bad}" if bad else ""),
            flush=True,
        )
    wait = GRACE_SECONDS + 5
    print(f"waiting {wait} s for dead workers' heartbeats to go stale ...", flush=True)
    time.sleep(wait)
    study = load(work)
    final = max(trials, counted_trials(study) + 3)
    code = subprocess.run(
        tune_command(f"sqlite:///{work / 'study.db'}", final), stdout=log, stderr=log
    ).returncode
    study = load(work)
    end = {t.number: t for t in study.trials}
    lost = [
        n
        for n, values in seen_complete.items()
        if n not in end or end[n].state != TrialState.COMPLETE or tuple(end[n].values) != values
    ]
    zombies = [
        t.number for t in study.trials if t.state in (TrialState.RUNNING, TrialState.WAITING)
    ]
    states = (TrialState.COMPLETE, TrialState.PRUNED)
    experience_trials = [t for t in study.get_trials(states=states) if "method" in t.params]
    experience = ExperienceBuffer.from_storages([f"sqlite:///{work / 'study.db'}"])
    exported = work / "experience.jsonl"
    experience.export_jsonl(exported)
    rows = [json.loads(line) for line in exported.read_text().splitlines()]
    duplicated = len(rows) - len(experience_trials)
    truncated.update(truncated_files(work, study))
    stale = [
        t.number
        for t in study.trials
        if t.state == TrialState.FAIL and schema.TRIAL_FAIL_REASON not in t.user_attrs
    ]
    temporary = temporary_files(work)
    counts = {s.name: 0 for s in TrialState}
    for t in study.trials:
        counts[t.state.name] += 1
    print(f"\nfinal run: exit {code}; {len(study.trials)} trials: {counts}")
    print(f"kills landing inside a trial: {inside} of {kills} ({runs} starts)")
    print(f"dead workers' trials failed by heartbeat (and retried once): {len(stale)}")
    print(f"completed trials lost:    {len(lost)} {lost or ''}")
    print(f"zombies after restart:    {len(zombies)} {zombies or ''}")
    print(
        f"duplicated experience:    {duplicated} ({len(rows)} rows, "
        f"{len(experience_trials)} finished trials)"
    )
    print(f"truncated files:          {len(truncated)} {sorted(truncated) or ''}")
    print(f"temporary files left:     {len(temporary)} (SIGKILL leaves them) {temporary or ''}")
    print(f"wall time {time.perf_counter() - start:.0f} s; logs in {work / 'runs.log'}")
    return 1 if lost or zombies or duplicated or truncated or code != 0 else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--trials", type=int, default=30, help="the study's first total")
    parser.add_argument("--max-delay", type=float, default=12.0, help="longest run, seconds")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    return run(args.kills, args.trials, args.max_delay, args.seed)


if __name__ == "__main__":
    sys.exit(main())
