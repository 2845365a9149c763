#!/usr/bin/env python3
"""Writes bench/RESULTS.md from one run of mnemos_bench (its JSON output) and
the callgrind profiles of mnemos_callgrind_pair. Called by ci/bench; every
number in the output comes from that one run (ratios are never taken across
runs). Standard library only."""

import argparse
import json
import os
import re
import subprocess

# Suffixes Google Benchmark appends to a name for options that do not change
# what is measured; stripping them gives stable keys ("pair/bare_Tlsf").
STRIP = re.compile(r"/(iterations:\d+|repeats:\d+|min_time:[0-9.]+|manual_time|real_time)(?=/|$)")
UNIT_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}

OURS = ["bare_FirstFit", "bare_Tlsf", "heap_FirstFit", "heap_Tlsf", "guard_FirstFit", "guard_Tlsf"]
PEERS = ["glibc_malloc", "mimalloc"]
BACKENDS = ["FirstFit", "Tlsf"]


class Run:
    """The results of one JSON file, by stripped name: the median of the
    repetitions when there are several, else the single run."""

    def __init__(self, path):
        with open(path) as f:
            data = json.load(f)
        self.context = data.get("context", {})
        self.errors = {}
        singles, medians, cvs = {}, {}, {}
        for b in data.get("benchmarks", []):
            k = STRIP.sub("", b.get("run_name", b["name"]))
            if b.get("error_occurred"):
                self.errors[k] = b.get("error_message", "error")
                continue
            if b.get("run_type") == "aggregate":
                if b.get("aggregate_name") == "median":
                    medians[k] = b
                elif b.get("aggregate_name") == "cv":
                    cvs[k] = b
            else:
                singles.setdefault(k, []).append(b)
        self.results = {k: medians.get(k, v[0]) for k, v in singles.items()}
        self.cvs = cvs

    def has(self, k):
        return k in self.results

    def cpu(self, k):
        """Per-thread CPU time per iteration, ns (the default measure)."""
        b = self.results.get(k)
        return None if b is None else b["cpu_time"] * UNIT_NS[b["time_unit"]]

    def real(self, k):
        """Wall (or manual) time per iteration, ns."""
        b = self.results.get(k)
        return None if b is None else b["real_time"] * UNIT_NS[b["time_unit"]]

    def counter(self, k, name):
        b = self.results.get(k)
        return None if b is None else b.get(name)

    def cv(self, k):
        b = self.cvs.get(k)
        return None if b is None else b["cpu_time"]  # a fraction, for cv


def fmt(v, digits=1, unit=""):
    if v is None:
        return "n/a"
    if abs(v) >= 1000:
        return f"{v:,.0f}{unit}"
    return f"{v:.{digits}f}{unit}"


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


# --- callgrind --------------------------------------------------------------------

def read_callgrind(path, steps):
    """Totals per pair of each event (Ir, Bc, Bcm, ...) from a callgrind file."""
    events, totals = None, None
    with open(path) as f:
        for line in f:
            if line.startswith("events:"):
                events = line.split()[1:]
            elif line.startswith("summary:") or line.startswith("totals:"):
                totals = [int(x) for x in line.split()[1:]]
    if events is None or totals is None:
        return None
    return {e: t / steps for e, t in zip(events, totals)}


def short_function(name):
    name = name.split("???:")[-1]
    name = re.sub(r"\s*\[.*\]$", "", name)
    # Drop parameter lists and template arguments: enough to recognise a function.
    depth, out = 0, []
    for ch in name:
        if ch in "(<":
            depth += 1
        elif ch in ")>":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out).strip()


def top_functions(path, steps, limit=8):
    """Self instructions per pair of the costliest functions (callgrind_annotate)."""
    try:
        text = subprocess.run(["callgrind_annotate", "--inclusive=no", path], capture_output=True,
                              text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    rows, in_table = [], False
    for line in text.splitlines():
        if "file:function" in line:
            in_table = True
            continue
        if not in_table:
            continue
        m = re.match(r"\s*([\d,]+)\s", line)
        if not m:
            continue
        tokens = line.split()
        fn_at = next((i for i, t in enumerate(tokens) if ":" in t and not t.endswith("%)")), None)
        if fn_at is None:
            continue
        rows.append((int(m.group(1).replace(",", "")) / steps, short_function(" ".join(tokens[fn_at:]))))
    return rows[:limit]


# --- the report -------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", required=True)
    ap.add_argument("--callgrind-dir")
    ap.add_argument("--callgrind-steps", type=int, default=100000)
    ap.add_argument("--callgrind-note", default="")
    ap.add_argument("--command", required=True)
    ap.add_argument("--compiler", default="unknown")
    ap.add_argument("--load", default="")
    ap.add_argument("--wall", default="")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    r = Run(args.json)
    out = []
    w = out.append

    # Callgrind profiles, if ci/bench could run valgrind.
    cg, cg_top = {}, {}
    if args.callgrind_dir and os.path.isdir(args.callgrind_dir):
        for name in PEERS + OURS:
            p = os.path.join(args.callgrind_dir, f"callgrind.{name}.out")
            if os.path.exists(p):
                cg[name] = read_callgrind(p, args.callgrind_steps)
                cg_top[name] = top_functions(p, args.callgrind_steps)
            p = os.path.join(args.callgrind_dir, f"callgrind.{name}.unhardened.out")
            if os.path.exists(p):
                cg[name + "/unhardened"] = read_callgrind(p, args.callgrind_steps)

    cpu_model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass

    w("# Benchmark results\n")
    w("Generated by `ci/bench` from one run of `mnemos_bench` (Google Benchmark) and "
      "`mnemos_callgrind_pair`; every ratio below is taken between numbers of that one run. "
      "Do not edit by hand: rerun `ci/bench`.\n")
    w("## Machine and command\n")
    w(f"- CPU: {cpu_model}; `nproc` = {os.cpu_count()}")
    w(f"- Compiler: {args.compiler}; CMake preset `bench` (the `release` flags, `-O3 -DNDEBUG`, plus the benchmarks)")
    ctx = r.context
    w(f"- Google Benchmark {ctx.get('library_build_type', '?')} library build "
      "(Debian's libbenchmark reports `debug`: that concerns the harness library, not the code measured)")
    w(f"- Peers in the same process: glibc `malloc` defined in `{ctx.get('malloc_defined_in', '?')}`; "
      f"mimalloc `mi_malloc` from `{ctx.get('mimalloc_loaded_from', '?')}` (dlopen'ed: Debian's "
      "libmimalloc overrides malloc when linked)")
    w(f"- `MNEMOS_HARDENING` = {ctx.get('MNEMOS_HARDENING', '?')} (encoded, validated block headers; "
      "the default on 64-bit targets)")
    if args.load:
        w(f"- Load average (1/5/15 min) {args.load}")
    if args.wall:
        w(f"- Wall time of `ci/bench`: {args.wall}")
    w(f"- Command: `{args.command}`")
    w("- Times are medians over the repetitions, **per-thread CPU time** unless said otherwise "
      "(the machine is shared; CPU time leaves out time spent descheduled). "
      "cv = coefficient of variation of the repetitions.\n")

    if r.errors:
        w("**Benchmarks that reported an error:**\n")
        for k, msg in sorted(r.errors.items()):
            w(f"- `{k}`: {msg}")
        w("")

    # --- targets ---------------------------------------------------------------
    targets = []  # (target, measured, limit, met, margin text, why)

    def le(name, measured, limit, why_missed="", unit="ns"):
        if measured is None or limit is None:
            targets.append((name, "n/a", "n/a", "not measured", "", ""))
            return
        met = measured <= limit
        margin = (measured / limit - 1) * 100
        text = f"{abs(margin):.0f}% {'under' if met else 'over'} the limit"
        targets.append((name, fmt(measured, 2, unit), fmt(limit, 2, unit), "met" if met else "**missed**", text,
                        "" if met else why_missed))

    def ge(name, measured, limit, why_missed="", unit=""):
        if measured is None:
            targets.append((name, "n/a", fmt(limit, 1, unit), "not measured", "", ""))
            return
        met = measured >= limit
        text = f"{abs(measured - limit):.1f} points {'above' if met else 'below'}"
        targets.append((name, fmt(measured, 1, unit), fmt(limit, 1, unit), "met" if met else "**missed**", text,
                        "" if met else why_missed))

    def instr(name, ev="Ir"):
        return cg.get(name, {}).get(ev) if cg.get(name) else None

    # 1. bare TLSF pair <= 1.0x glibc.
    tlsf, glibc = r.cpu("pair/bare_Tlsf"), r.cpu("pair/glibc_malloc")
    why = ""
    if cg:
        why = (f"Profile (callgrind, per pair): bare_Tlsf {fmt(instr('bare_Tlsf'), 0)} instructions and "
               f"{fmt(instr('bare_Tlsf', 'Bcm'), 2)} mispredicted conditional branches; glibc "
               f"{fmt(instr('glibc_malloc'), 0)} and {fmt(instr('glibc_malloc', 'Bcm'), 2)}. glibc serves this "
               "loop from its tcache (per-size LIFO lists, no coalescing, no splitting), while TLSF splits on "
               "every allocation and merges and re-files on every free; the mispredictions are TLSF's "
               "data-dependent split/merge/fragment branches (see detail/tlsf.hpp).")
    le("bare TLSF pair ≤ 1.0× glibc malloc (benchmark 1)", tlsf, glibc, why)

    # 2. TLSF worst case at 5,000 holes <= 2x its fresh pair.
    for who in ["bare_Tlsf", "heap_Tlsf"]:
        worst, fresh = r.cpu(f"fragmented/{who}/holes:5000"), r.cpu(f"fragmented/{who}/holes:0")
        le(f"{who}: worst case at 5,000 holes ≤ 2× the same pair on a fresh arena (benchmark 3)", worst,
           None if fresh is None else 2 * fresh, "")
        pair1 = r.cpu(f"pair/{who}")
        le(f"{who}: worst case at 5,000 holes ≤ 2× its benchmark-1 pair (the other reading of \"fresh pair\")",
           worst, None if pair1 is None else 2 * pair1, "")

    # Utilisation >= 95%.
    ge("bare TLSF: ≥ 95% of a 1 MiB arena usable (benchmark 4, user bytes / region)",
       r.counter("utilisation/bare_Tlsf", "payload_pct"), 95.0,
       "The region also holds TLSF's mark bitmap (1.6%) and list heads; requests are rounded to 8 bytes "
       "(3.5 B per block on average, 16 B minimum).", "%")

    # Heap per call <= 1.2 x (bare + 4 exchanges); Guard <= 1.2 x bare.
    x4 = r.cpu("atomic_exchange/x4")
    for b in BACKENDS:
        bare, heap, guard = r.cpu(f"pair/bare_{b}"), r.cpu(f"pair/heap_{b}"), r.cpu(f"pair/guard_{b}")
        why = ""
        if cg.get(f"heap_{b}") and cg.get(f"bare_{b}"):
            extra = instr(f"heap_{b}") - instr(f"bare_{b}")
            bare_fns = {fn for _, fn in cg_top.get(f"bare_{b}", [])}
            parts = [f"`{fn}` {n:.0f}" for n, fn in cg_top.get(f"heap_{b}", []) if fn not in bare_fns]
            why = (f"Profile (callgrind, per pair): the Heap executes {extra:.0f} instructions more than the "
                   f"bare backend ({fmt(instr(f'heap_{b}'), 0)} vs {fmt(instr(f'bare_{b}'), 0)}); four "
                   "exchanges are four of them. Self instructions per pair in the heap's own functions: "
                   + ", ".join(parts) + ". The excess over the atomics is the heap's per-call work outside "
                   "the lock word: layout checks, writing and validating the block header, statistics "
                   "counters, the drain and waiter checks around each lock and unlock.")
            un = instr(f"heap_{b}/unhardened")
            if un is not None:
                why += (f" Built with `MNEMOS_HARDENING=0` the same Heap executes {un:.0f} instructions per "
                        f"pair ({un - instr(f'bare_{b}'):.0f} over bare): the header hardening accounts for "
                        f"{instr(f'heap_{b}') - un:.0f} of the excess.")
        le(f"Heap<{b}> per-call pair ≤ 1.2 × (bare pair + 4 uncontended exchanges)", heap,
           None if bare is None or x4 is None else 1.2 * (bare + x4), why)
        why = ""
        if cg.get(f"guard_{b}") and cg.get(f"bare_{b}"):
            extra = instr(f"guard_{b}") - instr(f"bare_{b}")
            why = (f"Profile (callgrind, per pair): through the Guard the heap executes {extra:.0f} "
                   f"instructions more than the bare backend ({fmt(instr(f'guard_{b}'), 0)} vs "
                   f"{fmt(instr(f'bare_{b}'), 0)}): no atomics, but the same per-call work as above.")
            un = instr(f"guard_{b}/unhardened")
            if un is not None:
                why += (f" With `MNEMOS_HARDENING=0`: {un:.0f} instructions per pair "
                        f"({un - instr(f'bare_{b}'):.0f} over bare).")
        le(f"Heap<{b}> through a held Guard ≤ 1.2 × bare pair", guard, None if bare is None else 1.2 * bare, why)

    def free_path_note(b):
        fns = [(n, fn) for n, fn in cg_top.get(f"heap_{b}", [])
               if fn.endswith(("Heap::owner_of", "Heap::free_any_context", "Heap::free_raw"))
               or fn == "mnemos::detail::deallocate"]
        if not fns:
            return ""
        return (" Callgrind, self instructions per free in the heap's free-path functions (measured in the "
                "pair loop, where the same functions serve the immediate free): "
                + ", ".join(f"`{fn}` {n:.0f}" for n, fn in fns) + " instructions.")

    # Deferred push <= 2 x one exchange.
    x1 = r.cpu("atomic_exchange/x1")
    for b in BACKENDS:
        k = f"deferred_push/heap_{b}/batch:4096"
        push = None if r.real(k) is None else r.real(k) / 4096
        le(f"Heap<{b}> deferred push ≤ 2 × one uncontended exchange (benchmark 5)", push,
           None if x1 is None else 2 * x1,
           "A deferred free is the whole `Heap::free_raw` path: the layout check, reading (and, with "
           "`MNEMOS_HARDENING=1`, validating and scrubbing) the block header, the lock word's load and push "
           "CAS, and (in src/heap.cpp as measured) a second locked RMW, the `deferred_pending_` statistics "
           "counter's fetch_add: two locked RMWs plus the checks, where the target allows the cost of two "
           "exchanges with nothing else." + free_path_note(b))

    # Box overhead exactly one pointer for sizeof(T) >= 16 (word-multiple sizes, alignment <= 8).
    for b in BACKENDS:
        bad, seen = [], 0
        for k in r.results:
            m = re.match(rf"overhead/box_{b}/T:(\d+)a(\d+)$", k)
            if not m:
                continue
            size, align = int(m.group(1)), int(m.group(2))
            if size >= 16 and size % 8 == 0 and align <= 8:
                seen += 1
                ov = r.counter(k, "overhead_bytes")
                if ov != 8:
                    bad.append(f"T:{size}a{align} → {ov}")
        if seen == 0:
            targets.append((f"Box<T> overhead = 8 B ({b})", "n/a", "8 B", "not measured", "", ""))
        else:
            targets.append((f"Box<T> overhead exactly one pointer for sizeof(T) ≥ 16 ({b}; {seen} types, "
                            "sizes multiples of 8, alignment ≤ 8)", "8 B" if not bad else "; ".join(bad),
                            "8 B", "met" if not bad else "**missed**", "", ""))

    w("## Targets of issue 7\n")
    w("| target | measured | limit | result | margin |")
    w("|---|---|---|---|---|")
    for t in targets:
        w(f"| {t[0]} | {t[1]} | {t[2]} | {t[3]} | {t[4]} |")
    w("")
    missed = [t for t in targets if t[5]]
    if missed:
        w("### Why the missed targets are missed\n")
        for t in missed:
            w(f"- **{t[0]}**: {t[4]}. {t[5]}")
        w("")

    # --- 1: pair ---------------------------------------------------------------------
    w("## 1. Alloc + free pair (1,000 live blocks, 8..512 B, fixed seed)\n")
    w("ns per pair; ratios are ours / peer (below 1: faster than the peer). Bare backends get the "
      "block the Heap would ask for (payload + 8-byte header); the Heap gets `Layout{n, 8}`. "
      "Instructions and mispredicted branches per pair from callgrind (loop included, ~15 "
      "instructions, the same for all).\n")
    w("| allocator | ns/pair | cv | × glibc | × mimalloc | instr/pair | mispredicts/pair | instr/pair unhardened |")
    w("|---|---|---|---|---|---|---|---|")
    g, mi = r.cpu("pair/glibc_malloc"), r.cpu("pair/mimalloc")
    for name in PEERS + OURS:
        t = r.cpu(f"pair/{name}")
        cv = r.cv(f"pair/{name}")
        mis = None
        if cg.get(name):
            mis = cg[name].get("Bcm", 0) + cg[name].get("Bim", 0)
        w(f"| {name} | {fmt(t, 1)} | {fmt(None if cv is None else cv * 100, 0, '%')} | "
          f"{fmt(ratio(t, g), 2)} | {fmt(ratio(t, mi), 2)} | {fmt(instr(name), 0)} | {fmt(mis, 2)} | "
          f"{fmt(instr(name + '/unhardened'), 0) if cg.get(name + '/unhardened') else ''} |")
    w(f"\nYardsticks: one uncontended atomic exchange {fmt(x1, 2)} ns, four {fmt(x4, 2)} ns.\n")
    if args.callgrind_note:
        w(args.callgrind_note + "\n")
    if cg_top:
        w("<details><summary>Costliest functions per pair (callgrind, self instructions)</summary>\n")
        w("In mimalloc's profile `malloc` and `free` are mimalloc's own entry points (Debian's build "
          "aliases `mi_malloc`/`mi_free` to them); `measured_loop` is the driver's loop.\n")
        for name in PEERS + OURS:
            if cg_top.get(name):
                w(f"- **{name}**: " + ", ".join(f"`{fn}` {n:.0f}" for n, fn in cg_top[name]))
        w("\n</details>\n")

    # Box vs raw.
    w("### Box<T> against the raw calls it makes (same loop, fixed size)\n")
    w("| heap | sizeof(T) | Box ns/pair | raw ns/pair | Box / raw |")
    w("|---|---|---|---|---|")
    for b in BACKENDS:
        for n in [16, 64, 256]:
            bx, raw = r.cpu(f"box_pair/heap_{b}/bytes:{n}"), r.cpu(f"box_raw_pair/heap_{b}/bytes:{n}")
            if bx is not None or raw is not None:
                w(f"| {b} | {n} | {fmt(bx)} | {fmt(raw)} | {fmt(ratio(bx, raw), 2)} |")
    w("")

    # --- 2: latency --------------------------------------------------------------------
    w("## 2. Latency of single calls (ns; p50 / p99 / p99.9)\n")
    w("Each call timed alone with the TSC (lfence-fenced), the median empty measurement (below) "
      "subtracted. On a virtual machine the TSC may advance in coarse steps (values that are all "
      "multiples of ~10 ns show it), and interrupts on a shared machine dominate p99.9: compare "
      "allocators within the run, not across runs.\n")
    w("| allocator | alloc p50 | alloc p99 | alloc p99.9 | free p50 | free p99 | free p99.9 |")
    w("|---|---|---|---|---|---|---|")
    for name in PEERS + OURS:
        k = f"latency/{name}"
        if r.has(k):
            c = [r.counter(k, f) for f in ["alloc_p50_ns", "alloc_p99_ns", "alloc_p999_ns", "free_p50_ns",
                                            "free_p99_ns", "free_p999_ns"]]
            w(f"| {name} | " + " | ".join(fmt(v, 0) for v in c) + " |")
    ov = next((r.counter(f"latency/{n}", "timer_overhead_ns") for n in PEERS if r.has(f"latency/{n}")), None)
    w(f"\nTimer overhead subtracted: {fmt(ov, 1)} ns.\n")

    # --- 3: fragmented -------------------------------------------------------------------
    w("## 3. Fragmented worst case (ns per alloc + free of 256 B behind N small holes)\n")
    holes = [0, 1000, 2000, 5000]
    names = [n for n in PEERS + ["bare_FirstFit", "bare_Tlsf", "heap_FirstFit", "heap_Tlsf"]
             if r.has(f"fragmented/{n}/holes:0")]
    w("| holes | " + " | ".join(names) + " |")
    w("|---" * (len(names) + 1) + "|")
    for h in holes:
        w(f"| {h} | " + " | ".join(fmt(r.cpu(f"fragmented/{n}/holes:{h}")) for n in names) + " |")
    w("| 5000 / 0 | " + " | ".join(fmt(ratio(r.cpu(f"fragmented/{n}/holes:5000"),
                                             r.cpu(f"fragmented/{n}/holes:0")), 2) for n in names) + " |")
    w("")

    # --- 4: utilisation ------------------------------------------------------------------
    w("## 4. Utilisation (fresh 1 MiB region, 8..512 B requests until the first failure)\n")
    w("| allocator | user bytes / region | + 8-byte headers / region | blocks |")
    w("|---|---|---|---|")
    for name in ["bare_FirstFit", "bare_Tlsf", "heap_FirstFit", "heap_Tlsf"]:
        k = f"utilisation/{name}"
        if r.has(k):
            hdr = "—" if name.startswith("bare") else fmt(r.counter(k, "with_header_pct"), 1, "%")
            w(f"| {name} | {fmt(r.counter(k, 'payload_pct'), 1, '%')} | {hdr} | {fmt(r.counter(k, 'blocks'), 0)} |")
    w("\nBare backends have no header; the Heap's blocks each carry the one-word header "
      "(and the region holds the Heap's own state). The issue's references: o1heap ≈64%, TLSF (C) ≈95%.\n")

    # --- 5: deferred --------------------------------------------------------------------
    w("## 5. Deferred frees\n")
    w("Push: `Heap::free_raw` while another thread holds the lock (thread CPU time around a batch "
      "of 4,096, per free). Drain: the holder's release with those 4,096 queued (per node).\n")
    w("| heap | push ns | push / exchange | drain ns/node | frees/s, 1 thread | 2 threads | 4 threads |")
    w("|---|---|---|---|---|---|---|")
    for b in BACKENDS:
        push = r.real(f"deferred_push/heap_{b}/batch:4096")
        drain = r.real(f"deferred_drain/heap_{b}/batch:4096")
        push = None if push is None else push / 4096
        drain = None if drain is None else drain / 4096
        fps = []
        for th in [1, 2, 4]:
            t = r.real(f"concurrent_free/heap_{b}/threads:{th}")
            fps.append(None if not t else 1e9 / t)
        w(f"| {b} | {fmt(push, 2)} | {fmt(ratio(push, x1), 2)} | {fmt(drain, 2)} | "
          + " | ".join(fmt(None if v is None else v / 1e6, 1, "M") for v in fps) + " |")
    w(f"\nOne uncontended exchange: {fmt(x1, 2)} ns. Frees per second are wall-clock throughput of "
      f"all threads together (each thread frees 64-byte blocks into one shared heap, refilling its pool "
      f"untimed); with {os.cpu_count()} CPUs, more threads than CPUs measure preemption of the lock "
      "holder as much as the protocol.\n")

    # --- 6: wake --------------------------------------------------------------------------
    w("## 6. Async: from a free to the waiter's wake\n")
    w("Arena full, W futures parked (polled by hand); each free of one block hands it to the head "
      "waiter and calls its waker (inline, after the locks are released). Time from the start of the "
      "free to the waker's call, TSC, per wake.\n")
    w("| heap | " + " | ".join(f"W={n}" for n in [1, 4, 16, 64]) + " | spurious wakes per wait |")
    w("|---" * 6 + "|")
    for b in BACKENDS:
        cells, spur = [], []
        for n in [1, 4, 16, 64]:
            t = r.real(f"wake/heap_{b}/waiters:{n}")
            cells.append(fmt(None if t is None else t / n, 0))
            s = r.counter(f"wake/heap_{b}/waiters:{n}", "spurious_per_wait")
            if s is not None:
                spur.append(s)
        w(f"| {b} | " + " | ".join(cells) + f" | {fmt(max(spur) if spur else None, 3)} |")
    w("")

    # --- 7: overhead ------------------------------------------------------------------------
    w("## 7. Bytes per block (overhead = bytes taken − sizeof(T))\n")
    labels = sorted({k.split("/")[-1] for k in r.results if k.startswith("overhead/")},
                    key=lambda s: (int(re.match(r"T:(\d+)a(\d+)", s).group(1)), int(re.match(r"T:(\d+)a(\d+)", s).group(2))))
    cols = [c for c in ["box_FirstFit", "box_Tlsf", "glibc_malloc", "mimalloc"]
            if any(r.has(f"overhead/{c}/{l}") for l in labels)]
    w("| T (size a align) | " + " | ".join(f"{c} bytes (overhead)" for c in cols) + " |")
    w("|---" * (len(cols) + 1) + "|")
    for l in labels:
        cells = []
        for c in cols:
            k = f"overhead/{c}/{l}"
            cells.append(f"{fmt(r.counter(k, 'bytes_per_block'), 0)} ({fmt(r.counter(k, 'overhead_bytes'), 0)})")
        w(f"| {l[2:]} | " + " | ".join(cells) + " |")
    w("\nBox: arena bytes per block from `stats()` (header, padding, rounding). glibc: usable size + "
      "its 8-byte size word; mimalloc: its size class (page metadata not counted). Sizes that are not a "
      "multiple of 8 pay the 8-byte granule's rounding; alignment above 8 places the header one "
      "alignment before the payload (detail/block_header.hpp).\n")

    # --- 8: trace -----------------------------------------------------------------------
    w("## 8. Replay of a real program (`cmake --help-full`, 500,511 operations)\n")
    peak = next((r.counter(f"trace_replay/{n}", "peak_live_bytes") for n in PEERS + OURS
                 if r.has(f"trace_replay/{n}")), None)
    w(f"Peak live bytes of the trace: {fmt(peak, 0)}. Arena allocators replay into a region of 4× that "
      "for the timing; the smallest region (its multiple of the peak) with which the whole replay "
      "never runs out of room is found by bisection (to 0.005). All requests ask for 16-byte "
      "alignment, so each Heap block carries a 16-byte header offset.\n")
    w("| allocator | ms per replay | ns per op | × glibc | × mimalloc | smallest region / peak |")
    w("|---|---|---|---|---|---|")
    tg, tm = r.cpu("trace_replay/glibc_malloc"), r.cpu("trace_replay/mimalloc")
    for name in PEERS + ["bare_FirstFit", "bare_Tlsf", "heap_FirstFit", "heap_Tlsf"]:
        k = f"trace_replay/{name}"
        if not r.has(k) and k not in r.errors:
            continue
        t = r.cpu(k)
        ops = r.counter(k, "ops")
        w(f"| {name} | {fmt(None if t is None else t / 1e6, 2)} | {fmt(None if t is None or not ops else t / ops, 1)} | "
          f"{fmt(ratio(t, tg), 2)} | {fmt(ratio(t, tm), 2)} | "
          f"{fmt(r.counter(f'trace_min_arena/{name}', 'min_arena_x_peak'), 3)} |")
    w("")

    with open(args.out, "w") as f:
        f.write("\n".join(out))


if __name__ == "__main__":
    main()
