/* liteprof.record._core: the clock (CLOCK_MONOTONIC, or the TSC where the kernel trusts it).
 *
 * Included by _core.c only, and all static, so that the hot path (two clock reads per
 * event) inlines now_ticks().
 */
#ifndef LITEPROF_CLOCK_H
#define LITEPROF_CLOCK_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline int64_t
mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* -- the clock ----------------------------------------------------------------------
 *
 * Frames hold "ticks": nanoseconds of CLOCK_MONOTONIC, or, where the kernel itself keeps
 * time with an invariant TSC (its clocksource is "tsc"), raw TSC readings, which cost a
 * third of a vDSO clock_gettime (about 10 vs 23 ns here) and every event needs two.
 * Ticks become nanoseconds with a 32.32 fixed-point factor calibrated against
 * CLOCK_MONOTONIC from when recording first starts and refined at every new block, so
 * start times stay on the CLOCK_MONOTONIC timeline that the log header's anchors and the
 * pure-Python twin (time.perf_counter_ns) use. LITEPROF_NO_TSC=1 turns the TSC off. */

#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#include <x86intrin.h>
#define HAVE_TSC 1
#endif

static int g_tsc = 0;            /* frames hold TSC ticks (else ns) */
static int g_tsc_allowed = -1;   /* -1: not checked yet */
#ifdef HAVE_TSC
static uint64_t g_tsc_mult = 0;  /* ns per tick, 32.32 fixed point */
static uint64_t g_tsc_base = 0;  /* a tick ... */
static int64_t g_tsc_base_ns = 0; /* ... and the CLOCK_MONOTONIC ns it was read with */
static uint64_t g_tsc_cal = 0;   /* the first calibration point, for later refinement */
static int64_t g_tsc_cal_ns = 0;

static int
tsc_allowed(void)
{
    if (g_tsc_allowed >= 0)
        return g_tsc_allowed;
    g_tsc_allowed = 0;
    const char *off = getenv("LITEPROF_NO_TSC");
    if (off != NULL && off[0] != '\0' && strcmp(off, "0") != 0)
        return 0;
    /* The kernel only keeps time with the TSC once it found it invariant and synchronised
     * across CPUs; it is the best judge of that, on bare metal and in VMs alike. */
    FILE *fh = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");
    if (fh == NULL)
        return 0;
    char buf[32] = {0};
    if (fgets(buf, sizeof(buf), fh) != NULL && strncmp(buf, "tsc", 3) == 0 &&
        (buf[3] == '\n' || buf[3] == '\0'))
        g_tsc_allowed = 1;
    fclose(fh);
    return g_tsc_allowed;
}

static inline int64_t
tsc_to_ns(uint64_t ticks)
{
    return (int64_t)(((unsigned __int128)ticks * g_tsc_mult) >> 32);
}

/* A TSC reading and the CLOCK_MONOTONIC ns of the same instant: the TSC between two
 * CLOCK_MONOTONIC reads, the closest such pair of a few tries (a thread preempted between
 * two reads of a pair would skew the factor by the time it waited). */
static void
tsc_pair(int64_t *ns, uint64_t *ticks)
{
    int64_t best = INT64_MAX;
    for (int i = 0; i < 8 && best > 200; i++) {
        int64_t a = mono_ns();
        uint64_t t = __rdtsc();
        int64_t b = mono_ns();
        if (b - a < best) {
            best = b - a;
            *ns = a + (b - a) / 2;
            *ticks = t;
        }
    }
}

/* Measure ns per tick since the calibration anchor and move the base to now. */
static void
tsc_calibrate(void)
{
    int64_t n0 = g_tsc_cal_ns, n1;
    uint64_t t0 = g_tsc_cal, t1;
    tsc_pair(&n1, &t1);
    if (t1 <= t0 || n1 <= n0) {
        g_tsc = 0; /* the TSC went backwards or stood still: not to be trusted */
        return;
    }
    g_tsc_mult = (uint64_t)((((unsigned __int128)(uint64_t)(n1 - n0)) << 32) / (t1 - t0));
    g_tsc_base = t1;
    g_tsc_base_ns = n1;
}
static int g_tsc_pending = 0; /* a calibration anchor is taken; the factor is not known yet */
#endif

/* Recording starts: choose the clock. The first calibration of a process does not wait:
 * it takes an anchor (a TSC and a CLOCK_MONOTONIC reading) and frames hold CLOCK_MONOTONIC
 * ns until clock_tick() finds 2 ms passed since it, at a new block, and switches to the
 * TSC. Frames remember which clock they were entered with, so a scope open across the
 * switch is still timed right. Later starts (and forked children) use the factor at once. */
static void
clock_start(void)
{
    g_tsc = 0;
#ifdef HAVE_TSC
    if (!tsc_allowed())
        return;
    if (g_tsc_mult != 0) {
        g_tsc = 1;
        tsc_calibrate();
    }
    else if (!g_tsc_pending) {
        tsc_pair(&g_tsc_cal_ns, &g_tsc_cal);
        g_tsc_pending = 1;
    }
#endif
}

/* On the slow path (every new block): finish the calibration once its baseline is long
 * enough (the factor is then good to ~1e-5), and refine it ever after. */
static void
clock_tick(void)
{
#ifdef HAVE_TSC
    if (g_tsc) {
        tsc_calibrate(); /* a longer baseline: the factor converges, the base follows */
    }
    else if (g_tsc_pending && mono_ns() - g_tsc_cal_ns >= 2000000) {
        g_tsc_pending = 0;
        g_tsc = 1;
        tsc_calibrate(); /* turns g_tsc off again if the TSC did not advance */
        if (!g_tsc)
            g_tsc_mult = 0;
    }
#endif
}

static inline int
clock_calibrating(void)
{
#ifdef HAVE_TSC
    return g_tsc_pending;
#else
    return 0;
#endif
}

static inline int64_t
now_ticks(void)
{
#ifdef HAVE_TSC
    if (g_tsc)
        return (int64_t)__rdtsc();
#endif
    return mono_ns();
}

/* A duration in ticks -> ns; never negative (TSCs of two CPUs may differ by a few ticks). */
static inline int64_t
ticks_dur(int64_t d)
{
    if (d <= 0)
        return 0;
#ifdef HAVE_TSC
    if (g_tsc)
        return tsc_to_ns((uint64_t)d);
#endif
    return d;
}

/* A point in ticks -> CLOCK_MONOTONIC ns. */
static inline int64_t
ticks_time(int64_t t)
{
#ifdef HAVE_TSC
    if (g_tsc) {
        uint64_t u = (uint64_t)t;
        return u >= g_tsc_base ? g_tsc_base_ns + tsc_to_ns(u - g_tsc_base)
                               : g_tsc_base_ns - tsc_to_ns(g_tsc_base - u);
    }
#endif
    return t;
}

#endif
