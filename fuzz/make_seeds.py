#!/usr/bin/env python3
"""Writes the hand-made seed corpora (fuzz/corpus/<target>/<name>) and the
dictionaries (fuzz/<target>.dict).

Each seed is a short operation sequence in the encoding its target decodes
(see the target's .cpp: every value is one byte read as `byte % n`, sizes as
little-endian u16). Deterministic: rerun after changing an encoding and commit
the result. Usage: fuzz/make_seeds.py [corpus root, default fuzz/corpus]
"""
import os
import struct
import sys

FUZZ_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(FUZZ_DIR, "corpus")


def u16(v):
    return list(struct.pack("<H", v))


# --- mpsc_queue: ops 0 try_lock, 1 push(block, u16 size), 2 take_all, 3 load,
# 4 try_release, 5 release_full (+ interference: 0 none, 1 push, 2 request
# serve, 3 set_waiters(b)), 6 set_waiters(b), 7 lock_or_request_serve, 8 clear_serve
class Mpsc:
    LOCK, PUSH, TAKE, LOAD, TRY_RELEASE, RELEASE, WAITERS, SERVE, CLEAR = range(9)


def push(block, size):
    return [Mpsc.PUSH, block] + u16(size)


MPSC = {
    "lock_push3_take_release": [Mpsc.LOCK] + push(0, 16) + push(1, 32) + push(2, 48) + [Mpsc.TAKE, Mpsc.RELEASE, 0],
    "free_on_unlocked_takes_lock": push(3, 64) + [Mpsc.RELEASE, 0] + push(4, 16) + [Mpsc.RELEASE, 0],
    "push_between_load_and_cas": [Mpsc.LOCK, Mpsc.RELEASE, 1, 5] + u16(24) + [0],
    "serve_request_while_held": [Mpsc.LOCK, Mpsc.SERVE, Mpsc.RELEASE, 2, 0],
    "waiters_flag_toggle": [Mpsc.WAITERS, 1, Mpsc.LOCK, Mpsc.RELEASE, 3, 0, 0, Mpsc.WAITERS, 0],
    "snapshot_release": [Mpsc.LOCK, Mpsc.LOAD, Mpsc.TRY_RELEASE, Mpsc.LOCK] + push(6, 8) + [Mpsc.LOAD, Mpsc.TAKE, Mpsc.LOAD, Mpsc.TRY_RELEASE],
    "stale_snapshot": [Mpsc.LOCK, Mpsc.LOAD] + push(7, 8) + [Mpsc.TRY_RELEASE, Mpsc.TAKE, Mpsc.CLEAR, Mpsc.LOAD, Mpsc.TRY_RELEASE],
    "many_pushes": [Mpsc.LOCK] + sum((push(i, 16 * (i + 1)) for i in range(16)), []) + push(3, 1) + [Mpsc.RELEASE, 0],
}

# --- wait_queue: each step is [node, op, args]; ops 0 try_lock, 1
# try_lock_or_request_service, 2 release, 3 release_unless_service_requested,
# 4 push_back(size, align, waker kind, behaviour, about), 5 complete(outcome),
# 6 unlink, 7 pop_wake, 8 call(k), 9 must_wait_for_call, 10 destroy,
# 11 rebuild, 12 run_wakes, 13 new waker(kind)
LOCK, REQ, REL, REL_UNLESS, PUSHB, COMPLETE, UNLINK, POP, CALL, ASK, DESTROY, REBUILD, RUN, REWAKER = range(14)
COUNT, DESTROY_SELF, NESTED, DESTROY_NESTED, ASK_ABOUT = range(5)


def pb(node, behaviour=COUNT, about=0):
    return [node, PUSHB, 40, 3, 1, behaviour, about]


def op(node, code, *args):
    return [node, code] + list(args)


WAIT = {
    "push3_complete_run": op(0, LOCK) + pb(0) + pb(1) + pb(2) + op(1, COMPLETE, 0) + op(0, COMPLETE, 1)
    + op(0, REL) + op(0, RUN),
    "service_request_handshake": op(0, LOCK) + op(0, REQ) + op(0, REL_UNLESS) + op(0, REL_UNLESS) + op(0, REQ) + op(0, REL),
    "pop_then_call_later": op(0, LOCK) + pb(4) + op(4, COMPLETE, 0) + op(0, POP) + op(4, ASK) + op(0, REL)
    + op(0, CALL, 0) + op(4, ASK) + op(4, DESTROY) + op(4, REBUILD),
    "destroy_inside_own_call": op(0, LOCK) + pb(5, DESTROY_SELF) + op(5, COMPLETE, 0) + op(0, REL) + op(0, RUN)
    + op(5, REBUILD),
    "nested_run_wakes": op(0, LOCK) + pb(1, NESTED) + pb(2) + pb(3, DESTROY_NESTED) + op(1, COMPLETE, 0)
    + op(2, COMPLETE, 1) + op(3, COMPLETE, 2) + op(0, REL) + op(0, RUN),
    "owner_takes_before_call": op(0, LOCK) + pb(6) + op(6, COMPLETE, 0) + op(6, UNLINK) + op(0, POP) + op(0, REL),
    "ask_about_outer_frame": op(0, LOCK) + pb(7, NESTED) + pb(8, ASK_ABOUT, 7) + op(7, COMPLETE, 0)
    + op(8, COMPLETE, 0) + op(0, REL) + op(0, RUN),
    "new_waker_while_waiting": op(0, LOCK) + pb(9) + op(9, REWAKER, 1) + op(9, COMPLETE, 0) + op(9, REWAKER, 0)
    + op(0, REL) + op(0, RUN),
}

# --- first_fit: header [offset, u16 size]; steps: op 0-2 allocate(size byte,
# align byte, seed), 3 release(k), 4 fits_when_empty(size, align), 5 re-init (1/8)
ALLOC, RELEASE_FF, FITS, REINIT = 0, 3, 4, 5


def ff_header(offset, size):
    # size classes by the top two bits: 0 tiny (&63), 1 16+(&255), 2/3 (&4095)
    return [offset] + u16(0x8000 | size)


def size_small(n):  # 0..63
    return n & 63


def size_gran(n):  # multiples of 8
    return 0x40 | (n // 8)


def a(align_index):  # index into 1,2,4,8,16,32,64,128,256,1024,4096,0,3,24,2^40,2^63
    return align_index & 15


FF = {
    "fill_and_free": ff_header(0, 512) + sum(([ALLOC, size_gran(40), a(3), i] for i in range(12)), [])
    + sum(([RELEASE_FF, 0] for _ in range(12)), []),
    "aligned_front_padding": ff_header(8, 1024) + [ALLOC, size_small(24), a(6), 1, ALLOC, size_small(8), a(8), 2,
                                                   ALLOC, size_gran(64), a(10), 3, RELEASE_FF, 1, ALLOC, 1, a(7), 4],
    "misaligned_start": ff_header(5, 300) + [ALLOC, size_small(1), a(0), 1, ALLOC, size_small(17), a(4), 2,
                                             RELEASE_FF, 0, ALLOC, size_small(16), a(5), 3],
    "back_padding_rejected": ff_header(0, 64) + [ALLOC, size_small(40), a(3), 1, ALLOC, size_small(56), a(3), 2,
                                                 ALLOC, size_small(48), a(3), 3],
    "hostile_layouts": ff_header(0, 256) + [ALLOC, 0x80 | 5, a(3), 1, ALLOC, 0, a(12), 2, ALLOC, 16, a(11), 3,
                                            FITS, 0x80 | 5, a(15), FITS, size_gran(248), a(9), ALLOC, 16, a(14), 4],
    "tiny_arena_refused": [3] + u16(12) + [ALLOC, 1, a(0), 1],
    "merge_both_sides": ff_header(0, 512) + [ALLOC, 24, a(3), 1, ALLOC, 24, a(3), 2, ALLOC, 24, a(3), 3,
                                             ALLOC, 24, a(3), 4, RELEASE_FF, 0, RELEASE_FF, 1, RELEASE_FF, 0],
    "reinit": ff_header(0, 200) + [ALLOC, 24, a(3), 1, REINIT, 0, 9] + u16(0x4000 | 100) + [ALLOC, 8, a(4), 2],
}

# --- tlsf: first_fit's encoding; header size classes by the top two bits:
# 0 small (&255, init may refuse), 1 160+(&511), 2/3 (&16383). Size byte
# 0x88..0x8F: relative to the largest free block (-0,-1,-8,-9,-16,-64,-255,+8).
def tlsf_header(offset, size):
    return [offset] + u16(0x8000 | size)


def near(k):
    return 0x88 | k


TLSF = {
    "fill_and_free": tlsf_header(0, 1024) + sum(([ALLOC, size_gran(40), a(3), i] for i in range(16)), [])
    + sum(([RELEASE_FF, 0] for _ in range(16)), []),
    "aligned_front_padding": tlsf_header(8, 2048) + [ALLOC, size_small(24), a(6), 1, ALLOC, size_small(8), a(8), 2,
                                                     ALLOC, size_gran(64), a(10), 3, RELEASE_FF, 1, ALLOC, 1, a(7), 4],
    "misaligned_start": tlsf_header(5, 600) + [ALLOC, size_small(1), a(0), 1, ALLOC, size_small(17), a(4), 2,
                                               RELEASE_FF, 0, ALLOC, size_small(16), a(5), 3],
    "fragments_merge": tlsf_header(0, 1024) + [ALLOC, size_small(24), a(3), 1, ALLOC, size_small(16), a(4), 2,
                                               ALLOC, size_small(24), a(5), 3, RELEASE_FF, 1, RELEASE_FF, 0,
                                               RELEASE_FF, 0],
    "exact_largest": tlsf_header(0, 4000) + [ALLOC, size_gran(200), a(3), 1, ALLOC, near(0), a(3), 2,
                                             RELEASE_FF, 0, ALLOC, near(7), a(3), 3, ALLOC, near(2), a(6), 4],
    "hostile_layouts": tlsf_header(0, 512) + [ALLOC, 0x80 | 5, a(3), 1, ALLOC, 0, a(12), 2, ALLOC, 16, a(11), 3,
                                              FITS, 0x80 | 5, a(15), FITS, size_gran(248), a(9), ALLOC, 16, a(14), 4],
    "small_region_refused": [3] + u16(100) + [ALLOC, 1, a(0), 1],
    "many_holes": tlsf_header(0, 8000) + sum(([ALLOC, size_small(24), a(3), i] for i in range(40)), [])
    + sum(([RELEASE_FF, i] for i in range(20)), []) + [ALLOC, size_gran(60), a(8), 9, ALLOC, near(1), a(3), 8],
    "reinit": tlsf_header(0, 400) + [ALLOC, 24, a(3), 1, REINIT, 0, 9] + u16(0x4000 | 300) + [ALLOC, 8, a(4), 2],
}

# --- heap_ops: header byte (arena size index low 3 bits: 96,160,256,400,640,
# 1024,2048,4096; start offset bits 3-5; bit 6: also try the refused
# bootstraps), then steps (see heap_ops.cpp Harness::step).
SYNC_RAW, SYNC_TYPED, DROP, GUARD, UNGUARD, POLL, FUTURE, REPOLL, DROP_FUT, STOP, CLOSE, EXERCISE, CHECK, FILL, \
    FREE_ODD, BURST = range(16)
# layout: size byte (top bits: 0 -> 1+(c&63), 1 -> 1+u16%1024, 2 -> hostile, 3 -> 8*(c&63)), align byte
# (0x0N: index N into 1,2,4,...,4096,2^30,0,3,24,2^63; else c%5 into 1,2,4,8,16)
FLAG, POLL_INLINE, POLL_FREE, POLL_DESTROY, DESTROY_INLINE, POLL_OTHER = range(6)


# raw: the route byte's bit 0 sends it through the Guard (when one is held);
# bits 1-2 both set: on the second heap (B).
def raw(size_byte, align_byte, seed=7, via_guard=0, heap_b=False):
    return [SYNC_RAW, size_byte, align_byte, via_guard | (6 if heap_b else 0), seed]


# typed: the via-Guard byte is read only while a Guard is held (held=True).


def typed(kind, type_, n=3, held=False, via_guard=1, seed=9):
    return [SYNC_TYPED, kind, type_, n] + ([via_guard] if held else []) + [seed]


def fut_box(type_, mode=FLAG, token=False, poll=True):
    # kind 0, type, n, seed, token byte (0 -> with a token), mode, [stop now? (only
    # with a token; 0 -> yes)], poll now? (0 -> no)
    return [FUTURE, 0, type_, 0, 5, 0 if token else 1, mode] + ([1] if token else []) + [1 if poll else 0]


def fut_raw(size_byte, align_byte, mode=FLAG):
    return [FUTURE, 5, 0, 0, 3, 1, size_byte, align_byte, mode, 1]


HEAP = {
    "raw_alloc_free": [0x05] + raw(40, 3) + raw(0xC0 | 8, 4) + [DROP, 0, 0, DROP, 0, 1],
    "typed_all_kinds": [0x06] + typed(0, 1) + typed(1, 3) + typed(2, 0, 5) + typed(3, 2, 4) + typed(4, 1, 6)
    + [EXERCISE, 1, 1, EXERCISE, 4, 0, 42, EXERCISE, 4, 2, 1],
    "fill_then_waiter_woken_by_free": [0x00, FILL, 30, 3] + fut_box(3) + [DROP, 0, 0, REPOLL, 0],
    "waiters_fifo_inline": [0x01, FILL, 20, 3] + fut_box(2, POLL_INLINE) + fut_box(2, POLL_FREE)
    + fut_box(2, POLL_DESTROY) + [FREE_ODD, 0, DROP, 0, 0],
    "guard_deferred_frees": [0x02] + raw(24, 3) + raw(24, 3) + raw(24, 3) + [GUARD, DROP, 0, 1, DROP, 0, 1]
    + raw(16, 3, via_guard=1) + [DROP, 1, 2, CHECK, UNGUARD],
    "guard_then_waiter_served_on_release": [0x00, FILL, 30, 3, GUARD] + fut_box(0) + [DROP, 2, 0, UNGUARD, REPOLL, 0],
    "cancel_and_close": [0x01, FILL, 10, 2] + fut_box(1, FLAG, token=True) + fut_box(1) + [STOP, 0, DROP_FUT, 0, CLOSE, 0]
    + raw(8, 3),
    "hostile_layouts": [0x45] + raw(0x80 | 3, 3) + raw(0x80 | 0, 3) + raw(8, 0x0C) + raw(8, 0x0D) + raw(0x80 | 1, 3)
    + raw(8, 0x0B) + typed(2, 0, 0) + fut_raw(0x80 | 2, 3),
    "large_waiter_not_starved": [0x03, FILL, 24, 3, FREE_ODD, 1] + fut_raw(0xC0 | 0x20, 3) + fut_box(0) + raw(8, 3)
    + [DROP, 0, 0, DROP, 0, 0, DROP, 0, 0],
    "destroy_inline_orphan": [0x00, FILL, 30, 3] + fut_box(3, DESTROY_INLINE) + fut_box(3) + [DROP, 3, 0, DROP, 5, 0],
    "other_heap_freed_through_guard": [0x03] + raw(24, 3, heap_b=True) + raw(40, 4, heap_b=True) + raw(16, 3)
    + [GUARD, DROP, 0, 2, DROP, 0, 1, UNGUARD, DROP, 0, 0],
    "poll_other_takes_before_wake": [0x01, FILL, 20, 3] + fut_box(2, POLL_OTHER) + fut_box(2) + fut_box(2)
    + [GUARD, DROP, 0, 0, DROP, 0, 0, DROP, 0, 0, UNGUARD, 0, REPOLL, 1, DROP, 0, 0],
    "burst": [0x02, FILL, 12, 1, BURST, 3, 1, FLAG, POLL_INLINE, POLL_FREE, POLL_DESTROY, FREE_ODD, 0, POLL],
}

# --- misuse: header byte (bit 0 TLSF, bits 1-2 arena size), then steps (see
# misuse.cpp): 0 alloc [size, align index], 1 free [i], 2 guard free [i],
# 3 guard toggle, 4 poll, 5 misuse [kind, index, arg]; kinds 0 double free,
# 1 interior, 2 global, 3 header byte flip, 4 misaligned, 5 bad layout,
# 6 other size class.
def m_alloc(size, align_index=3):
    return [0, size, align_index]


def m_misuse(kind, index=0, arg=0):
    return [5, kind, index, arg]


MISUSE = {
    "double_free": [0x06] + m_alloc(24) + m_alloc(24) + m_alloc(24) + [1, 1] + m_misuse(0),
    "double_free_tlsf": [0x07] + m_alloc(24) + m_alloc(24) + [1, 0] + m_misuse(0),
    "double_free_aligned": [0x06] + m_alloc(100, 6) + m_alloc(8) + [1, 0] + m_misuse(0),
    "double_free_deferred": [0x06] + m_alloc(24) + m_alloc(40) + [3, 1, 0] + m_misuse(0) + [3],
    "interior": [0x06] + m_alloc(120) + m_misuse(1, 0, 2),
    "global": [0x04] + m_alloc(24) + m_misuse(2, 0, 0) + m_misuse(2, 0, 1),
    "header_flips": [0x06] + m_alloc(24) + m_alloc(64, 6) + sum((m_misuse(3, i, a) for i in range(2)
                                                               for a in (0x08, 0x31, 0xFA, 0x47)), []),
    "misaligned": [0x06] + m_alloc(24) + m_misuse(4, 0, 3),
    "bad_layout_guard": [0x06] + m_alloc(24) + [3] + m_misuse(5, 0, 1) + m_misuse(5, 0, 2) + [3],
    "other_size_class": [0x07] + m_alloc(24) + m_alloc(200, 5) + m_misuse(6, 1, 4),
    "mixed": [0x05] + m_alloc(8) + m_alloc(16, 4) + m_alloc(48, 6) + [2, 1] + m_misuse(0) + [4] + m_alloc(30)
    + m_misuse(3, 2, 0x1B) + [3, 1, 0] + m_misuse(1, 0, 0) + [3, 4],
}

CORPORA = {"mpsc_queue": MPSC, "wait_queue": WAIT, "first_fit": FF, "tlsf": TLSF, "heap_ops": HEAP,
           "misuse": MISUSE}

for target, seeds in CORPORA.items():
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(bytes(b & 0xFF for b in data))
    print(f"{target}: {len(seeds)} seeds in {d}")

# --- dictionaries: whole operations, so a mutation can splice one in.
DICTS = {
    "mpsc_queue": [
        ("lock", [0]), ("push_16", [1, 0, 16, 0]), ("push_big", [1, 5, 0xFF, 0xFF]), ("take_all", [2]), ("load", [3]),
        ("try_release", [4]), ("release_quiet", [5, 0]), ("release_push_mid", [5, 1, 3, 8, 0]),
        ("release_serve_mid", [5, 2]), ("release_waiters_mid", [5, 3, 1]), ("waiters_on", [6, 1]),
        ("waiters_off", [6, 0]), ("request_serve", [7]), ("clear_serve", [8]),
    ],
    "wait_queue": [
        ("lock", [0, 0]), ("request", [0, 1]), ("release", [0, 2]), ("release_unless", [0, 3]),
        ("push_count", pb(0)), ("push_destroy_self", pb(1, DESTROY_SELF)), ("push_nested", pb(2, NESTED)),
        ("push_destroy_nested", pb(3, DESTROY_NESTED)), ("push_ask", pb(4, ASK_ABOUT)),
        ("push_empty_waker", [5, PUSHB, 40, 3, 0, 0, 0]), ("complete_ready", [0, 5, 0]), ("complete_closed", [1, 5, 1]),
        ("complete_cancelled", [2, 5, 2]), ("unlink", [0, 6]), ("pop", [0, 7]), ("call", [0, 8, 0]), ("ask", [0, 9]),
        ("destroy", [0, 10]), ("rebuild", [0, 11]), ("run_wakes", [0, 12]), ("rewaker", [0, 13, 1]),
    ],
    "first_fit": [
        ("alloc_small", [0, 24, 3, 1]), ("alloc_aligned64", [0, 8, 6, 2]), ("alloc_aligned4096", [0, 16, 10, 3]),
        ("alloc_gran", [0, 0x48, 3, 4]), ("alloc_zero", [0, 0, 3, 5]), ("alloc_huge", [0, 0x85, 3, 6]),
        ("alloc_bad_align", [0, 8, 12, 7]), ("release_first", [3, 0]), ("release_last", [3, 0xFF]),
        ("fits", [4, 0x45, 3]), ("reinit", [5, 0]),
    ],
    "tlsf": [
        ("alloc_small", [0, 24, 3, 1]), ("alloc_aligned64", [0, 8, 6, 2]), ("alloc_aligned4096", [0, 16, 10, 3]),
        ("alloc_gran", [0, 0x48, 3, 4]), ("alloc_zero", [0, 0, 3, 5]), ("alloc_huge", [0, 0x85, 3, 6]),
        ("alloc_bad_align", [0, 8, 12, 7]), ("alloc_largest", [0, 0x88, 3, 8]), ("alloc_above_largest", [0, 0x8F, 3, 9]),
        ("alloc_largest_aligned", [0, 0x8A, 8, 10]), ("release_first", [3, 0]), ("release_last", [3, 0xFF]),
        ("fits", [4, 0x45, 3]), ("reinit", [5, 0]),
    ],
    "heap_ops": [
        ("raw_small", raw(24, 3)), ("raw_aligned", raw(40, 6)), ("raw_gran", raw(0xC8, 3)), ("raw_huge", raw(0x83, 3)),
        ("raw_zero", raw(0x80, 3)), ("raw_bad_align", raw(8, 0x0D)), ("box_word", typed(0, 1, 0)),
        ("arc_wide", typed(1, 3, 0)), ("array_tiny", typed(2, 0, 5)), ("array_with", typed(3, 2, 4)),
        ("fixed_vec", typed(4, 1, 6)), ("drop_first", [DROP, 0, 0]), ("drop_free_raw", [DROP, 0, 1]),
        ("drop_guard_free", [DROP, 0, 2]), ("guard", [GUARD]), ("unguard", [UNGUARD]), ("poll", [POLL]),
        ("future_box_flag", fut_box(3)), ("future_box_inline", fut_box(3, POLL_INLINE)),
        ("future_box_free", fut_box(3, POLL_FREE)), ("future_box_destroy", fut_box(3, POLL_DESTROY)),
        ("future_box_destroy_inline", fut_box(3, DESTROY_INLINE)), ("future_token", fut_box(3, token=True)),
        ("future_raw", fut_raw(0xC8, 3)), ("future_fixed_vec", [FUTURE, 4, 2, 8, 3, 1, FLAG, 1]),
        ("repoll", [REPOLL, 0]), ("drop_future", [DROP_FUT, 0]), ("stop", [STOP, 0]), ("close", [CLOSE, 0]),
        ("exercise", [EXERCISE, 0, 1]), ("check", [CHECK]), ("fill", [FILL, 30, 3]), ("free_every_other", [FREE_ODD, 0]),
        ("burst", [BURST, 3, 1, FLAG, POLL_INLINE, POLL_FREE, POLL_DESTROY]),
    ],
    "misuse": [
        ("alloc_small", m_alloc(24)), ("alloc_aligned", m_alloc(100, 6)), ("alloc_16", m_alloc(40, 4)),
        ("free_first", [1, 0]), ("guard_free", [2, 0]), ("guard", [3]), ("poll", [4]),
        ("double_free", m_misuse(0)), ("interior", m_misuse(1, 0, 1)), ("global", m_misuse(2, 0, 1)),
        ("flip_byte0", m_misuse(3, 0, 0x08)), ("flip_byte5", m_misuse(3, 0, 0x45)), ("misaligned", m_misuse(4, 0, 2)),
        ("bad_layout", m_misuse(5, 0, 0)), ("other_size", m_misuse(6, 0, 3)),
    ],
}

for target, entries in DICTS.items():
    with open(os.path.join(FUZZ_DIR, f"{target}.dict"), "w") as f:
        f.write(f"# libFuzzer dictionary for fuzz/{target}.cpp: whole operations in its input encoding\n")
        f.write("# (opcode byte, then its arguments). Generated by fuzz/make_seeds.py.\n")
        for name, data in entries:
            f.write(name + '="' + "".join("\\x%02X" % (b & 0xFF) for b in data) + '"\n')
    print(f"{target}: {len(entries)} dictionary entries")
