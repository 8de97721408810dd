// Run log (coordinator/runlog.h): create, append, refuse, fail cleanly, flat
// memory, and resume after SIGKILL to exactly the rows of an uninterrupted
// run. Writes its logs into DIR for tests/test_runlog.py, which checks every
// column against the same generator with h5py and reads a live log.
//
//   test_runlog DIR                         the tests
//   test_runlog --writer PATH N DELAY_MS    a log of N searches, flushed one by one (the live-reader test)
//   test_runlog --throughput DIR            rows/s with and without the noise columns (prints a table)
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../common/h5util.h"
#include "../coordinator/runlog.h"
#include "expect.h"

// ---------------------------------------------------------------------------
// Records: every value a function of (search, candidate, field), so a resumed
// run can rebuild exactly what an uninterrupted one wrote. test_runlog.py
// has the same generator.

#define SEARCH_J 0xFFFFF  // the "candidate" index used for a search's own values
#define MAX_CAND 5
#define MAX_TRAJ 2

static uint64_t mix64(uint64_t x) {  // splitmix64
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}
static uint64_t hv(int64_t s, int64_t j, int64_t f) { return mix64(((uint64_t)s << 40) ^ ((uint64_t)j << 20) ^ (uint64_t)f); }
static float uf(int64_t s, int64_t j, int64_t f) { return (float)(hv(s, j, f) >> 40) * 0x1p-24f; }  // exact in float32
static double ud(int64_t s, int64_t j, int64_t f) { return (double)(hv(s, j, f) >> 11) * 0x1p-53; }

static int record_candidates(int64_t s) { return (int)(hv(s, SEARCH_J, 0) % (MAX_CAND + 1)); }

// Floats of one candidate's tensors: noise, x1_hat, MAX_TRAJ states, their times.
static size_t cand_floats(int dim) { return (size_t)(2 + MAX_TRAJ) * (size_t)dim + MAX_TRAJ; }

// Candidate j of search s; its tensors go to t (cand_floats(dim)).
static void make_candidate(runlog_candidate *c, float *t, int64_t s, int64_t j, int dim, int traj) {
    *c = (runlog_candidate){.search = s, .candidate = j, .label = (int32_t)(s % 10), .round = (int32_t)(j / 2),
                            .parent = j ? j - 1 : -1, .noise_stream = hv(s, j, 1), .noise_base = hv(s, j, 2),
                            .t_a = uf(s, j, 3), .t_b = uf(s, j, 4), .nfe = (int32_t)(hv(s, j, 5) % 1000),
                            .score = ud(s, j, 6), .worker = (int32_t)(1 + hv(s, j, 7) % 7), .seconds = ud(s, j, 8),
                            .verifier_seconds = ud(s, j, 9)};
    for (int k = 0; k < VERIFIER_KINDS; k++) c->scores[k] = k == VERIFIER_FID_ORACLE ? NAN : 2 * ud(s, j, 10 + k) - 1;
    float *noise = t, *x1 = t + dim, *tr = t + 2 * dim, *ts = tr + MAX_TRAJ * dim;
    for (int e = 0; e < dim; e++) noise[e] = uf(s, j, 1000 + e) - 0.5f, x1[e] = uf(s, j, 100000 + e) - 0.5f;
    c->noise = noise;
    c->x1_hat = j == 3 ? NULL : x1;  // a missing tensor is logged as NaN
    c->n_trajectory = traj ? (int)(hv(s, j, 11) % (MAX_TRAJ + 1)) : 0;
    for (int q = 0; q < c->n_trajectory; q++) {
        ts[q] = uf(s, j, 20 + q);
        for (int e = 0; e < dim; e++) tr[q * dim + e] = uf(s, j, 200000 + q * dim + e);
    }
    c->trajectory = tr;
    c->trajectory_t = ts;
}

typedef struct {
    runlog_search s;
    runlog_candidate c[MAX_CAND];
    float *t;  // tensors
    int n;
} record;

static void record_make(record *r, int64_t s, int dim, int fid_dim, int traj) {
    int n = record_candidates(s);
    size_t per = cand_floats(dim);
    if (!r->t) r->t = ns_malloc((MAX_CAND * per + (size_t)dim + (size_t)fid_dim) * sizeof(float), "record");
    for (int j = 0; j < n; j++) make_candidate(&r->c[j], r->t + (size_t)j * per, s, j, dim, traj);
    float *sample = r->t + MAX_CAND * per, *fid = sample + dim;
    for (int e = 0; e < dim; e++) sample[e] = uf(s, SEARCH_J, 1000 + e) - 0.5f;
    for (int e = 0; e < fid_dim; e++) fid[e] = uf(s, SEARCH_J, 300000 + e);
    r->s = (runlog_search){.search = s, .label = (int32_t)(s % 10), .index = (int32_t)(s / 10),
                           .chosen = n ? (int64_t)(hv(s, SEARCH_J, 1) % (uint64_t)n) : -1,
                           .search_nfe = (int64_t)(hv(s, SEARCH_J, 2) % 100000),
                           .final_nfe = (int64_t)(hv(s, SEARCH_J, 3) % 1000), .verifier_nfe = 100 * ud(s, SEARCH_J, 4),
                           .verifier_seconds = ud(s, SEARCH_J, 5), .wall_seconds = ud(s, SEARCH_J, 6),
                           .score = ud(s, SEARCH_J, 7), .sample = sample, .fid_features = n ? fid : NULL};
    r->n = n;
}

// ---------------------------------------------------------------------------
// Files and meta.

static char model_path[4200];

static const char *RESOLVED = "run:\n  seed: 7\n  samples_per_class: 2\nsampler:\n  kind: heun\n  search_nfe: 50\n";

static runlog_meta test_meta(void) {
    return (runlog_meta){.config_yaml = "run:\n  seed: 7\n", .resolved_yaml = RESOLVED, .results_yaml = RESOLVED,
                         .overrides = "run.seed=7 log.noise=true", .model_path = model_path, .classifier_path = "",
                         .evaluator_path = NULL, .reference_path = model_path, .algorithm = "random",
                         .verifier = "ensemble(class_logit,self_similarity)", .oracle = 0, .ranks = 3, .channels = 1,
                         .height = 4, .width = 3, .fid_dim = 5, .log_noise = 1, .log_x1_hat = 1, .log_trajectories = 1};
}

static int dim_of(const runlog_meta *m) { return m->channels * m->height * m->width; }

static void write_bytes(const char *path, const char *data, size_t n) {
    FILE *f = fopen(path, "wb");
    NS_CHECK(f && fwrite(data, 1, n, f) == n && fclose(f) == 0);
}

static void copy_file(const char *from, const char *to) {
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    NS_CHECK(a && b);
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, a)) > 0) NS_CHECK(fwrite(buf, 1, n, b) == n);
    fclose(a);
    NS_CHECK(fclose(b) == 0);
}

static int exists(const char *path) { return access(path, F_OK) == 0; }

// Temporary files (NAME.tmp.PID) in dir whose name starts with prefix;
// remove them instead when remove is set.
static int tmp_files(const char *dir, const char *prefix, int remove) {
    DIR *d = opendir(dir);
    NS_CHECK(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (!strstr(e->d_name, ".tmp.") || strncmp(e->d_name, prefix, strlen(prefix))) continue;
        n++;
        if (remove) {
            char p[4200];
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    }
    closedir(d);
    return n;
}

static void read_status(const char *path, char *buf, size_t n) {
    hid_t f;
    buf[0] = '\0';
    if (h5u_open_read(&f, path)) return;
    h5u_attr_read_string(f, path, "status", buf, n);
    h5u_close_file(f);
}

static ns_status add_records(runlog *l, int64_t from, int64_t to, int flush_every, const runlog_meta *m) {
    record r = {0};
    ns_status st = NS_OK;
    for (int64_t s = from; s < to && !st; s++) {
        record_make(&r, s, dim_of(m), m->fid_dim, m->log_trajectories);
        st = runlog_add(l, &r.s, r.c, r.n);
        if (!st && flush_every && (s + 1) % flush_every == 0) st = runlog_flush(l);
    }
    free(r.t);
    return st;
}

// ---------------------------------------------------------------------------
// Create, append, read back (test_runlog.py checks the file's every value).

#define BASIC_SEARCHES 12

static void test_basic(const char *dir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/basic.h5", dir);
    unlink(path);
    runlog_meta m = test_meta();
    runlog l;
    ns_status st = runlog_create(&l, path, &m, 0);
    EXPECT(!st, "create: %s", ns_error_message());
    if (st) return;
    EXPECT(!add_records(&l, 0, 5, 0, &m), "add: %s", ns_error_message());
    EXPECT(!runlog_flush(&l), "flush: %s", ns_error_message());
    EXPECT(!add_records(&l, 5, BASIC_SEARCHES, 0, &m), "add: %s", ns_error_message());
    int64_t cands = 0, trajs = 0;
    for (int64_t s = 0; s < BASIC_SEARCHES; s++) {
        record r = {0};
        record_make(&r, s, dim_of(&m), m.fid_dim, 1);
        cands += r.n;
        for (int j = 0; j < r.n; j++) trajs += r.c[j].n_trajectory;
        free(r.t);
    }
    EXPECT(l.n_searches == BASIC_SEARCHES && l.n_candidates == cands && l.n_trajectory_rows == trajs,
           "counts %lld %lld %lld, expected %d %lld %lld", (long long)l.n_searches, (long long)l.n_candidates,
           (long long)l.n_trajectory_rows, BASIC_SEARCHES, (long long)cands, (long long)trajs);
    // Row 2 is in the file, row 9 still buffered: both read back.
    for (int64_t row = 2; row < BASIC_SEARCHES; row += 7) {
        int64_t id = -5;
        int32_t label = -5;
        float fid[5];
        st = runlog_read_search(&l, row, &id, &label, fid);
        EXPECT(!st && id == row && label == row % 10, "read_search %lld: %s (id %lld label %d)", (long long)row,
               st ? ns_error_message() : "", (long long)id, label);
        int n = record_candidates(row);
        for (int e = 0; e < 5 && !st; e++)
            EXPECT(n ? fid[e] == uf(row, SEARCH_J, 300000 + e) : isnan(fid[e]), "fid_features[%d] of row %lld", e,
                   (long long)row);
    }
    EXPECT(runlog_read_search(&l, BASIC_SEARCHES, NULL, NULL, NULL) == NS_ERR_ARG, "row past the end accepted");
    EXPECT(!runlog_close(&l, "complete"), "close: %s", ns_error_message());
    char status[64];
    read_status(path, status, sizeof status);
    EXPECT(!strcmp(status, "complete"), "status '%s' after close", status);
    EXPECT(!runlog_close(&l, "complete"), "a second close is a no-op");
}

// ---------------------------------------------------------------------------
// Refusals and failures.

static void test_refusals(const char *dir) {
    char path[4200], over[4200], bad[4200], want[8600];
    snprintf(path, sizeof path, "%s/basic.h5", dir);
    runlog_meta m = test_meta();
    runlog l;
    ns_status st = runlog_create(&l, path, &m, 0);
    snprintf(want, sizeof want, "%s exists; pass --resume to continue it or --overwrite to replace it", path);
    EXPECT(st == NS_ERR_ARG && !strcmp(ns_error_message(), want), "existing file: %d '%s'", st, ns_error_message());
    EXPECT(!runlog_close(&l, "failed: x"), "close after a refused create");
    char status[64];
    read_status(path, status, sizeof status);
    EXPECT(!strcmp(status, "complete"), "refused create touched the file: status '%s'", status);

    // --overwrite replaces it.
    snprintf(over, sizeof over, "%s/overwritten.h5", dir);
    copy_file(path, over);
    st = runlog_create(&l, over, &m, 1);
    EXPECT(!st, "overwrite: %s", ns_error_message());
    if (!st) {
        EXPECT(!add_records(&l, 0, 2, 0, &m), "add: %s", ns_error_message());
        EXPECT(!runlog_close(&l, "interrupted"), "close: %s", ns_error_message());
    }
    read_status(over, status, sizeof status);
    EXPECT(!strcmp(status, "interrupted"), "overwritten log status '%s'", status);

    // A missing directory, a path under a regular file, a missing weights file.
    const char *bads[] = {"%s/no-such-dir/log.h5", "%s/basic.h5/log.h5"};
    for (int i = 0; i < 2; i++) {
        snprintf(bad, sizeof bad, bads[i], dir);
        st = runlog_create(&l, bad, &m, 0);
        EXPECT(st == NS_ERR_IO && strstr(ns_error_message(), bad), "unwritable %s: %d '%s'", bad, st,
               ns_error_message());
        runlog_close(&l, "failed");
    }
    snprintf(bad, sizeof bad, "%s/missing-weights.h5", dir);
    runlog_meta mw = m;
    mw.model_path = bad;
    snprintf(over, sizeof over, "%s/never.h5", dir);
    st = runlog_create(&l, over, &mw, 0);
    EXPECT(st == NS_ERR_IO && strstr(ns_error_message(), bad), "missing weights: %d '%s'", st, ns_error_message());
    EXPECT(!exists(over), "a failed create left %s", over);
}

// Disk full, simulated with RLIMIT_FSIZE in a child: a create that cannot be
// written fails with NS_ERR_IO naming the path and leaves no file; appends
// past the limit fail the same way, and close still returns.
static int full_disk_child(const char *path, long limit, int append) {
    struct rlimit rl = {(rlim_t)limit, (rlim_t)limit};
    signal(SIGXFSZ, SIG_IGN);
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0) return 10;
    runlog_meta m = test_meta();
    m.channels = 1, m.height = 28, m.width = 28;
    runlog l;
    ns_status st = runlog_create(&l, path, &m, 0);
    if (!append) return st == NS_ERR_IO && strstr(ns_error_message(), path) ? 0 : 11;
    if (st) return 12;
    for (int64_t s = 0; s < 100000 && !st; s++) {
        st = add_records(&l, s, s + 1, 0, &m);
        if (!st) st = runlog_flush(&l);
    }
    if (st != NS_ERR_IO || !strstr(ns_error_message(), path)) return 13;
    if (runlog_add(&l, &(runlog_search){0}, NULL, 0) != NS_ERR_IO) return 14;  // refuses after a failure
    return runlog_close(&l, "failed: disk full") == NS_OK ? 15 : 0;
}

static int run_child(int (*fn)(const char *, long, int), const char *path, long limit, int append) {
    pid_t pid = fork();
    NS_CHECK(pid >= 0);
    if (pid == 0) _exit(fn(path, limit, append));
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

static void test_full_disk(const char *dir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/full.h5", dir);
    unlink(path);
    int rc = run_child(full_disk_child, path, 2048, 0);
    EXPECT(rc == 0, "create on a full disk: child code %d", rc);
    EXPECT(!exists(path), "a create on a full disk left %s", path);
    rc = run_child(full_disk_child, path, 1 << 20, 1);
    EXPECT(rc == 0, "append on a full disk: child code %d", rc);
    unlink(path);
    EXPECT(tmp_files(dir, "full.h5", 0) == 0, "a failed create left a temporary file in %s", dir);
}

// ---------------------------------------------------------------------------
// Resume.

// Open path (created or resumed), write searches up to n, flushing each.
static int writer_run(const char *path, int64_t n, int delay_us) {
    runlog_meta m = test_meta();
    runlog l;
    int64_t *done = NULL, n_done = 0;
    ns_status st = exists(path) ? runlog_resume(&l, path, &m, &done, &n_done) : runlog_create(&l, path, &m, 0);
    if (st) {
        fprintf(stderr, "writer: %s\n", ns_error_message());
        return 20;
    }
    for (int64_t i = 0; i < n_done; i++)
        if (done[i] != i) return 21;
    free(done);
    for (int64_t s = n_done; s < n && !st; s++) {
        st = add_records(&l, s, s + 1, 1, &m);
        if (delay_us) usleep((useconds_t)delay_us);
    }
    if (st) {
        fprintf(stderr, "writer: %s\n", ns_error_message());
        return 22;
    }
    return runlog_close(&l, "complete") ? 23 : 0;
}

// Every dataset of a equals the same path in b, byte for byte.
typedef struct {
    hid_t b;
    int checked, differ;
    char first[256];
} compare_ctx;

static herr_t compare_one(hid_t a, const char *name, const H5O_info_t *info, void *op) {
    compare_ctx *c = op;
    if (info->type != H5O_TYPE_DATASET) return 0;
    hid_t da = H5Dopen2(a, name, H5P_DEFAULT), db = -1;
    H5E_BEGIN_TRY { db = H5Dopen2(c->b, name, H5P_DEFAULT); }
    H5E_END_TRY;
    int same = 0;
    if (db >= 0) {
        hid_t ta = H5Dget_type(da), sa = H5Dget_space(da), sb = H5Dget_space(db);
        hssize_t na = H5Sget_simple_extent_npoints(sa), nb = H5Sget_simple_extent_npoints(sb);
        size_t es = H5Tget_size(ta);
        if (na == nb) {
            char *ba = ns_malloc((size_t)na * es + 1, "a"), *bb = ns_malloc((size_t)nb * es + 1, "b");
            same = H5Dread(da, ta, H5S_ALL, H5S_ALL, H5P_DEFAULT, ba) >= 0 &&
                   H5Dread(db, ta, H5S_ALL, H5S_ALL, H5P_DEFAULT, bb) >= 0 && !memcmp(ba, bb, (size_t)na * es);
            free(ba), free(bb);
        }
        H5Tclose(ta), H5Sclose(sa), H5Sclose(sb), H5Dclose(db);
    }
    H5Dclose(da);
    c->checked++;
    if (!same && !c->differ++) snprintf(c->first, sizeof c->first, "%s", name);
    return 0;
}

static void expect_same_rows(const char *a_path, const char *b_path) {
    hid_t a, b;
    if (h5u_open_read(&a, a_path) || h5u_open_read(&b, b_path)) {
        EXPECT(0, "compare: %s", ns_error_message());
        return;
    }
    compare_ctx c = {.b = b};
    H5Ovisit2(a, H5_INDEX_NAME, H5_ITER_NATIVE, compare_one, &c, H5O_INFO_BASIC);
    EXPECT(c.checked >= 30 && !c.differ, "%s vs %s: %d of %d datasets differ (first %s)", a_path, b_path, c.differ,
           c.checked, c.first);
    h5u_close_file(a), h5u_close_file(b);
}

// A killed log opened as a SWMR reader: every complete search's candidate
// rows exist and carry its id. Returns the number of complete searches.
static int64_t check_killed(const char *path) {
    hid_t f;
    H5E_BEGIN_TRY { f = H5Fopen(path, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, H5P_DEFAULT); }
    H5E_END_TRY;
    EXPECT(f >= 0, "%s: a killed log does not open for SWMR reading", path);
    if (f < 0) return -1;
    hsize_t n_c;
    int64_t *ids, *first, *count, *cand_search;
    const char *names[3] = {"searches/search", "searches/first_candidate_row", "searches/candidates"};
    int64_t *cols[3];
    hsize_t rows[3];
    for (int i = 0; i < 3; i++) {
        hid_t d = H5Dopen2(f, names[i], H5P_DEFAULT), s = H5Dget_space(d);
        H5Sget_simple_extent_dims(s, &rows[i], NULL);
        cols[i] = ns_malloc(rows[i] * 8 + 8, "col");
        H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, cols[i]);
        H5Sclose(s), H5Dclose(d);
    }
    ids = cols[0], first = cols[1], count = cols[2];
    hid_t d = H5Dopen2(f, "candidates/search", H5P_DEFAULT), s = H5Dget_space(d);
    H5Sget_simple_extent_dims(s, &n_c, NULL);
    cand_search = ns_malloc(n_c * 8 + 8, "col");
    H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, cand_search);
    H5Sclose(s), H5Dclose(d);
    int64_t complete = 0;
    while (complete < (int64_t)rows[0] && ids[complete] >= 0) complete++;
    int bad = 0;
    for (int64_t i = 0; i < complete; i++) {
        bad += ids[i] != i || (int64_t)rows[1] <= i || (int64_t)rows[2] <= i || first[i] + count[i] > (int64_t)n_c;
        for (int64_t r = first[i]; !bad && r < first[i] + count[i]; r++) bad += cand_search[r] != i;
    }
    EXPECT(!bad, "%s: complete searches reference missing or foreign candidate rows", path);
    for (int i = 0; i < 3; i++) free(cols[i]);
    free(cand_search);
    H5Fclose(f);
    return complete;
}

#define KILL_SEARCHES 40
#define KILL_PACE_US 5000

static void test_kill_resume(const char *dir) {
    char ref[4200], path[4200], copy[4200];
    snprintf(ref, sizeof ref, "%s/reference.h5", dir);
    snprintf(path, sizeof path, "%s/killed.h5", dir);
    unlink(ref), unlink(path);
    EXPECT(writer_run(ref, KILL_SEARCHES, 0) == 0, "uninterrupted writer failed");
    srand(12345);
    int kills = 0, copies = 0, finished = 0;
    int64_t seen[32] = {0};
    for (int round = 0; round < 20 && !finished; round++) {
        pid_t pid = fork();
        NS_CHECK(pid >= 0);
        // The writer sleeps KILL_PACE_US per search, so a round (killed by
        // 65 ms) completes at most 13 searches whatever the disk's fsync
        // speed: 40 searches need at least 4 rounds, so at least 3 kills
        // land. (A 200 us pace let CI's fast disk finish in round 3.)
        if (pid == 0) _exit(writer_run(path, KILL_SEARCHES, KILL_PACE_US));
        usleep((useconds_t)(5000 + rand() % 60000));
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        if (WIFEXITED(status)) {
            EXPECT(WEXITSTATUS(status) == 0, "writer exited with %d", WEXITSTATUS(status));
            finished = 1;
            break;
        }
        kills++;
        if (!exists(path)) continue;  // killed before the log was in place
        seen[kills - 1] = check_killed(path);
        if (copies < 3) {
            snprintf(copy, sizeof copy, "%s/killed-%d.h5", dir, copies++);
            copy_file(path, copy);
        }
    }
    if (!finished) EXPECT(writer_run(path, KILL_SEARCHES, 0) == 0, "final resume failed");
    printf("kill/resume: %d SIGKILLs, complete searches seen after each:", kills);
    for (int i = 0; i < kills && i < 32; i++) printf(" %lld", (long long)seen[i]);
    printf("\n");
    EXPECT(kills >= 3, "only %d kills landed (writer too fast?)", kills);
    expect_same_rows(ref, path);
    char status[64];
    read_status(path, status, sizeof status);
    EXPECT(!strcmp(status, "complete"), "resumed log status '%s'", status);
}

// A kill with rows of a cut search on disk: a search bigger than the row
// buffer (its candidates reach the file before its /searches row), an
// H5Fflush, then SIGKILL. Resume drops exactly those rows; finishing the run
// gives the uninterrupted rows.
static int partial_child(const char *path, long unused, int unused2) {
    (void)unused, (void)unused2;
    runlog_meta m = test_meta();
    runlog l;
    if (runlog_create(&l, path, &m, 0) || add_records(&l, 0, 10, 1, &m)) return 30;
    int big = 5000;
    size_t per = cand_floats(dim_of(&m));
    runlog_candidate *c = ns_malloc((size_t)big * sizeof *c, "big");
    float *t = ns_malloc((size_t)big * per * sizeof(float), "big");
    for (int j = 0; j < big; j++) make_candidate(&c[j], t + (size_t)j * per, 10, j, dim_of(&m), 1);
    record r = {0};
    record_make(&r, 10, dim_of(&m), m.fid_dim, 1);
    if (runlog_add(&l, &r.s, c, big) || H5Fflush(l.file, H5F_SCOPE_GLOBAL) < 0) return 31;
    raise(SIGKILL);
    return 32;
}

static void test_partial(const char *dir) {
    char ref[4200], path[4200];
    snprintf(ref, sizeof ref, "%s/reference.h5", dir);
    snprintf(path, sizeof path, "%s/partial.h5", dir);
    unlink(path);
    int rc = run_child(partial_child, path, 0, 0);
    EXPECT(rc == 100 + SIGKILL, "partial writer: code %d", rc);
    runlog_meta m = test_meta();
    runlog l;
    int64_t *done = NULL, n_done = 0;
    ns_status st = runlog_resume(&l, path, &m, &done, &n_done);
    EXPECT(!st, "resume after a cut search: %s", ns_error_message());
    if (st) return;
    int64_t cands = 0;
    for (int s = 0; s < 10; s++) cands += record_candidates(s);
    EXPECT(n_done == 10 && l.n_candidates == cands, "resume: %lld done, %lld candidate rows (expected 10, %lld)",
           (long long)n_done, (long long)l.n_candidates, (long long)cands);
    EXPECT(l.dropped_candidates >= 4096 && l.dropped_trajectory_rows > 0,
           "resume dropped %lld candidate and %lld trajectory rows of the cut search", (long long)l.dropped_candidates,
           (long long)l.dropped_trajectory_rows);
    printf("partial: resume dropped %lld candidate rows and %lld trajectory rows\n", (long long)l.dropped_candidates,
           (long long)l.dropped_trajectory_rows);
    free(done);
    // Closed at once, the file holds exactly the complete searches' rows.
    int64_t traj = l.n_trajectory_rows;
    EXPECT(!runlog_close(&l, "interrupted"), "close: %s", ns_error_message());
    const char *cols[] = {"candidates/search", "candidates/noise", "candidates/x1_hat", "trajectories/state",
                          "trajectories/candidate_row", "searches/search", "searches/sample"};
    const int64_t want[] = {cands, cands, cands, traj, traj, 10, 10};
    hid_t f;
    if (!h5u_open_read(&f, path)) {
        for (int i = 0; i < 7; i++) {
            hsize_t dims[4] = {0};
            hid_t d = H5Dopen2(f, cols[i], H5P_DEFAULT), sp = H5Dget_space(d);
            H5Sget_simple_extent_dims(sp, dims, NULL);
            H5Sclose(sp), H5Dclose(d);
            EXPECT((int64_t)dims[0] == want[i], "after resume and close, %s has %lld rows, expected %lld", cols[i],
                   (long long)dims[0], (long long)want[i]);
        }
        h5u_close_file(f);
    }
    st = runlog_resume(&l, path, &m, &done, &n_done);
    EXPECT(!st && n_done == 10 && l.dropped_candidates == 0, "second resume: %s", st ? ns_error_message() : "");
    free(done);
    if (st) return;
    EXPECT(!add_records(&l, 10, KILL_SEARCHES, 1, &m), "continue: %s", ns_error_message());
    EXPECT(!runlog_close(&l, "complete"), "close: %s", ns_error_message());
    expect_same_rows(ref, path);
}

static void test_resume_checks(const char *dir) {
    char basic[4200], path[4200], plain[4200];
    snprintf(basic, sizeof basic, "%s/basic.h5", dir);
    snprintf(path, sizeof path, "%s/resumed.h5", dir);
    copy_file(basic, path);
    runlog_meta m = test_meta();
    runlog l;
    int64_t *done = NULL, n_done = 0;

    runlog_meta other = m;
    other.results_yaml = "run:\n  seed: 7\n  samples_per_class: 3\nsampler:\n  kind: heun\n  search_nfe: 50\n";
    ns_status st = runlog_resume(&l, path, &other, &done, &n_done);
    EXPECT(st == NS_ERR_ARG && strstr(ns_error_message(), "line 3") && strstr(ns_error_message(), "samples_per_class: 2") &&
               strstr(ns_error_message(), "samples_per_class: 3") && !done,
           "different config: %d '%s'", st, ns_error_message());
    other.results_yaml = "run:\n  seed: 7\n  samples_per_class: 2\nsampler:\n  kind: heun\n  search_nfe: 50\nx: 1\n";
    st = runlog_resume(&l, path, &other, &done, &n_done);
    EXPECT(st == NS_ERR_ARG && strstr(ns_error_message(), "line 7"), "longer config: %d '%s'", st, ns_error_message());
    other.results_yaml = "run:\n  seed: 7\n";
    st = runlog_resume(&l, path, &other, &done, &n_done);
    EXPECT(st == NS_ERR_ARG && strstr(ns_error_message(), "line 3"), "shorter config: %d '%s'", st, ns_error_message());

    write_bytes(model_path, "other weights", 13);
    st = runlog_resume(&l, path, &m, &done, &n_done);
    EXPECT(st == NS_ERR_ARG && strstr(ns_error_message(), model_path), "changed weights: %d '%s'", st,
           ns_error_message());
    write_bytes(model_path, "model weights", 13);

    snprintf(plain, sizeof plain, "%s/plain.h5", dir);
    hid_t f = H5Fcreate(plain, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(f);
    st = runlog_resume(&l, plain, &m, &done, &n_done);
    EXPECT(st == NS_ERR_FORMAT && strstr(ns_error_message(), plain), "not a log: %d '%s'", st, ns_error_message());
    write_bytes(plain, "text", 4);
    st = runlog_resume(&l, plain, &m, &done, &n_done);
    EXPECT(st == NS_ERR_FORMAT && strstr(ns_error_message(), plain), "not HDF5: %d '%s'", st, ns_error_message());
    snprintf(plain, sizeof plain, "%s/absent.h5", dir);
    st = runlog_resume(&l, plain, &m, &done, &n_done);
    EXPECT(st == NS_ERR_IO && strstr(ns_error_message(), plain), "missing log: %d '%s'", st, ns_error_message());
    runlog_meta shape = m;
    shape.log_x1_hat = 0;
    st = runlog_resume(&l, path, &shape, &done, &n_done);
    EXPECT(st == NS_ERR_FORMAT && strstr(ns_error_message(), "x1_hat"), "column set differs: %d '%s'", st,
           ns_error_message());
    char status[64];
    read_status(path, status, sizeof status);
    EXPECT(!strcmp(status, "complete"), "refused resumes touched the file: status '%s'", status);

    // The real thing: resume a complete log and add two searches.
    st = runlog_resume(&l, path, &m, &done, &n_done);
    EXPECT(!st && n_done == BASIC_SEARCHES && l.dropped_candidates == 0, "resume: %s (%lld done)",
           st ? ns_error_message() : "", (long long)n_done);
    if (st) return;
    for (int64_t i = 0; i < n_done; i++) EXPECT(done[i] == i, "done[%lld] = %lld", (long long)i, (long long)done[i]);
    free(done);
    int64_t id;
    int32_t label;
    float fid[5];
    st = runlog_read_search(&l, 4, &id, &label, fid);
    EXPECT(!st && id == 4 && label == 4 && fid[2] == uf(4, SEARCH_J, 300002), "read_search after resume: %s",
           ns_error_message());
    EXPECT(!add_records(&l, BASIC_SEARCHES, BASIC_SEARCHES + 2, 0, &m), "add: %s", ns_error_message());
    EXPECT(!runlog_close(&l, "complete"), "close: %s", ns_error_message());
}

// ---------------------------------------------------------------------------
// Memory stays flat: 200 000 candidate rows.

static long rss_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) kib = atol(line + 6);
    if (f) fclose(f);
    return kib;
}

static void test_memory(const char *dir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/memory.h5", dir);
    unlink(path);
    runlog_meta m = test_meta();
    m.log_trajectories = 0;
    runlog l;
    ns_status st = runlog_create(&l, path, &m, 0);
    EXPECT(!st, "create: %s", ns_error_message());
    if (st) return;
    enum { PER = 100, SEARCHES = 2000 };
    size_t per = cand_floats(dim_of(&m));
    runlog_candidate *c = ns_malloc(PER * sizeof *c, "cands");
    float *t = ns_malloc(PER * per * sizeof(float), "cands");
    for (int j = 0; j < PER; j++) make_candidate(&c[j], t + (size_t)j * per, 0, j, dim_of(&m), 0);
    record r = {0};
    record_make(&r, 0, dim_of(&m), m.fid_dim, 0);
    long early = 0, peak = 0;
    double t0 = ns_now();
    for (int s = 0; s < SEARCHES && !st; s++) {
        for (int j = 0; j < PER; j++) c[j].search = s;
        r.s.search = s;
        st = runlog_add(&l, &r.s, c, PER);
        if (!st && s % 20 == 19) st = runlog_flush(&l);
        long now = rss_kib();
        if (s == 50) early = now;
        if (now > peak) peak = now;
    }
    double dt = ns_now() - t0;
    EXPECT(!st, "add: %s", ns_error_message());
    EXPECT(!runlog_close(&l, "complete"), "close: %s", ns_error_message());
    printf("memory: %d candidate rows in %.2f s; RSS %ld KiB after 5000 rows, peak %ld KiB\n", PER * SEARCHES, dt,
           early, peak);
    EXPECT(peak - early < 4096, "RSS grew by %ld KiB between 5000 and 200000 rows", peak - early);
    free(c), free(t), free(r.t);
    unlink(path);
}

// ---------------------------------------------------------------------------
// Throughput (not a test: prints a table).

static void throughput(const char *dir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/throughput.h5", dir);
    printf("| columns | rows | seconds | rows/s | file bytes/row | flush ms (mean) |\n|---|---|---|---|---|---|\n");
    for (int with_noise = 1; with_noise >= 0; with_noise--) {
        unlink(path);
        runlog_meta m = test_meta();
        m.channels = 1, m.height = 28, m.width = 28, m.fid_dim = 0, m.log_trajectories = 0;
        m.log_noise = m.log_x1_hat = with_noise;
        runlog l;
        NS_CHECK(!runlog_create(&l, path, &m, 0));
        enum { PER = 64, SEARCHES = 1000 };
        size_t per = cand_floats(dim_of(&m));
        runlog_candidate *c = ns_malloc(PER * sizeof *c, "cands");
        float *t = ns_malloc(PER * per * sizeof(float), "cands");
        record r = {0};
        double t0 = ns_now(), flush = 0;
        for (int s = 0; s < SEARCHES; s++) {
            for (int j = 0; j < PER; j++) make_candidate(&c[j], t + (size_t)j * per, s, j, dim_of(&m), 0);
            record_make(&r, s, dim_of(&m), 0, 0);
            NS_CHECK(!runlog_add(&l, &r.s, c, PER));
            if (s % 16 == 15) {
                double f0 = ns_now();
                NS_CHECK(!runlog_flush(&l));
                flush += ns_now() - f0;
            }
        }
        NS_CHECK(!runlog_close(&l, "complete"));
        double dt = ns_now() - t0;
        // The generator's own cost, to subtract.
        double g0 = ns_now();
        for (int s = 0; s < SEARCHES; s++) {
            for (int j = 0; j < PER; j++) make_candidate(&c[j], t + (size_t)j * per, s, j, dim_of(&m), 0);
            record_make(&r, s, dim_of(&m), 0, 0);
        }
        dt -= ns_now() - g0;
        struct stat sb;
        stat(path, &sb);
        printf("| %s | %d | %.3f | %.0f | %.0f | %.1f |\n",
               with_noise ? "all + noise, x1_hat (1x28x28, gzip 1)" : "scalars + sample", PER * SEARCHES, dt,
               PER * SEARCHES / dt, (double)sb.st_size / (PER * SEARCHES), flush / (SEARCHES / 16) * 1e3);
        free(c), free(t), free(r.t);
    }
    unlink(path);
}

int main(int argc, char **argv) {
    if (argc == 5 && !strcmp(argv[1], "--writer")) {
        char *dir = strdup(argv[2]);
        *strrchr(dir, '/') = '\0';
        snprintf(model_path, sizeof model_path, "%s/model.bin", dir);
        write_bytes(model_path, "model weights", 13);
        free(dir);
        unlink(argv[2]);
        return writer_run(argv[2], atoll(argv[3]), atoi(argv[4]) * 1000);
    }
    if (argc == 3 && !strcmp(argv[1], "--throughput")) {
        mkdir(argv[2], 0755);
        snprintf(model_path, sizeof model_path, "%s/model.bin", argv[2]);
        write_bytes(model_path, "model weights", 13);
        throughput(argv[2]);
        return 0;
    }
    if (argc != 2) {
        fprintf(stderr, "usage: test_runlog DIR | --writer PATH N DELAY_MS | --throughput DIR\n");
        return 2;
    }
    const char *dir = argv[1];
    mkdir(dir, 0755);
    snprintf(model_path, sizeof model_path, "%s/model.bin", dir);
    write_bytes(model_path, "model weights", 13);
    for (int i = 0; i < 3; i++) {
        char p[4200];
        snprintf(p, sizeof p, "%s/killed-%d.h5", dir, i);
        unlink(p);
    }
    tmp_files(dir, "", 1);  // a SIGKILL during create (test_kill_resume) can leave one
    double t0 = ns_now();
    test_basic(dir);
    test_refusals(dir);
    test_full_disk(dir);
    test_kill_resume(dir);
    test_partial(dir);
    test_resume_checks(dir);
    test_memory(dir);
    printf("runlog: %d failures (%.1f s)\n", failures, ns_now() - t0);
    return failures != 0;
}
