"""Locust scenarios against local mode, with a plot of latency over time and the wakes and sleeps.

    .venv/bin/python -m loadtest.run_locust [coldburst|steady|wakesleep|all ...]
        [--users N] [--spawn-rate R] [--time SECONDS] [--out loadtest/results]

For each scenario this starts ``wakeway local`` itself (a temporary config with one workload,
``examples/local/app.py``, on loopback ports it picks), runs locust headless against it with
bounded users and time, reads the wake and sleep events from local mode's JSON log, and writes into
``<out>/<scenario>/``:

- ``report.html``: locust's HTML report; ``locust_stats.csv`` and friends: its CSVs;
- ``samples.csv``: every request (start time, latency, status, X-Wakeway-Cold-Start);
- ``latency.png``: latency of every request over time, p50/p99 per second, requests per second,
  with each wake (held -> ready) and sleep marked;
- ``events.json``, ``wakeway.log``, ``wakeway.yaml``, ``locust.log``, ``summary.json``.

Scenarios (defaults keep all three to about two minutes):

- ``coldburst``: 100 users arrive within a second at a sleeping workload that takes about a
  second to start; one start serves them all; then 30 s of warm traffic.
- ``steady``: the workload is woken first, then 20 users at 5 requests/s each for 30 s.
- ``wakesleep``: 60 s of 8 s bursts (20 users) separated by 7 s gaps, longer than the workload's
  3 s scaledownPeriod, so it sleeps and wakes in every cycle.

Exit status 1 if locust saw failures or a scenario did not wake and sleep as it should.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from loadtest.bench_coldstart import LocalMode, fetch, workload_yaml
from loadtest.common import Sleep, Wake, dist, ratio

HERE = Path(__file__).resolve().parent
LOCUSTFILES = HERE / "locust"
WORKLOAD = LOCUSTFILES / "workload.py"


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    locustfile: str
    users: int
    spawn_rate: float
    run_time: int  # seconds
    scaledown: int  # the workload's scaledownPeriod
    startup_delay: float  # the workload sleeps this long before it listens
    prewarm: bool  # wake the workload before locust starts
    direct_baseline: bool = False  # first run the same load straight at the workload
    options: tuple[str, ...] = ()  # extra locust options (defined in scenario_common.py)
    min_wakes: int = 1
    max_wakes: int | None = None
    min_sleeps: int = 0


SCENARIOS = {
    s.name: s
    for s in (
        Scenario(
            "coldburst",
            "coldburst.py",
            users=100,
            spawn_rate=100,
            run_time=30,
            scaledown=60,
            startup_delay=1.0,
            prewarm=False,
            max_wakes=1,
        ),
        Scenario(
            "steady",
            "steady.py",
            users=20,
            spawn_rate=20,
            run_time=30,
            scaledown=300,
            startup_delay=0.0,
            prewarm=True,
            direct_baseline=True,
            options=("--user-rate", "5"),
            min_wakes=0,
            max_wakes=0,
        ),
        Scenario(
            "wakesleep",
            "wakesleep.py",
            users=20,
            spawn_rate=20,
            run_time=60,
            scaledown=3,
            startup_delay=0.5,
            prewarm=False,
            options=("--on-seconds", "8", "--off-seconds", "7", "--user-rate", "5"),
            min_wakes=3,
            min_sleeps=3,
        ),
    )
}


@dataclass(frozen=True, slots=True)
class Sample:
    start: float  # wall clock
    latency_ms: float
    status: int
    cold: bool
    error: str


def read_samples(path: Path) -> list[Sample]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return [
            Sample(
                float(row["start"]),
                float(row["latency_ms"]),
                int(row["status"] or 0),
                row["cold"] == "true",
                row["error"],
            )
            for row in csv.DictReader(f)
        ]


# --- the plot ---

AT_TOP = ("data", "axes fraction")  # annotation coordinates: x in data, y at the top


def plot(
    path: Path,
    title: str,
    t0: float,
    samples: Sequence[Sample],
    wakes: Sequence[Wake],
    sleeps: Sequence[Sleep],
    direct: tuple[float, Sequence[Sample]] | None = None,
) -> None:
    """Latency of every request by its start time (log scale), p50/p99 per second, requests per
    second below; wakes as a green band (request held -> workload ready), sleeps dashed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(15, 8), layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])

    def xs(items: Sequence[Sample], origin: float = t0) -> list[float]:
        return [s.start - origin for s in items]

    def ys(items: Sequence[Sample]) -> list[float]:
        return [max(s.latency_ms, 0.01) for s in items]

    if direct is not None:
        d0, dsamples = direct
        ok = [s for s in dsamples if not s.error]
        label = f"direct to the workload, same load, separate run ({len(ok)})"
        top.scatter(xs(ok, d0), ys(ok), s=3, alpha=0.25, color="tab:gray", label=label)
    warm = [s for s in samples if not s.error and not s.cold]
    cold = [s for s in samples if not s.error and s.cold]
    failed = [s for s in samples if s.error]
    top.scatter(xs(warm), ys(warm), s=4, alpha=0.35, color="tab:blue", label=f"warm ({len(warm)})")
    label = f"cold start: held while waking ({len(cold)})"
    top.scatter(xs(cold), ys(cold), s=12, alpha=0.8, color="tab:orange", label=label)
    if failed:
        label = f"failed ({len(failed)})"
        top.scatter(xs(failed), ys(failed), s=24, marker="x", color="tab:red", label=label)

    # p50 and p99 per one-second bin of request start; NaN in empty seconds breaks the line.
    end = max([s.start - t0 for s in samples], default=1.0)
    event_times = [w.at - t0 for w in wakes] + [sl.at - t0 for sl in sleeps]
    end = max(end, *event_times, 1.0) + 1
    bins: dict[int, list[float]] = {}
    for s in samples:
        if not s.error:
            bins.setdefault(int(s.start - t0), []).append(s.latency_ms)
    seconds = list(range(int(end) + 1))
    mids = [b + 0.5 for b in seconds]
    nan = float("nan")
    p50 = [dist(bins[b])["p50"] if b in bins else nan for b in seconds]
    p99 = [dist(bins[b])["p99"] if b in bins else nan for b in seconds]
    top.plot(mids, p50, color="black", lw=1.2, label="p50 per second")
    top.plot(mids, p99, color="black", lw=1.0, ls=":", label="p99 per second")
    counts = [len(bins.get(b, [])) for b in seconds]
    bottom.bar(mids, counts, width=1.0, color="tab:blue", alpha=0.6, label="requests/s")

    for i, w in enumerate(wakes):
        ready, held = w.at - t0, w.at - t0 - w.waited
        for ax in (top, bottom):
            band = "waking: request held -> workload ready" if i == 0 else None
            ax.axvspan(held, ready, color="tab:green", alpha=0.25, lw=0, label=band)
            ax.axvline(ready, color="tab:green", lw=1.2, label="wake (ready)" if i == 0 else None)
        text = f"wake {w.ready_in * 1000:.0f} ms"
        top.annotate(text, (ready, 1.0), xycoords=AT_TOP, xytext=(3, -12),
                     textcoords="offset points", fontsize=8, color="tab:green")  # fmt: skip
    for i, sl in enumerate(sleeps):
        at = sl.at - t0
        for ax in (top, bottom):
            dashed = "sleep (stopped)" if i == 0 else None
            ax.axvline(at, color="tab:purple", lw=1.2, ls="--", label=dashed)
        top.annotate("sleep", (at, 1.0), xycoords=AT_TOP, xytext=(3, -24),
                     textcoords="offset points", fontsize=8, color="tab:purple")  # fmt: skip

    top.set_yscale("log")
    top.set_ylabel("latency (ms, log scale)")
    top.set_title(title)
    top.grid(True, which="both", alpha=0.25)
    fig.legend(*top.get_legend_handles_labels(), loc="outside right upper", fontsize=8)
    bottom.set_ylabel("requests/s")
    bottom.set_xlabel("seconds since locust started")
    bottom.grid(True, alpha=0.25)
    bottom.set_xlim(0, end)
    fig.savefig(path, dpi=100)


# --- one scenario ---


async def run_locust(sc: Scenario, host: str, out: Path) -> tuple[int, float, float, list[str]]:
    """Locust headless against ``host``, files into ``out``; exit code, start, end, problems."""
    cmd = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILES / sc.locustfile), "--headless",
        "-u", str(sc.users), "-r", f"{sc.spawn_rate:g}", "-t", f"{sc.run_time}s",
        "--stop-timeout", "5", "--host", host,
        "--html", str(out / "report.html"), "--csv", str(out / "locust"),
        "--samples-file", str(out / "samples.csv"),
        "--only-summary", "--loglevel", "WARNING", *sc.options,
    ]  # fmt: skip
    problems: list[str] = []
    limit = sc.run_time + 60
    t0 = time.time()
    with (out / "locust.log").open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log, cwd=HERE.parent
        )  # the locustfiles import loadtest.locust.scenario_common from the repository root
        try:
            code = await asyncio.wait_for(proc.wait(), limit)
        except TimeoutError:
            proc.kill()
            code = await proc.wait()
            problems.append(f"locust did not finish within {limit}s; killed")
    if code != 0:
        problems.append(f"locust exited with {code} (see {out.name}/locust.log)")
    return code, t0, time.time(), problems


def latency(samples: Sequence[Sample]) -> dict[str, dict[str, float]]:
    def secs(items: Sequence[Sample]) -> dict[str, float]:
        return dist([s.latency_ms / 1000 for s in items])

    ok = [s for s in samples if not s.error]
    return {
        "all": secs(ok),
        "warm": secs([s for s in ok if not s.cold]),
        "cold": secs([s for s in ok if s.cold]),
    }


def prepare(sc: Scenario, out: Path) -> Path:
    """Empty the scenario's result folders; write local mode's config; its path."""
    for folder in (out, out / "direct") if sc.direct_baseline else (out,):
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            if old.is_file():
                old.unlink()
    config = out / "wakeway.yaml"
    argv = [sys.executable, str(WORKLOAD), "--port", "{port}"]
    argv += ["--startup-delay", f"{sc.startup_delay:g}"]
    config.write_text(workload_yaml("app", argv, sc.scaledown))
    return config


async def run_scenario(sc: Scenario, root: Path) -> dict[str, Any]:
    out = root / sc.name
    config = prepare(sc, out)
    local = LocalMode(config, log_path=out / "wakeway.log")
    problems: list[str] = []
    direct: tuple[float, list[Sample]] | None = None
    direct_latency: dict[str, Any] = {}
    await local.start()
    try:
        if sc.prewarm:
            reply = await fetch(local.proxy_port, "/warmup")
            if reply.status != 200:
                problems.append(f"warm-up request: {reply.status} {reply.error}")
        host = f"http://127.0.0.1:{local.proxy_port}"
        if sc.direct_baseline and local.wakes:
            workload = f"http://127.0.0.1:{local.wakes[-1].port}"
            print(f"[{sc.name}] baseline: locust straight at the workload, {workload}")
            _, d0, _, more = await run_locust(sc, workload, out / "direct")
            problems += [f"direct: {p}" for p in more]
            direct = (d0, read_samples(out / "direct" / "samples.csv"))
            direct_latency = latency(direct[1])
        print(f"[{sc.name}] local mode on {host}; locust {sc.users} users for {sc.run_time}s")
        _, t0, ended, more = await run_locust(sc, host, out)
        problems += more
    finally:
        await local.stop()
    problems += [f"local mode: {p}" for p in local.problems]

    samples = read_samples(out / "samples.csv")
    wakes = [w for w in local.wakes if w.at >= t0]  # the warm-up's wake is not part of the run
    sleeps = list(local.sleeps)
    failures = sum(1 for s in samples if s.error)
    if not samples:
        problems.append("no requests recorded")
    if failures:
        problems.append(f"{failures} failed requests")
    if len(wakes) < sc.min_wakes:
        problems.append(f"{len(wakes)} wakes during the run, expected at least {sc.min_wakes}")
    if sc.max_wakes is not None and len(wakes) > sc.max_wakes:
        problems.append(f"{len(wakes)} wakes during the run, expected at most {sc.max_wakes}")
    if len(sleeps) < sc.min_sleeps:
        problems.append(f"{len(sleeps)} sleeps, expected at least {sc.min_sleeps}")

    lat = latency(samples)
    summary: dict[str, Any] = {
        "scenario": asdict(sc),
        "requests": len(samples),
        "failures": failures,
        "requests_per_s": len(samples) / max(ended - t0, 1e-9),
        "latency_s": lat,
        "wakes": len(wakes),
        "sleeps": len(sleeps),
        "start_to_ready_s": dist([w.ready_in for w in wakes]),
        "duration_s": ended - t0,
        "problems": problems,
    }
    if direct_latency:
        summary["direct_latency_s"] = direct_latency
        summary["ratio_vs_direct"] = {
            q: ratio(lat["warm"][q], direct_latency["all"][q]) for q in ("p50", "p90", "p99")
        }
    events = {
        "t0": t0,
        "wakes": [asdict(w) for w in local.wakes],
        "sleeps": [asdict(s) for s in sleeps],
    }
    (out / "events.json").write_text(json.dumps(events, indent=2) + "\n")
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    title = (
        f"{sc.name}: {sc.users} users, {sc.run_time}s, scaledownPeriod {sc.scaledown}s, "
        f"workload startup delay {sc.startup_delay:g}s - {len(samples)} requests, "
        f"{len(wakes)} wakes, {len(sleeps)} sleeps"
    )
    plot(out / "latency.png", title, t0, samples, wakes, sleeps, direct)
    print_summary(sc, summary, out)
    return summary


def fmt_ms(d: dict[str, float]) -> str:
    if not d["n"] or math.isnan(d["p50"]):
        return "-"
    return f"p50 {d['p50'] * 1000:.1f} / p99 {d['p99'] * 1000:.1f} ms (n={d['n']})"


def print_summary(sc: Scenario, s: dict[str, Any], out: Path) -> None:
    lat = s["latency_s"]
    name = f"[{sc.name}]"
    print(
        f"{name} {s['requests']} requests, {s['failures']} failed, "
        f"{s['requests_per_s']:.0f} req/s; wakes {s['wakes']}, sleeps {s['sleeps']}"
    )
    print(f"{name}   warm {fmt_ms(lat['warm'])}")
    print(f"{name}   cold {fmt_ms(lat['cold'])}")
    print(f"{name}   workload start-to-ready {fmt_ms(s['start_to_ready_s'])}")
    if "direct_latency_s" in s:
        r = s["ratio_vs_direct"]
        print(f"{name}   direct to the workload {fmt_ms(s['direct_latency_s']['all'])}")
        print(f"{name}   warm via wakeway / direct: p50 {r['p50']:.2f}, p99 {r['p99']:.2f}")
    shown = out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out
    print(f"{name}   report: {shown / 'report.html'}, plot: {shown / 'latency.png'}")
    for p in s["problems"]:
        print(f"{name}   problem: {p}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument(
        "scenarios",
        nargs="*",
        metavar="SCENARIO",
        help=f"{', '.join(SCENARIOS)} or all (the default)",
    )
    ap.add_argument("--users", type=int, help="override the scenario's users (1..1000)")
    ap.add_argument("--spawn-rate", type=float, help="override the users spawned per second")
    ap.add_argument("--time", type=int, help="override the run time in seconds (5..1800)")
    ap.add_argument("--out", type=Path, default=HERE / "results", help="results root")
    args = ap.parse_args(argv)
    unknown = set(args.scenarios) - {*SCENARIOS, "all"}
    if unknown:
        ap.error(
            f"unknown scenario {', '.join(sorted(unknown))}; choose from {', '.join(SCENARIOS)}"
        )
    if args.users is not None and not 1 <= args.users <= 1000:
        ap.error("--users must be 1..1000")
    if args.time is not None and not 5 <= args.time <= 1800:
        ap.error("--time must be 5..1800")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    chosen = args.scenarios or ["all"]
    names = list(SCENARIOS) if "all" in chosen else list(dict.fromkeys(chosen))
    failed = False
    for name in names:
        sc = SCENARIOS[name]
        if args.users is not None:
            sc = replace(sc, users=args.users)
        if args.spawn_rate is not None:
            sc = replace(sc, spawn_rate=args.spawn_rate)
        if args.time is not None:
            sc = replace(sc, run_time=args.time)
        summary = asyncio.run(run_scenario(sc, args.out))
        failed |= bool(summary["problems"])
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
