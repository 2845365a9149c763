/*
 * verify/protocol.pml - the free / lock / wake protocol of mnemos-alloc, as the
 * code implements it, for the spin model checker.
 *
 * ci/spin runs it (docs/protocol.md: the protocol, the properties, the mapping
 * of every step to the code, what is abstracted and why that is sound). By hand:
 *   spin -a -DF_NOFREE -DREUSE [-DCANCEL|-DSTOP|-DCLOSE] verify/protocol.pml
 *   gcc -O0 -w -DSAFETY -DNOCLAIM -DCOLLAPSE -o pan pan.c && ./pan -m100000
 *   gcc -O0 -w -DCOLLAPSE -o pan pan.c && ./pan -a -m100000 -N live
 * (-O0: gcc -O2 takes minutes on this pan.c, longer than the search.)
 * -DF_NOFREE -DREUSE is the CI scenario; without -DF_NOFREE the Freer thread
 * frees too (the "full" scenario: ~13 M states for safety, ~34 M for live).
 * A mutant: add -DMUTANT_NO_UNLOCK_RECHECK, -DMUTANT_SUBSCRIBE_AFTER_RETRY,
 * -DMUTANT_WAKE_BEFORE_DRAIN or -DMUTANT_NO_INHIBIT_CLEAR to spin -a.
 *
 * GRANULARITY. One `atomic { }` is one step of the interleaving.
 *  - Every read-modify-write of the heap lock word (HeapLock::word_, `hw`) and
 *    of the wait-queue word (WaitQueue::word_, `qw`) is one step.
 *  - A CAS retry loop whose new value is a pure function of the value it
 *    compares against (try_lock, lock_or_push, take_all, lock_or_request_serve,
 *    try_lock_or_request_service, WaitQueue::release, release_unless_service_
 *    requested) is one step, at its successful CAS: its loads and failed CASes
 *    change nothing anyone can see, and its effect depends only on the word at
 *    the successful CAS (a failed weak CAS only repeats the loop).
 *  - Where the code loads a word and later acts on what it loaded, with real
 *    work between, the load is its own step: Heap::release_lock (load, drain or
 *    serve, then try_release against the loaded value: the unlock recheck),
 *    run_wakes' relaxed peek at WAKES_PENDING, and the fast path's relaxed
 *    has_waiters() hint.
 *  - Data guarded by a lock (the backend under the heap lock; the lists and the
 *    node fields under the wait-queue lock) is updated inside a step taken while
 *    that lock is held. The locks themselves stay held across steps, so other
 *    contexts can fail a try-lock, or leave a SERVE / SERVICE_REQUESTED
 *    request, while they are held.
 *  - A test of local variables is folded into the step that follows it.
 *  - Two steps of one context are merged where every step another context
 *    can take between them commutes with one of the two (first_poll's loads
 *    with its try_lock; alloc_locked's take_all with its inhibit check): the
 *    merge loses no behaviour. Each merge says why where it is made.
 *
 * ACTORS (each runs once: the state space is finite):
 *   Alloc(0)  a waiting allocation (AllocFuture) of 2 units, no stop token.
 *   Alloc(1)  a waiting allocation of 1 unit, with a stop token (-DSTOP).
 *             Each polls (fast path, subscribe, retry), parks until its waker
 *             runs, re-polls, and destroys its future. With -DCANCEL Alloc(0)
 *             may instead destroy its future while it is pending, at any point
 *             of the interleaving (cancellation; the block it may have been
 *             handed meanwhile goes back). With -DREUSE each then frees what it
 *             got (a thread-context free).
 *   Freer     a thread: frees a 1-unit block, then, with -DSTOP, may request
 *             stop on Alloc(1)'s token (and run its on_stop), with -DCLOSE may
 *             call Heap::close().
 *   Isr       an interrupt handler: frees a 2-unit block. It never blocks or
 *             spins: every blocking step asserts it is not the ISR.
 *   init      sets up, watches the invariants in every state, checks the
 *             quiescent state.
 * Arena: 3 units, first fit (lowest address). Initially Freer owns [0] and
 * Isr owns [1,2]: nothing is free, so both allocations can end up waiting, and
 * with Alloc(0) (2 units) at the head and only [0] free, Alloc(1) (1 unit)
 * waits behind it (FIFO, invariant 4).
 */

/* ---- constants ------------------------------------------------------------ */

/* heap lock word hw = [ deferred head (block id) << 3 | SERVE | WAITERS | LOCKED ] */
#define LOCKED   1
#define WAITERS  2
#define SERVE    4
#define FLAGS    7
#define HEAD(w)  ((w) >> 3)

/* wait-queue word qw = [ WAKES_PENDING | SERVICE_REQUESTED | QLOCKED ] */
#define QL       1
#define SR       2
#define WP       4

#define ARENA    7      /* unit mask of the 3-unit arena */
#define NBLK     5      /* block ids 1..4 (0 = none) */
#define BLK_F    1      /* Freer's block, unit [0] */
#define BLK_I    2      /* Isr's block, units [1,2] */
#define BLK(n)   (3 + (n))   /* the block waiter n receives */

/* block states (ghost bookkeeping for conservation and the deferred property) */
#define B_NONE     0    /* not carved (its units are free, or never were its) */
#define B_LIVE     1    /* owned by a user */
#define B_DEFERRED 2    /* on the deferred stack */
#define B_HANDED   3    /* carved for a waiter, in its node, not yet taken */

/* WaitNode::Where */
#define W_DETACHED 0
#define W_WAITING  1
#define W_TOWAKE   2
#define W_CALLING  3
/* WaitNode::Outcome */
#define O_NONE      0
#define O_READY     1
#define O_CLOSED    2
#define O_CANCELLED 3

#define NONE 2          /* no node */

/* Alloc(1)'s std::stop_callback */
#define CB_NONE 0       /* not registered */
#define CB_REG  1       /* registered, stop not requested */
#define CB_RUN  2       /* running on the requesting thread */
#define CB_DONE 3       /* ran, or deregistered */

/* ---- shared state ---------------------------------------------------------- */

byte hw;                /* HeapLock::word_ */
byte dnext[NBLK];       /* DeferredNode::next, by block id */
byte freemask;          /* first-fit backend: the free units */
byte bmask[NBLK];       /* units of each carved block */
byte bstate[NBLK];      /* ghost */
byte ndef;              /* ghost: blocks on the deferred stack */
bit  closed;            /* Heap::closed_ */

byte qw;                /* WaitQueue::word_ */
byte wq[2];             /* waiting list, oldest first */
byte wq_n;
byte tw[2];             /* to_wake list, oldest first */
byte tw_n;

/* WaitNode fields, by waiter */
byte where[2];
byte outcome[2];
bit  has_waker[2];      /* node_.waker is not empty (poll_raw gave one) */
bit  call_done[2];      /* WaitNode::call_done */
byte nsize[2];          /* node_.layout, in units */

/* the world around the futures */
bit  signal[2];         /* the waker was called: the owner's executor re-polls */
bit  destroyed[2];      /* ghost: ~AllocWait returned (or the future never
                           subscribed and completed): no waker call after it */
bit  stop_req;          /* Alloc(1)'s std::stop_source */
byte cb;                /* Alloc(1)'s std::stop_callback */

/* ---- invariants ------------------------------------------------------------ */

#define PC(m) (((m) & 1) + (((m) >> 1) & 1) + (((m) >> 2) & 1))
#define COUNT_IF(b, s) ((bstate[b] == (s)) -> PC(bmask[b]) : 0)
#define COUNT(s) (COUNT_IF(1, s) + COUNT_IF(2, s) + COUNT_IF(3, s) + COUNT_IF(4, s))
/* Byte conservation: free + live + deferred + handed-over = arena, and the
 * free units and the blocks partition the arena (no overlap, nothing lost). */
#define CONSERVED \
  (PC(freemask) + COUNT(B_LIVE) + COUNT(B_DEFERRED) + COUNT(B_HANDED) == 3 && \
   (freemask | bmask[1] | bmask[2] | bmask[3] | bmask[4]) == ARENA)
/* WAITERS (the inhibit flag) mirrors "the waiting list is not empty" whenever
 * nobody holds the wait-queue lock (heap_lock.hpp: set and cleared under it). */
#define WAITERS_MIRROR \
  ((qw & QL) != 0 || (((hw & WAITERS) != 0) == (wq_n > 0)))

/* first fit would find room for `sz` units now */
#define FITS(sz) (((sz) == 1 && freemask != 0) || \
                  ((sz) == 2 && ((freemask & 3) == 3 || (freemask & 6) == 6)))
/* waiter n is the head of the waiting list and its request fits */
#define HEAD_FITS(n) (where[n] == W_WAITING && wq[0] == n && FITS(nsize[n]))

/* ---- per-process scratch: the locals of the inlined C++ functions ---------- */

#define LOCALS \
  byte rl_w; bit sw_ok; bit sh_ok; byte sh_n = NONE; bit k_took; bit rq_sr; \
  byte rw_node = NONE; bit rw_waker; bit rw_sr; bit rw_took; \
  bit lp_took; byte dr; byte dt; bit rw_pk; bit sw_rl

/* Only -DREUSE needs to remember that the future returned a block. */
#ifdef REUSE
#define SET_GOT got = 1
#else
#define SET_GOT skip
#endif

/* Blocking (spinning) steps exist only in thread contexts. */
#define NOT_ISR assert(!isr)

/* ---- backend (lock holder only; inside a step) ----------------------------- */

/* FirstFit::allocate (first_fit.cpp): the lowest-addressed fit. */
inline carve(b, sz, ok) {
  if
  :: sz == 1 && (freemask & 1) != 0 -> bmask[b] = 1
  :: sz == 1 && (freemask & 1) == 0 && (freemask & 2) != 0 -> bmask[b] = 2
  :: sz == 1 && (freemask & 3) == 0 && (freemask & 4) != 0 -> bmask[b] = 4
  :: sz == 2 && (freemask & 3) == 3 -> bmask[b] = 3
  :: sz == 2 && (freemask & 3) != 3 && (freemask & 6) == 6 -> bmask[b] = 6
  :: else -> bmask[b] = 0
  fi;
  freemask = freemask & ~bmask[b];
  ok = (bmask[b] != 0)
}

/* Heap::return_block */
inline return_block(b) {
  assert(bmask[b] != 0 && (freemask & bmask[b]) == 0);   /* no double free */
  freemask = freemask | bmask[b];
  bmask[b] = 0;
  bstate[b] = B_NONE
}

/* Heap::drain_pending = HeapLock::take_all (one CAS: detach the whole stack,
 * keep the flags) + Heap::drain (return each block, newest first). */
inline drain_body() {
  dr = HEAD(hw);
  hw = hw & FLAGS;
  do
  :: dr != 0 ->
     dt = dnext[dr]; dnext[dr] = 0;
     return_block(dr);
     ndef--;
     dr = dt
  :: else -> break
  od;
  dt = 0
}

/* HeapLock::lock_or_request_serve */
#define LOCK_OR_REQUEST_SERVE(took) \
  if \
  :: (hw & LOCKED) == 0 -> hw = hw | LOCKED; took = 1 \
  :: else -> hw = hw | SERVE; took = 0 \
  fi

/* ---- wait queue lists (wait-queue lock held; inside a step) ---------------- */

#define WPBIT ((tw_n > 0) -> WP : 0)   /* WaitQueue::wakes_pending_bit */

inline wq_remove(n) {
  if
  :: wq[0] == n -> wq[0] = wq[1]
  :: else -> assert(wq[1] == n)
  fi;
  wq[1] = NONE;
  wq_n--
}

inline tw_remove(n) {
  if
  :: tw[0] == n -> tw[0] = tw[1]
  :: else -> assert(tw[1] == n)
  fi;
  tw[1] = NONE;
  tw_n--;
  if
  :: tw_n == 0 -> qw = qw & ~WP      /* set_wakes_pending(false) */
  :: else
  fi
}

/* Heap::complete_waiter = WaitQueue::complete + set_waiters(false) if empty. */
inline complete_waiter(n, o) {
  assert(where[n] == W_WAITING && outcome[n] == O_NONE);   /* completed once */
  wq_remove(n);
  outcome[n] = o;
  tw[tw_n] = n; tw_n++;
  where[n] = W_TOWAKE;
  qw = qw | WP;                      /* set_wakes_pending(true) */
#ifndef MUTANT_NO_INHIBIT_CLEAR
  if
  :: wq_n == 0 -> hw = hw & ~WAITERS /* lock_.set_waiters(false) */
  :: else
  fi
#endif
  /* MUTANT_NO_INHIBIT_CLEAR: heap.cpp Heap::complete_waiter without its
   * `if (waiters_.empty()) lock_.set_waiters(false);`. */
}

/* Heap::enqueue_waiter */
inline enqueue_waiter(n) {
  if
  :: wq_n == 0 -> hw = hw | WAITERS  /* lock_.set_waiters(true) */
  :: else
  fi;
  wq[wq_n] = n; wq_n++;
  where[n] = W_WAITING
}

/* Heap::dequeue_waiter (the node is Waiting) */
inline dequeue_waiter(n) {
  wq_remove(n);
  where[n] = W_DETACHED;
  if
  :: wq_n == 0 -> hw = hw & ~WAITERS
  :: else
  fi
}

/* WaitQueue::unlink of a node that is not Waiting */
inline unlink_not_waiting(n) {
  if
  :: where[n] == W_TOWAKE -> tw_remove(n); where[n] = W_DETACHED
  :: else                             /* Calling or Detached: left as is */
  fi
}

/* WaitQueue::lock: thread contexts spin; modelled as blocking on the bit
 * (the spin itself changes nothing). */
#define QLOCK_BLOCKING (qw & QL) == 0 -> qw = qw | QL

/* Heap::serve_head, both locks held: hand blocks to the head while it fits. */
inline serve_head() {
  do
  :: wq_n > 0 ->
     sh_n = wq[0];                   /* waiters_.front() */
     carve(BLK(sh_n), nsize[sh_n], sh_ok);
     if
     :: sh_ok ->
        bstate[BLK(sh_n)] = B_HANDED;  /* node->block = payload: handed over */
        complete_waiter(sh_n, O_READY);
        sh_n = NONE; sh_ok = 0
     :: else -> sh_n = NONE; break   /* the head does not fit: the rest waits */
     fi
  :: else -> break
  od
}

/* ---- relaxed loads: folded into the thread's previous step -----------------
 * Two relaxed loads are not steps of their own: lock_.load() in release_lock
 * (which the final try_release CAS validates), and run_wakes' wakes_pending()
 * peek. Each reads the word as of the thread's previous step: a value the C++
 * memory model allows a relaxed load there to return (it is no older than
 * anything the thread has seen of the word). A stale value is the dangerous
 * direction for both: a stale word in release_lock is what the recheck must
 * catch (MUTANT_NO_UNLOCK_RECHECK), a stale "no wakes" is what the "the holder
 * runs them" argument must cover. (See docs/protocol.md, "Abstractions".) */
#define LOAD_W rl_w = hw                      /* w = lock_.load() */
#define PEEK   rw_pk = ((qw & WP) != 0)       /* waiters_.wakes_pending() */

/* ---- Heap::serve_waiters (heap lock held; never spins) --------------------- */

/* WaitQueue::try_lock_or_request_service. If the lock is busy the request is
 * left and serve_waiters returns; sw_rl: reload w afterwards (release_lock's
 * SERVE branch) or keep it for the try_release that follows (WAITERS branch). */
#define SW_TRY \
  if \
  :: (qw & QL) == 0 -> qw = qw | QL; sw_ok = 1 \
  :: else -> qw = qw | SR; sw_ok = 0; \
     if :: sw_rl -> sw_rl = 0; LOAD_W :: else fi \
  fi

/* the rest of serve_waiters, after SW_TRY took the queue lock */
inline sw_loop() {
  do
  :: atomic {
       sw_ok ->
       serve_head();
       if                            /* release_unless_service_requested */
       :: (qw & SR) != 0 -> qw = qw & ~SR   /* keep the lock, serve again */
       :: else ->
          qw = WPBIT; sw_ok = 0;
          if :: sw_rl -> sw_rl = 0; LOAD_W :: else fi;
          break
       fi
     }
  :: !sw_ok -> break
  od
}

/* ---- Heap::release_lock: the release handshake ----------------------------- */
/* Precondition: the caller's step that took the heap lock did LOAD_W. */

/* HeapLock::try_release(w): CAS against the word loaded into rl_w. On success
 * the lock is free and run_wakes follows (PEEK). */
#ifdef MUTANT_NO_UNLOCK_RECHECK
/* MUTANT: the CAS against the loaded word is replaced by a plain
 * fetch_and(~LOCKED) (heap.cpp Heap::release_lock, final branch:
 * `lock_.try_release(w)`): a push, a SERVE request or a WAITERS change that
 * landed after the load is not rechecked. */
#define TRY_RELEASE_BODY hw = hw & ~LOCKED; rl_w = 0; PEEK; break
#else
#define TRY_RELEASE_BODY \
  if \
  :: hw == rl_w -> hw = rl_w & ~LOCKED; rl_w = 0; PEEK; break \
  :: else -> rl_w = hw \
  fi
#endif

inline release_lock() {
#ifdef MUTANT_WAKE_BEFORE_DRAIN
  /* MUTANT: the wakes are decided before the drain and not again after it:
   * heap.cpp Heap::release_lock's `if (w & kWaiters) serve_waiters();` moved
   * from the final branch (reached only once no deferred block is left) to
   * before the loop. */
  if
  :: atomic { (rl_w & WAITERS) != 0 -> sw_rl = 1; SW_TRY }; sw_loop()
  :: (rl_w & WAITERS) == 0
  fi;
#endif
  do
  :: atomic { HEAD(rl_w) != 0 ->                       /* deferred head: */
              drain_body();                            /*   drain_pending() */
              LOAD_W }                                 /*   w = lock_.load() */
  :: atomic { HEAD(rl_w) == 0 && (rl_w & SERVE) != 0 -> /* SERVE: */
              hw = hw & ~SERVE; sw_rl = 1 };           /*   lock_.clear_serve() */
     atomic { SW_TRY };                                /*   serve_waiters() */
     sw_loop()                                         /*   (then w = load()) */
#ifndef MUTANT_WAKE_BEFORE_DRAIN
  :: atomic { HEAD(rl_w) == 0 && (rl_w & SERVE) == 0 && (rl_w & WAITERS) != 0 ->
              SW_TRY };                                /* WAITERS: serve_waiters() */
     sw_loop();
     atomic { TRY_RELEASE_BODY }                       /* lock_.try_release(w) */
  :: atomic { HEAD(rl_w) == 0 && (rl_w & (SERVE | WAITERS)) == 0 ->
              TRY_RELEASE_BODY }                       /* lock_.try_release(w) */
#else
  :: atomic { HEAD(rl_w) == 0 && (rl_w & SERVE) == 0 -> TRY_RELEASE_BODY }
#endif
  od
}

/* ---- Heap::run_wakes: waker calls, outside every lock ---------------------- */
/* run_wakes_loop: the first peek was folded into the previous step (PEEK);
 * run_wakes: the peek is a step of its own. */

inline run_wakes_loop() {
  do
  :: !rw_pk -> break                                   /* wakes_pending(): no */
  :: atomic {
       rw_pk ->                                        /* wakes_pending(): yes */
       if
       :: (qw & QL) == 0 ->                            /* waiters_.try_lock() */
          qw = qw | QL;
          if                                           /* pop_wake */
          :: tw_n > 0 ->
             rw_node = tw[0];
             tw_remove(rw_node);
             where[rw_node] = W_CALLING;
             call_done[rw_node] = 0;
             rw_waker = has_waker[rw_node]             /* the waker's copy */
          :: else -> rw_node = NONE
          fi
       :: else -> rw_pk = 0; break                     /* its holder runs them */
       fi
     };
     atomic { rw_sr = ((qw & SR) != 0); qw = WPBIT; PEEK };   /* waiters_.release() */
     if
     :: atomic { rw_sr -> rw_sr = 0;                   /* service requested: */
                 LOCK_OR_REQUEST_SERVE(rw_took);       /*   lock_or_request_serve() */
                 if :: rw_took -> LOAD_W :: else -> PEEK fi };
        if
        :: rw_took -> rw_took = 0; release_lock()      /*   release_lock() */
        :: else
        fi
     :: !rw_sr
     fi;
     /* WaitQueue::call: the waker runs outside every lock. An empty waker
      * (the node subscribed in first_poll before poll_raw gave it one) does
      * nothing. call_done is stored after the call returns: between the two
      * steps the node's owner must not free it (must_wait_for_call). */
     if
     :: atomic { rw_node != NONE && rw_waker ->
                 assert(!destroyed[rw_node]);          /* none after ~AllocWait */
                 signal[rw_node] = 1 };                /* waker.wake() */
        atomic { call_done[rw_node] = 1; rw_node = NONE; rw_waker = 0; PEEK }
     :: atomic { rw_node != NONE && !rw_waker ->
                 assert(!destroyed[rw_node]);
                 call_done[rw_node] = 1; rw_node = NONE; PEEK }
     :: rw_node == NONE
     fi
  od
}

inline run_wakes() {
  PEEK;
  run_wakes_loop()
}

/* Heap::unlock (release_lock's successful try_release did PEEK) */
inline unlock() {
  release_lock();
  run_wakes_loop()
}

/* Heap::kick. NT: what the step does when the lock was busy (PEEK when
 * run_wakes follows at once). */
#define KICK_STEP(NT) \
  atomic { LOCK_OR_REQUEST_SERVE(k_took); if :: k_took -> LOAD_W :: else -> NT fi }

inline kick() {
  KICK_STEP(skip);
  if
  :: k_took -> k_took = 0; unlock()
  :: else
  fi
}

/* Heap::release_wait_queue (queue lock held, heap lock not) */
inline release_wait_queue() {
  atomic {                                             /* waiters_.release() */
    rq_sr = ((qw & SR) != 0); qw = WPBIT;
    if :: !rq_sr -> PEEK :: else fi
  };
  if
  :: rq_sr -> rq_sr = 0; kick(); run_wakes()           /* service requested */
  :: !rq_sr -> run_wakes_loop()
  fi
}

/* ---- Heap::free_any_context ------------------------------------------------ */

inline free_any_context(b) {
  atomic {                                             /* lock_.lock_or_push */
    assert(bstate[b] == B_LIVE);
    if
    :: (hw & LOCKED) == 0 ->
       hw = hw | LOCKED;                               /* TookLock */
       return_block(b);                                /* under the lock */
       lp_took = 1;
       LOAD_W
    :: else ->                                         /* Deferred */
       dnext[b] = HEAD(hw);
       hw = (b << 3) | (hw & FLAGS);
       bstate[b] = B_DEFERRED;
       ndef++;
       lp_took = 0
    fi
  };
  if
  :: lp_took -> lp_took = 0; unlock()
  :: else
  fi
}

/* ---- the owner's wait-queue critical sections ------------------------------
 * poll_raw, ~AllocWait, on_stop and close each lock the queue, change a node,
 * and end with release_wait_queue(). By default (COARSE) such a section is one
 * step, its release included: no other context can find the queue lock held
 * by it. The subscription in first_poll always keeps the lock held across
 * steps, and so do serve_waiters and run_wakes, so failing try-locks and
 * SERVICE_REQUESTED requests are still explored, and their handling
 * (release_wait_queue -> kick) is the same code whichever section held the
 * lock. -DFINE makes these sections fine-grained too (acquire, then
 * release_wait_queue as separate steps). docs/protocol.md discusses it. */
#ifdef FINE
#define QSEC_END }; release_wait_queue()
#else
#define QSEC_END \
    ; assert((qw & SR) == 0);   /* nobody could request while we held it */ \
    qw = WPBIT; PEEK            /* waiters_.release() */ \
  }; run_wakes_loop()
#endif

/* ---- Heap::close ------------------------------------------------------------ */

inline close_heap() {
  NOT_ISR;
  atomic {
    QLOCK_BLOCKING;                                    /* waiters_.lock() */
    closed = 1;
    do
    :: wq_n > 0 -> sh_n = wq[0]; complete_waiter(sh_n, O_CLOSED); sh_n = NONE
    :: else -> break
    od
  QSEC_END                                             /* release_wait_queue() */
}

/* ---- AllocWait::on_stop ----------------------------------------------------- */

inline on_stop(n, was) {
  NOT_ISR;
  atomic {
    QLOCK_BLOCKING;
    was = (where[n] == W_WAITING);
    if
    :: was -> complete_waiter(n, O_CANCELLED)
    :: else
    fi
  QSEC_END;                                            /* calls our waker */
  if
  :: was -> was = 0; kick()                            /* the next may fit now */
  :: else
  fi
}

/* AllocWait::take_outcome (queue lock held) */
inline take_outcome(n) {
  unlink_not_waiting(n);                 /* from to_wake, if not called yet */
  if
  :: outcome[n] == O_READY ->
     assert(bstate[BLK(n)] == B_HANDED);
     bstate[BLK(n)] = B_LIVE;            /* node_.block taken */
     SET_GOT
  :: else                                /* Closed / Cancelled */
  fi
}

/* ---- the actors --------------------------------------------------------------- */

/* Which allocations take the fast path of first_poll (the others behave as if
 * it had failed with Locked). Default: Alloc(1) only; -DFAST_BOTH, -DNOFAST. */
#if defined(FAST_BOTH)
#define FAST(n) 1
#elif defined(NOFAST)
#define FAST(n) 0
#else
#define FAST(n) ((n) == 1)
#endif

proctype Alloc(byte n) {
  LOCALS;
  bit isr = 0;
  bit destroy_pending;  /* -DCANCEL: destroy the future while it is pending */
  bit ok;
  bit subscribed;       /* AllocWait::subscribed_ */
  bit was_waiting;
  bit must_wait;
  bit orphan;
  bit got;              /* the future returned a block (-DREUSE) */

#ifdef CANCEL
  if
  :: n == 0 -> destroy_pending = 1
  :: true
  fi;
#endif

  /* ---- AllocWait::first_poll ----
   * reject() (closed_), stop_requested(), the has_waiters() hint and
   * lock_.try_lock() are one step: the three loads are moved to the CAS. A
   * load moved later reads a newer value, and every newer value is also
   * reachable by scheduling the writer's step before this one, so no
   * behaviour is lost that the model does not reach another way (closed_ and
   * stop_req only go 0 -> 1; the subscription rechecks closed_ under the
   * queue lock; alloc_locked rechecks WAITERS under the heap lock). */
  atomic {
    if
    :: closed -> destroyed[n] = 1; goto finish         /* reject(): Closed */
    :: !closed && n == 1 && stop_req ->                /* stop_requested() */
       destroyed[n] = 1; goto finish
    :: else ->
       if                                              /* !has_waiters() && */
       :: FAST(n) && (hw & (WAITERS | LOCKED)) == 0 -> /* lock_.try_lock() */
          hw = hw | LOCKED; ok = 1
       :: else -> ok = 0                               /* Locked / inhibited */
       fi
    fi
  };

  /* fast path, lock held: Heap::alloc_locked = drain_pending(), the inhibit
   * check, carve(), as one step. Between take_all and the inhibit check
   * another context can only push (commutes with the check: it reads only
   * WAITERS) or change WAITERS / SERVE (commutes with take_all, which keeps
   * the flags): merging the two loses no behaviour. */
  if
  :: atomic {
       ok ->
       drain_body();                                   /* drain_pending() */
       if
       :: (hw & WAITERS) == 0 ->                       /* inhibit check */
          carve(BLK(n), nsize[n], ok);
          if
          :: ok -> bstate[BLK(n)] = B_LIVE; SET_GOT;
             destroyed[n] = 1                          /* ready; no waker ever */
          :: else
          fi
       :: else -> ok = 0                               /* NoMemory */
       fi;
       LOAD_W
     };
     unlock();                                         /* heap_->unlock() */
     if
     :: ok -> ok = 0; goto finish                      /* ready on first poll */
     :: else                                           /* NoMemory: wait */
     fi
  :: !ok                                               /* Locked: wait */
  fi;

#ifdef MUTANT_SUBSCRIBE_AFTER_RETRY
  /* MUTANT: the retry comes before the subscription, as in the original
   * design (alloc_wait.cpp AllocWait::first_poll: `heap_->kick()` moved above
   * `queue.lock()` / `enqueue_waiter`). */
  kick();
#endif

  /* subscribe (with no waker yet), then retry. This critical section keeps
   * the queue lock held across steps (release_wait_queue is separate). */
  NOT_ISR;
  atomic {
    QLOCK_BLOCKING;                                    /* queue.lock() */
    if
    :: closed -> ok = 1; destroyed[n] = 1              /* Closed */
    :: else -> enqueue_waiter(n); subscribed = 1
    fi
  };
  release_wait_queue();
  if
  :: ok -> ok = 0; goto finish
  :: else
  fi;
#ifdef STOP
  if
  :: n == 1 ->                                         /* on_stop_.emplace(...) */
     atomic {
       if
       :: stop_req -> ok = 1                           /* runs on_stop now, here */
       :: else -> cb = CB_REG
       fi
     };
     if
     :: ok -> ok = 0; on_stop(n, was_waiting)
     :: else
     fi
  :: else
  fi;
#endif
#ifndef MUTANT_SUBSCRIBE_AFTER_RETRY
  kick();                                              /* the retry */
#endif

  /* ---- AllocWait::poll_raw: the rest of the first poll ---- */
  NOT_ISR;
  atomic {
    QLOCK_BLOCKING;                                    /* queue.lock() */
    if
    :: outcome[n] != O_NONE -> take_outcome(n); ok = 1 /* ready */
    :: else -> has_waker[n] = 1                        /* node_.waker = waker */
    fi
  QSEC_END;                                            /* release_wait_queue() */
  if
  :: ok -> ok = 0; goto finish
  :: else
  fi;
  /* pending */
  if
  :: destroy_pending -> goto finish                    /* drop the future */
  :: else
  fi;
  /* parked until the waker runs; then the executor polls again (poll_raw).
   * A waiter may wait forever if room never comes: a valid end state. */
end_parked:
  atomic {
    signal[n] == 1 && (qw & QL) == 0 ->               /* woken; queue.lock() */
    signal[n] = 0;
    qw = qw | QL;
    assert(outcome[n] != O_NONE);      /* no spurious wake: it finds its outcome */
    take_outcome(n)
  QSEC_END;                                            /* release_wait_queue() */

finish:
  /* ---- AllocWait::~AllocWait ---- */
#ifdef STOP
  if
  :: n == 1 ->
     NOT_ISR;
     atomic { cb != CB_RUN -> cb = CB_DONE }           /* on_stop_.reset() */
  :: else
  fi;
#endif
  if
  :: subscribed ->
     NOT_ISR;
     atomic {
       QLOCK_BLOCKING;                                 /* waiters_.lock() */
       was_waiting = (where[n] == W_WAITING);
       if
       :: was_waiting -> dequeue_waiter(n)
       :: else -> unlink_not_waiting(n)                /* from to_wake */
       fi;
       must_wait = (where[n] == W_CALLING && !call_done[n]); /* must_wait_for_call */
       orphan = (outcome[n] == O_READY && bstate[BLK(n)] == B_HANDED);
       if
       :: orphan -> bstate[BLK(n)] = B_LIVE            /* handed, never taken */
       :: else
       fi;
       subscribed = 0;
       /* From here no call of its waker can start (it is in no list); if
        * none is running either, the future is as good as destroyed. */
       if
       :: !must_wait -> destroyed[n] = 1
       :: else
       fi
     QSEC_END;                                         /* release_wait_queue() */
     if
     :: was_waiting -> was_waiting = 0; kick()
     :: else
     fi;
     if
     :: orphan -> orphan = 0; free_any_context(BLK(n)) /* Heap::free_raw */
     :: else
     fi;
     if
     :: atomic { must_wait -> call_done[n] == 1 ->     /* wait_for_call */
                 must_wait = 0; destroyed[n] = 1 }
     :: !must_wait
     fi
  :: !subscribed                                       /* destroyed[n] set above */
  fi;
#ifdef REUSE
  /* the owner uses the block, then frees it (a thread-context free) */
  if
  :: got -> got = 0; free_any_context(BLK(n))
  :: else
  fi;
#endif
  destroy_pending = 0
}

proctype Freer() {
  LOCALS;
  bit isr = 0;
  bit was;
  bit run_cb;
#ifndef F_NOFREE
  free_any_context(BLK_F);
#endif
  if
  :: true
#ifdef STOP
  :: atomic {                  /* stop_source::request_stop() */
       stop_req = 1;
       if
       :: cb == CB_REG -> cb = CB_RUN; run_cb = 1      /* runs the callback here */
       :: else
       fi
     };
     if
     :: run_cb -> on_stop(1, was); cb = CB_DONE; run_cb = 0
     :: else
     fi
#endif
#ifdef CLOSE
  :: close_heap()
#endif
  fi
}

/* An interrupt handler runs to completion once it starts: on the single core
 * of a typical MCU, no thread step interleaves with it, so its whole free is
 * one atomic step (interleaved between any two thread steps). It must never
 * wait for a thread: no blocking step may occur inside (NOT_ISR asserts it,
 * and a blocked statement would also break the atomic sequence). -DISR_SMP
 * models an interrupt on another core instead: its steps interleave with the
 * threads' like a thread's, but it still may not block. */
proctype Isr() {
  LOCALS;
  bit isr = 1;
#ifdef ISR_SMP
  free_any_context(BLK_I)
#else
  atomic { free_any_context(BLK_I) }
#endif
}

init {
  d_step {
    wq[0] = NONE; wq[1] = NONE; tw[0] = NONE; tw[1] = NONE;
    call_done[0] = 1; call_done[1] = 1;
    nsize[0] = 2; nsize[1] = 1;
#ifndef F_NOFREE
    bmask[BLK_F] = 1; bstate[BLK_F] = B_LIVE;
#else
    freemask = 1;      /* Freer's unit [0] starts free */
#endif
    bmask[BLK_I] = 6; bstate[BLK_I] = B_LIVE
  };
  atomic {
    run Alloc(0);
    run Alloc(1);
    run Freer();
    run Isr()
  };
  /* Invariants, in every reachable state: init can move only when one is
   * violated, or when no other process can move. */
  do
  :: !(CONSERVED) -> assert(CONSERVED)
#ifndef NO_MIRROR   /* -DNO_MIRROR: leave the behavioural asserts to catch it */
  :: !(WAITERS_MIRROR) -> assert(WAITERS_MIRROR)
#endif
  :: timeout -> break
  od;
  /* Quiescent: no process can move. Every actor has finished, or is a waiter
   * parked at end_parked (pan reports any other blocked process as an invalid
   * end state: a deadlock). */
  /* No lost wakeup: a parked waiter was not completed behind its back, and
   * the head of the queue does not fit (invariant 4): nobody owes a wake. */
  assert(destroyed[0] || (where[0] == W_WAITING && outcome[0] == O_NONE));
  assert(destroyed[1] || (where[1] == W_WAITING && outcome[1] == O_NONE));
  assert(wq_n == 0 || !FITS(nsize[wq[0]]));
  /* No deferred block stranded. */
  assert(HEAD(hw) == 0 && ndef == 0);
  /* Both locks free, no request or wake left behind. */
  assert((hw & LOCKED) == 0 && (hw & SERVE) == 0 && qw == 0 && tw_n == 0);
#ifdef REUSE
  assert(wq_n == 0 && freemask == ARENA);  /* all returned: one free span */
#endif
  /* A later allocation on the idle heap (Heap::try_alloc_raw: reject,
   * try_lock, alloc_locked) is not refused when nobody waits: the inhibit
   * flag was cleared. */
  assert(closed || wq_n > 0 || (hw & WAITERS) == 0)
}

/* ---- liveness: pan -a -N live ----------------------------------------------
 * Checked WITHOUT a fairness assumption (no -f), and it passes: a property
 * that holds on every run holds on the weakly fair ones, so this is stronger
 * than a check under weak fairness (and cheaper: pan's fairness construction
 * multiplies the states by up to the number of processes + 2). It can pass
 * unfairly because no process can be starved in a cycle here: spinning
 * contexts (WaitQueue::lock, wait_for_call, the executor's re-poll) are
 * modelled as blocked, not as loops, and each CAS retry loop is one step (a
 * failed CAS means another context's RMW succeeded; each actor makes finitely
 * many). Were a real spin loop added to the model, weak fairness (-f) would be
 * the right assumption for the threads (a preemptive scheduler resumes a
 * runnable thread; an interrupt handler returns), never for the spin itself.
 */

/* A waiter whose request fits (it is the head, and first fit finds room) is
 * eventually woken: its future completes (or its owner destroyed it). */
ltl fits_woken {
  [] (HEAD_FITS(0) -> <> destroyed[0]) && [] (HEAD_FITS(1) -> <> destroyed[1])
}

/* Every deferred block is eventually returned to the backend. */
ltl deferred_returned {
  [] ((ndef > 0) -> <> (ndef == 0))
}

/* Both, in one claim: one nested search instead of two (what ci/spin runs). */
ltl live {
  [] (HEAD_FITS(0) -> <> destroyed[0]) && [] (HEAD_FITS(1) -> <> destroyed[1]) &&
  [] ((ndef > 0) -> <> (ndef == 0))
}
