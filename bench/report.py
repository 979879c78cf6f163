"""wrk output parsing and the results files (bench/results/latest.json and latest.md).

    python bench/report.py [results.json]   re-renders the markdown next to a results file
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _ms(value: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", value.strip())
    if not m:
        raise ValueError(f"not a wrk duration: {value!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(text: str) -> dict:
    """The figures of one `wrk --latency` run: requests, rps, latency percentiles in ms
    (p50/p75/p90/p99), mean/stdev/max, non-2xx and socket error counts."""
    out: dict = {"non2xx": 0, "socket_errors": 0}
    m = re.search(r"^\s*Latency\s+(\S+)\s+(\S+)\s+(\S+)", text, re.M)
    if m:
        out["latency_mean_ms"], out["latency_stdev_ms"], out["latency_max_ms"] = (
            _ms(m.group(1)), _ms(m.group(2)), _ms(m.group(3)))
    for pct, value in re.findall(r"^\s*(50|75|90|99)%\s+(\S+)\s*$", text, re.M):
        out[f"p{pct}_ms"] = _ms(value)
    m = re.search(r"^\s*(\d+) requests in ([\d.]+)(\w+), ", text, re.M)
    if m:
        out["requests"] = int(m.group(1))
        out["seconds"] = _ms(m.group(2) + m.group(3)) / 1e3
    m = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    if m:
        out["rps"] = float(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if m:
        out["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        out["socket_errors"] = sum(int(x) for x in m.groups())
    if "rps" not in out or "p50_ms" not in out:
        raise ValueError("wrk output without Requests/sec or latency distribution:\n" + text)
    return out


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100) of a non-empty list; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil(n * p / 100)
    return ordered[int(min(rank, len(ordered))) - 1]


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


# ----------------------------------------------------------------------------- markdown


def _f(value, fmt="{:.0f}", none="–"):
    return none if value is None else fmt.format(value)


def _ratio(value):
    return _f(value, "{:.2f}")


def render_markdown(res: dict) -> str:
    meta = res["meta"]
    s = meta["settings"]
    lines = [
        f"Run {meta['date']} on {meta['machine']['cpu_model']}, {meta['machine']['nproc']} cores, "
        f"{meta['machine']['mem_total_gib']:.1f} GiB; Envoy {meta['envoy_version']}, "
        f"--concurrency {s['envoy_concurrency']}; commit {meta['commit']}.",
        f"Placement: {meta['placement']}.",
        f"Load: wrk -t{s['threads']} -c{s['connections']}, {s['warmup_s']} s warm-up then "
        f"{s['duration_s']} s measured per scenario; low-load latency: wrk -t1 -c1 for "
        f"{s['latency_s']} s. Load average (1 min) at start {meta['loadavg_start'][0]:.2f}, "
        f"at end {meta['loadavg_end'][0]:.2f}.",
        f"Module: `{meta['wasm']['path']}` {meta['wasm']['bytes']} bytes "
        f"({meta['wasm']['bytes'] / 1024:.0f} KiB); no-op filter {meta['noop_wasm']['bytes']} bytes.",
        "",
        "### Throughput at 32 connections, and latency",
        "",
        "| id | scenario | req/s | vs a | vs b | p50 ms | p99 ms | 1-conn p50 us | 1-conn p99 us "
        "| +p50 us vs a (1 conn) | proxy CPU us/req | proxy CPU % | core 0 % | peak RSS MiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in res["load"]:
        if r["status"] != "ok":
            lines.append(f"| {r['id']} | {r['title']} | {r['status']}: {r.get('reason', '')} "
                         "| | | | | | | | | | | |")
            continue
        lo = r.get("low_load") or {}
        lines.append(
            f"| {r['id']} | {r['title']} | {r['rps']:.0f} | {_ratio(r.get('ratio_a'))} "
            f"| {_ratio(r.get('ratio_b'))} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} "
            f"| {_f(lo.get('p50_ms') and lo['p50_ms'] * 1e3)} "
            f"| {_f(lo.get('p99_ms') and lo['p99_ms'] * 1e3)} "
            f"| {_f(r.get('added_p50_us_low_load'), '{:+.0f}')} "
            f"| {_f(r.get('proxy_cpu_us_per_req'), '{:.1f}')} | {_f(r.get('proxy_cpu_pct'))} "
            f"| {_f(r.get('core0_cpu_pct'))} | {_f(r.get('vmhwm_kb') and r['vmhwm_kb'] / 1024, '{:.1f}')} |")
    bad = [r for r in res["load"] if r["status"] == "ok" and (r.get("non2xx") or r.get("socket_errors"))]
    for r in bad:
        lines.append(f"\n**{r['id']}: {r['non2xx']} non-2xx responses, {r['socket_errors']} socket "
                     "errors during the measured run: its figures are not valid.**")
    pr = res.get("probe") or []
    if pr:
        lines += [
            "",
            "### Where the module's host calls cost (bench/probe-filter, BENCH_PROBE=1)",
            "",
            "| id | host calls per request | req/s | vs p-none | proxy CPU us/req | + us/req vs p-none |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for r in pr:
            if r["status"] != "ok":
                lines.append(f"| {r['id']} | {r['title']} | {r['status']}: {r.get('reason', '')} | | | |")
                continue
            lines.append(f"| {r['id']} | {r['title']} | {r['rps']:.0f} | {_ratio(r.get('ratio_b'))} "
                         f"| {r['proxy_cpu_us_per_req']:.1f} "
                         f"| {_f(r.get('added_cpu_us_per_req'), '{:+.1f}')} |")
    st = res.get("streaming") or []
    if st:
        p = res["meta"]["settings"]
        lines += [
            "",
            f"### Streaming: {p['stream_requests']} sequential requests, paced upstream "
            f"({p['stream_events']} events, first after {p['stream_first_ms']} ms, then every "
            f"{p['stream_gap_ms']} ms)",
            "",
            "| id | target | TTFB p50 ms | TTFB p99 ms | first event p50 ms | first event p99 ms "
            "| whole stream p50 ms | whole stream p99 ms | first event +p50 us vs a | errors |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in st:
            if r["status"] != "ok":
                lines.append(f"| {r['id']} | {r['title']} | {r['status']}: {r.get('reason', '')} "
                             "| | | | | | | |")
                continue
            lines.append(
                f"| {r['id']} | {r['title']} | {r['ttfb_p50_ms']:.2f} | {r['ttfb_p99_ms']:.2f} "
                f"| {r['ttfe_p50_ms']:.2f} | {r['ttfe_p99_ms']:.2f} | {r['total_p50_ms']:.2f} "
                f"| {r['total_p99_ms']:.2f} | {_f(r.get('ttfe_added_p50_us'), '{:+.0f}')} "
                f"| {r['errors']} |")
    su = res.get("startup") or []
    if su:
        lines += [
            "",
            f"### Start-up (median of {res['meta']['settings']['startup_runs']} starts each; "
            "wasm trace logs on)",
            "",
            "| id | filters | start to /ready LIVE ms (1 worker) | module load+compile ms "
            "| per-VM start ms (worker) | idle RSS MiB, 1 worker | idle RSS MiB, 3 workers "
            "| per-VM RSS MiB vs a |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in su:
            lines.append(
                f"| {r['id']} | {r['filters']} | {_f(r.get('ready_ms'))} | {_f(r.get('compile_ms'))} "
                f"| {_f(r.get('per_vm_ms'), '{:.1f}')} "
                f"| {_f(r.get('rss_kb_c1') and r['rss_kb_c1'] / 1024, '{:.1f}')} "
                f"| {_f(r.get('rss_kb_c3') and r['rss_kb_c3'] / 1024, '{:.1f}')} "
                f"| {_f(r.get('per_vm_rss_kb') and r['per_vm_rss_kb'] / 1024, '{:.2f}')} |")
    notes = res.get("notes") or []
    if notes:
        lines += ["", "Notes from this run:", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def write(res: dict, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    js = out_dir / "latest.json"
    md = out_dir / "latest.md"
    js.write_text(json.dumps(res, indent=2) + "\n")
    md.write_text(render_markdown(res))
    return js, md


if __name__ == "__main__":
    path = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "results" / "latest.json")
    result = json.loads(path.read_text())
    out = path.with_suffix(".md")
    out.write_text(render_markdown(result))
    print(out)
