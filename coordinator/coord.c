// The rank-0 scheduler (coord.h).
#include "coord.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "../common/h5util.h"
#include "../common/png_grid.h"
#include "../verifiers/metrics.h"
#include "search.h"

#define COORD_IDLE_SLEEP_US 500

executor_config coord_executor_config(const search_config *cfg, int threads, int worker) {
    uint32_t kinds = search_verifier_kinds(cfg);
    int needs_v = 0, needs_e = 0;
    for (int k = 0; k < VERIFIER_KINDS; k++)
        if (kinds & VERIFIER_BIT(k)) verifier_kind_is_oracle(k) ? (needs_e = 1) : (needs_v = 1);
    executor_config e = {.model_path = cfg->model, .verifier_kinds = kinds,
                         .classifier_path = needs_v ? cfg->classifier : NULL,
                         .evaluator_path = needs_e ? cfg->evaluator : NULL, .max_batch = cfg->batch,
                         .threads = threads, .worker = worker};
    return e;
}

// ---------------------------------------------------------------------------
// The task queue: FIFO of tasks with their own copy of the payload.

typedef struct {
    task t;
    float *payload;  // (dim) or NULL
} queued_task;

typedef struct {
    queued_task *items;
    size_t head, count, cap;
} task_queue;

static void queue_push(task_queue *q, const task *t, const float *payload, int dim) {
    if (q->count == q->cap) {
        size_t cap = q->cap ? 2 * q->cap : 256;
        queued_task *items = ns_malloc(cap * sizeof *items, "task queue");
        for (size_t i = 0; i < q->count; i++) items[i] = q->items[(q->head + i) % q->cap];
        free(q->items);
        q->items = items, q->head = 0, q->cap = cap;
    }
    queued_task *it = &q->items[(q->head + q->count++) % q->cap];
    it->t = *t;
    it->payload = NULL;
    size_t n = task_payload_floats(t, dim);
    if (n) {
        it->payload = ns_malloc(n * sizeof(float), "task payload");
        memcpy(it->payload, payload, n * sizeof(float));
    }
}

static queued_task queue_pop(task_queue *q) {
    queued_task it = q->items[q->head];
    q->head = (q->head + 1) % q->cap;
    q->count--;
    return it;
}

// ---------------------------------------------------------------------------
// Run state

typedef struct {
    const coord_options *o;
    const search_config *cfg;
    MPI_Comm comm;
    int size;                 // P
    executor *local;          // P == 1
    worker_hello hello;       // model/verifier facts (from the workers or the local executor)
    int dim, fid_dim;
    int64_t total;            // searches
    int64_t next_start, next_write, next_choose;
    int window;               // searches in flight at most
    search *win;              // (window) search id % window
    char *active;             // (window)
    task_queue queue;
    char *busy;               // (P) worker holds a bundle
    int n_busy;
    task_buffer out;
    unsigned char *in;
    size_t in_cap;
    runlog log;
    int log_open;
    metrics_fid_greedy greedy;
    int greedy_ready;
    // progress
    double t_start, t_last_progress, t_last_flush;
    int64_t candidates_done, nfe_done, written_this_run;
    int tty, workers_stopped;
    char failure[1024];
} coord;

static void emit_task(void *user, const task *t, const float *payload) {
    coord *c = user;
    queue_push(&c->queue, t, payload, c->dim);
}

static search *slot(coord *c, int64_t id) { return &c->win[id % c->window]; }

// The first failure wins; it is what the user sees, after the log is flushed.
__attribute__((format(printf, 2, 3))) static void fail(coord *c, const char *fmt, ...) {
    if (c->failure[0]) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->failure, sizeof c->failure, fmt, ap);
    va_end(ap);
}

// Start searches while the window and the queue have room.
static void activate(coord *c) {
    size_t want = (size_t)(c->size > 1 ? c->size - 1 : 1) * (size_t)c->cfg->batch * 2;
    while (c->next_start < c->total && c->next_start < c->next_write + c->window && c->queue.count < want) {
        search *s = slot(c, c->next_start);
        search_init(s, c->cfg, c->next_start, c->dim, c->fid_dim);
        c->active[c->next_start % c->window] = 1;
        search_start(s, emit_task, c);
        c->next_start++;
    }
}

static void deliver(coord *c, const task *t, const result *r, const float *payload) {
    if (t->search < c->next_write || t->search >= c->next_start || !c->active[t->search % c->window]) {
        fail(c, "rank 0: a result for search %lld, which is not in flight", (long long)t->search);
        return;
    }
    search *s = slot(c, t->search);
    search_on_result(s, t, r, payload, emit_task, c);
    if (t->candidate >= 0) c->candidates_done++;
    c->nfe_done += r->nfe;
}

// fid_oracle: choose for the searches waiting in CHOOSE, in search-id order.
static void choose_in_order(coord *c) {
    while (c->next_choose < c->next_start) {
        search *s = slot(c, c->next_choose);
        if (s->phase == SEARCH_PHASE_RUN) return;
        if (s->phase == SEARCH_PHASE_CHOOSE) {
            double *fid = ns_malloc((size_t)s->n_cand * sizeof(double), "fid scores");
            float *feats = ns_malloc((size_t)s->n_cand * c->fid_dim * sizeof(float), "fid features");
            for (int i = 0; i < s->n_cand; i++)
                memcpy(feats + (size_t)i * c->fid_dim, s->cand[i].fid, (size_t)c->fid_dim * sizeof(float));
            ns_status st = metrics_fid_greedy_score(&c->greedy, fid, feats, s->n_cand);
            int64_t best = 0;
            for (int i = 0; i < s->n_cand && !st; i++) {
                s->cand[i].score = -fid[i];  // higher is better
                if (fid[i] < fid[best]) best = i;
            }
            if (!st) st = metrics_fid_greedy_add(&c->greedy, s->cand[best].fid);
            free(fid), free(feats);
            if (st) {
                fail(c, "rank 0: fid_oracle: %s", ns_error_message());
                return;
            }
            search_choose(s, best, emit_task, c);
        }
        c->next_choose++;
    }
}

// Append finished searches to the log, in id order.
static void write_done(coord *c) {
    while (c->next_write < c->next_start && slot(c, c->next_write)->phase == SEARCH_PHASE_DONE) {
        search *s = slot(c, c->next_write);
        runlog_candidate *rows = ns_calloc((size_t)s->n_cand + 1, sizeof *rows, "log rows");
        for (int i = 0; i < s->n_cand; i++) {
            const search_candidate *k = &s->cand[i];
            runlog_candidate *r = &rows[i];
            *r = (runlog_candidate){.search = s->id, .candidate = i, .label = s->label, .round = k->round,
                                    .parent = k->parent, .noise_stream = k->task.noise.stream,
                                    .noise_base = k->task.noise_base, .t_a = k->task.t_a, .t_b = k->task.t_b,
                                    .nfe = k->res.nfe, .score = k->score, .worker = k->res.worker,
                                    .seconds = k->res.seconds, .verifier_seconds = k->res.verifier_seconds,
                                    .noise = k->noise, .x1_hat = k->x1_hat, .trajectory = k->trajectory,
                                    .trajectory_t = k->trajectory_t, .n_trajectory = k->res.n_trajectory};
            memcpy(r->scores, k->res.scores, sizeof r->scores);
        }
        // Verifier cost in denoiser-NFE equivalents: images scored per candidate
        // (two for self_similarity) times the network's FLOPs over the denoiser's.
        double vnfe = 0;
        uint32_t kinds = search_verifier_kinds(c->cfg);
        for (int k = 0; k < VERIFIER_KINDS; k++) {
            if (!(kinds & VERIFIER_BIT(k))) continue;
            double f = verifier_kind_is_oracle(k) ? c->hello.evaluator_flops : c->hello.classifier_flops;
            vnfe += (k == VERIFIER_SELF_SIMILARITY ? 2 : 1) * f / c->hello.denoiser_flops;
        }
        runlog_search row = {.search = s->id, .label = s->label, .index = s->index, .chosen = s->chosen,
                             .search_nfe = s->search_nfe, .final_nfe = s->final_nfe,
                             .verifier_nfe = vnfe * (s->n_cand + 1), .verifier_seconds = s->verifier_seconds,
                             .wall_seconds = s->wall_seconds, .score = s->final_score, .sample = s->sample,
                             .fid_features = c->fid_dim && s->chosen >= 0 ? s->cand[s->chosen].fid : NULL};
        ns_status st = runlog_add(&c->log, &row, rows, s->n_cand);
        free(rows);
        if (st) {
            fail(c, "rank 0: %s", ns_error_message());
            return;
        }
        search_free(s);
        c->active[c->next_write % c->window] = 0;
        c->next_write++;
        c->written_this_run++;
    }
}

// Peak resident memory of this process (getrusage reports kB on Linux).
static double peak_rss_mb(void) {
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) ? 0.0 : ru.ru_maxrss / 1024.0;
}

static void format_eta(char *buf, size_t n, double seconds) {
    if (!isfinite(seconds) || seconds < 0) snprintf(buf, n, "--");
    else if (seconds < 120) snprintf(buf, n, "%.0fs", seconds);
    else if (seconds < 7200) snprintf(buf, n, "%.0fm%02.0fs", floor(seconds / 60), fmod(seconds, 60));
    else snprintf(buf, n, "%.1fh", seconds / 3600);
}

static void progress(coord *c, int final) {
    double now = ns_now(), el = now - c->t_start;
    if (!final && now - c->t_last_progress < (c->tty ? 0.5 : c->cfg->progress_every)) return;
    c->t_last_progress = now;
    int64_t remaining = c->total - c->next_write;
    double rate = c->written_this_run / (el > 0 ? el : 1);
    char eta[32];
    format_eta(eta, sizeof eta, c->written_this_run ? remaining / rate : NAN);
    fprintf(stderr, "%ssearch: %lld/%lld searches  %lld candidates (%.1f/s)  %.0f NFE/s  ETA %s%s",
            c->tty ? "\r" : "", (long long)c->next_write, (long long)c->total, (long long)c->candidates_done,
            c->candidates_done / (el > 0 ? el : 1), c->nfe_done / (el > 0 ? el : 1), eta,
            c->tty && !final ? "   " : "\n");
}

// ---------------------------------------------------------------------------
// Workers

static void send_bundle(coord *c, int w) {
    task_buffer_reset(&c->out);
    for (int i = 0; i < c->cfg->batch && c->queue.count; i++) {
        queued_task it = queue_pop(&c->queue);
        task_pack(&c->out, &it.t, it.payload, c->dim);
        free(it.payload);
    }
    MPI_Send(c->out.data, (int)c->out.size, MPI_BYTE, w, WORKER_TAG_TASKS, c->comm);
    c->busy[w] = 1;
    c->n_busy++;
}

// Receive one message (already probed) into c->in; returns its byte count.
static int receive(coord *c, const MPI_Status *s) {
    int n;
    MPI_Get_count(s, MPI_BYTE, &n);
    if ((size_t)n + 1 > c->in_cap) {
        free(c->in);
        c->in_cap = (size_t)n + 1;
        c->in = ns_malloc(c->in_cap, "result buffer");
    }
    MPI_Recv(c->in, n, MPI_BYTE, s->MPI_SOURCE, s->MPI_TAG, c->comm, MPI_STATUS_IGNORE);
    c->in[n] = 0;
    return n;
}

static void handle_message(coord *c, const MPI_Status *s) {
    int n = receive(c, s), w = s->MPI_SOURCE;
    char who[32];
    snprintf(who, sizeof who, "rank %d", w);
    if (s->MPI_TAG == WORKER_TAG_ERROR) {
        fail(c, "%s: %s", who, (const char *)c->in);
        if (c->busy[w]) c->busy[w] = 0, c->n_busy--;
        return;
    }
    if (s->MPI_TAG != WORKER_TAG_RESULTS) {
        fail(c, "%s: unexpected message (tag %d)", who, s->MPI_TAG);
        return;
    }
    c->busy[w] = 0;
    c->n_busy--;
    task_cursor cur = {c->in, (size_t)n, 0};
    task t;
    result r;
    const float *p;
    int more;
    while ((more = result_next(&cur, &t, &r, &p, c->dim)) == 1) deliver(c, &t, &r, p);
    if (more < 0) fail(c, "%s: malformed result message", who);
}

// P == 1: run one bundle here.
static void run_local(coord *c) {
    int n = 0;
    int cap = c->cfg->batch;
    task *tasks = ns_malloc((size_t)cap * sizeof *tasks, "local tasks");
    float **payloads = ns_malloc((size_t)cap * sizeof *payloads, "local payloads");
    result *results = ns_malloc((size_t)cap * sizeof *results, "local results");
    while (n < cap && c->queue.count) {
        queued_task it = queue_pop(&c->queue);
        tasks[n] = it.t, payloads[n] = it.payload, n++;
    }
    ns_status st = executor_run(c->local, tasks, (const float *const *)payloads, n, results);
    if (st) fail(c, "rank 0: %s", ns_error_message());
    for (int i = 0; i < n && !st; i++) deliver(c, &tasks[i], &results[i], c->local->out + c->local->out_offset[i]);
    for (int i = 0; i < n; i++) free(payloads[i]);
    free(tasks), free(payloads), free(results);
}

// ---------------------------------------------------------------------------
// Start-up: the workers' hellos (or their errors).

static int gather_hellos(coord *c) {
    if (c->size == 1) {
        c->hello = worker_hello_of(c->local);
        return 0;
    }
    int got = 0, bad = 0;
    while (got < c->size - 1) {
        MPI_Status s;
        worker_wait_message(c->comm, MPI_ANY_SOURCE, &s, COORD_IDLE_SLEEP_US);
        receive(c, &s);
        got++;
        if (s.MPI_TAG == WORKER_TAG_HELLO) {
            memcpy(&c->hello, c->in, sizeof c->hello);
        } else {
            char who[32];
            snprintf(who, sizeof who, "rank %d", s.MPI_SOURCE);
            fail(c, "%s: %s", who, s.MPI_TAG == WORKER_TAG_ERROR ? (const char *)c->in : "unexpected message");
            bad = 1;
        }
    }
    return bad;
}

static void stop_workers(coord *c) {
    // Drain: every bundle out must come back before STOP (workers only read
    // STOP between bundles).
    while (c->n_busy > 0) {
        MPI_Status s;
        worker_wait_message(c->comm, MPI_ANY_SOURCE, &s, COORD_IDLE_SLEEP_US);
        handle_message(c, &s);
    }
    for (int w = 1; w < c->size; w++) MPI_Send(NULL, 0, MPI_BYTE, w, WORKER_TAG_STOP, c->comm);
}

// ---------------------------------------------------------------------------
// The log

static char *verifier_label(const search_config *cfg) {
    char *buf = ns_malloc(512, "verifier label");
    if (cfg->algorithm == SEARCH_NONE) {
        snprintf(buf, 512, "none");
    } else if (!cfg->ensemble) {
        snprintf(buf, 512, "%s", verifier_kind_name(cfg->terms[0].kind));
    } else {
        size_t at = (size_t)snprintf(buf, 512, "ensemble(");
        for (int i = 0; i < cfg->num_terms && at < 500; i++)
            at += (size_t)snprintf(buf + at, 512 - at, "%s%s", i ? "," : "", verifier_kind_name(cfg->terms[i].kind));
        snprintf(buf + at, 512 - at, ")");
    }
    return buf;
}

static int open_log(coord *c) {
    const search_config *cfg = c->cfg;
    char *resolved = search_config_to_yaml(cfg), *results = search_config_results_yaml(cfg);
    char *vlabel = verifier_label(cfg);
    executor_config ec = coord_executor_config(cfg, 0, 0);
    int fid = (search_verifier_kinds(cfg) & VERIFIER_BIT(VERIFIER_FID_ORACLE)) != 0;
    runlog_meta m = {.config_yaml = c->o->config_text, .resolved_yaml = resolved, .results_yaml = results,
                     .overrides = c->o->overrides,
                     .model_path = cfg->model, .classifier_path = ec.classifier_path,
                     .evaluator_path = ec.evaluator_path, .reference_path = fid ? cfg->reference : NULL,
                     .algorithm = search_algorithm_name(cfg->algorithm), .verifier = vlabel,
                     .oracle = search_config_is_oracle(cfg), .ranks = c->size, .channels = c->hello.channels,
                     .height = c->hello.image_size, .width = c->hello.image_size, .fid_dim = c->fid_dim,
                     .denoiser_flops = c->hello.denoiser_flops, .log_noise = cfg->log_noise, .log_x1_hat = cfg->log_x1_hat,
                     .log_trajectories = cfg->log_trajectories};
    ns_status st;
    int64_t *done = NULL, n_done = 0;
    if (c->o->resume) {
        st = runlog_resume(&c->log, cfg->out, &m, &done, &n_done);
    } else {
        st = runlog_create(&c->log, cfg->out, &m, c->o->overwrite);
    }
    free(resolved), free(results), free(vlabel);
    if (st) {
        fail(c, "%s", ns_error_message());
        free(done);
        return -1;
    }
    c->log_open = 1;
    // Searches are logged in id order, so the finished ones are a prefix.
    for (int64_t i = 0; i < n_done; i++)
        if (done[i] != i) {
            fail(c, "%s: the finished searches are not a prefix of the run (log written by another version?)",
                 cfg->out);
            free(done);
            return -1;
        }
    free(done);
    c->next_start = c->next_write = c->next_choose = n_done;
    if (fid) {
        metrics_gaussian ref;
        memset(&ref, 0, sizeof ref);
        st = metrics_gaussian_load(&ref, cfg->reference, METRICS_REFERENCE_GROUP);
        if (!st) st = metrics_fid_greedy_init(&c->greedy, &ref, NULL);
        metrics_gaussian_free(&ref);
        c->greedy_ready = !st;
        float *f = ns_malloc((size_t)c->fid_dim * sizeof(float), "fid features");
        for (int64_t i = 0; i < n_done && !st; i++) {
            int64_t id;
            int32_t label;
            st = runlog_read_search(&c->log, i, &id, &label, f);
            if (!st) st = metrics_fid_greedy_add(&c->greedy, f);
        }
        free(f);
        if (st) {
            fail(c, "%s", ns_error_message());
            return -1;
        }
    }
    if (n_done)
        fprintf(stderr, "search: resuming %s: %lld of %lld searches already done\n", cfg->out, (long long)n_done,
                (long long)c->total);
    return 0;
}

// A PNG grid of the final samples (one row per class) beside the log.
static void write_png(coord *c) {
    const search_config *cfg = c->cfg;
    if (!cfg->log_png || c->total > 10000) return;
    hid_t f;
    if (h5u_open_read(&f, cfg->out)) return;
    hsize_t dims[4];
    float *samples = NULL;
    ns_status st = h5u_read_floats(f, cfg->out, "searches/sample", 4, dims, &samples);
    h5u_close_file(f);
    if (st || (int64_t)dims[0] != c->total) {
        free(samples);
        return;
    }
    char path[CONFIG_PATH_MAX + 8];
    snprintf(path, sizeof path, "%s", cfg->out);
    char *dot = strrchr(path, '.');
    if (dot && !strchr(dot, '/')) *dot = 0;
    strcat(path, ".png");
    png_grid_layout g = {.rows = cfg->num_classes, .cols = cfg->samples_per_class, .channels = (int)dims[1],
                         .height = (int)dims[2], .width = (int)dims[3], .zoom = 2, .pad = 2};
    if (png_grid_write(path, samples, &g)) fprintf(stderr, "search: %s\n", ns_error_message());
    else fprintf(stderr, "search: wrote %s\n", path);
    free(samples);
}

// ---------------------------------------------------------------------------

int coord_run(const coord_options *o, MPI_Comm comm, executor *local) {
    coord c;
    memset(&c, 0, sizeof c);
    c.o = o;
    c.cfg = o->cfg;
    c.comm = comm;
    MPI_Comm_size(comm, &c.size);
    c.local = local;
    c.total = (int64_t)o->cfg->num_classes * o->cfg->samples_per_class;
    c.busy = ns_calloc((size_t)c.size, 1, "worker flags");
    c.tty = isatty(2);
    int code = COORD_EXIT_FAILED;
    if (gather_hellos(&c)) goto done;
    c.dim = c.hello.dim;
    c.fid_dim = (search_verifier_kinds(c.cfg) & VERIFIER_BIT(VERIFIER_FID_ORACLE)) ? c.hello.fid_dim : 0;
    // In flight: enough searches to keep every worker's batch full twice over.
    int workers = c.size > 1 ? c.size - 1 : 1;
    c.window = 4 * workers * c.cfg->batch + 4;
    c.win = ns_calloc((size_t)c.window, sizeof *c.win, "search window");
    c.active = ns_calloc((size_t)c.window, 1, "search flags");
    if (open_log(&c)) goto done;
    fprintf(stderr, "search: %s with %s, %lld searches (%d classes x %d), %d rank%s%s -> %s\n",
            search_algorithm_name(c.cfg->algorithm), verifier_kind_name(c.cfg->terms[0].kind), (long long)c.total,
            c.cfg->num_classes, c.cfg->samples_per_class, c.size, c.size > 1 ? "s" : "",
            search_config_is_oracle(c.cfg) ? " [oracle]" : "", c.cfg->out);
    c.t_start = c.t_last_flush = ns_now();
    int interrupted = 0;
    while (c.next_write < c.total && !c.failure[0]) {
        if (*o->stop_requested) {
            interrupted = 1;
            break;
        }
        activate(&c);
        int worked = 0;
        if (c.size == 1) {
            if (c.queue.count) run_local(&c), worked = 1;
        } else {
            int flag;
            MPI_Status s;
            while (MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, comm, &flag, &s), flag) {
                handle_message(&c, &s);
                worked = 1;
            }
            activate(&c);
            for (int w = 1; w < c.size && c.queue.count && !c.failure[0]; w++)
                if (!c.busy[w]) send_bundle(&c, w), worked = 1;
        }
        choose_in_order(&c);
        write_done(&c);
        double now = ns_now();
        if (now - c.t_last_flush >= c.cfg->flush_every) {
            if (runlog_flush(&c.log)) fail(&c, "rank 0: %s", ns_error_message());
            c.t_last_flush = now;
        }
        progress(&c, 0);
        if (!worked && c.size > 1) {
            struct timespec ts = {0, COORD_IDLE_SLEEP_US * 1000L};
            nanosleep(&ts, NULL);
        }
        if (!worked && c.size == 1 && !c.queue.count && c.next_write < c.total && c.next_start == c.total &&
            !c.failure[0]) {
            // Nothing queued, nothing running, searches unfinished: a broken invariant.
            fail(&c, "rank 0: the scheduler stalled at search %lld (phase %d)", (long long)c.next_write,
                 (int)slot(&c, c.next_write)->phase);
        }
    }
    if (c.size > 1) stop_workers(&c);  // drained results are logged below
    c.workers_stopped = 1;
    choose_in_order(&c);
    write_done(&c);
    progress(&c, 1);
    if (c.failure[0]) code = COORD_EXIT_FAILED;
    else if (interrupted) code = COORD_EXIT_INTERRUPTED;
    else code = COORD_EXIT_OK;
done:
    if (c.size > 1 && !c.workers_stopped) stop_workers(&c);
    if (c.log_open) {
        char status[1100];
        snprintf(status, sizeof status, "%s%s",
                 code == COORD_EXIT_OK ? "complete" : code == COORD_EXIT_INTERRUPTED ? "interrupted" : "failed: ",
                 code == COORD_EXIT_FAILED ? c.failure : "");
        if (runlog_close(&c.log, status) && code == COORD_EXIT_OK) {
            fail(&c, "rank 0: %s", ns_error_message());
            code = COORD_EXIT_FAILED;
        }
        if (code == COORD_EXIT_OK) write_png(&c);
    }
    if (code == COORD_EXIT_FAILED) fprintf(stderr, "noisesearch search: %s\n", c.failure);
    else if (code == COORD_EXIT_INTERRUPTED)
        fprintf(stderr, "noisesearch search: interrupted; %s holds %lld of %lld searches; --resume continues\n",
                c.cfg->out, (long long)c.next_write, (long long)c.total);
    else
        fprintf(stderr, "noisesearch search: done, %lld searches in %s (%.1f s; rank 0 peak memory %.1f MB)\n",
                (long long)c.total, c.cfg->out, ns_now() - c.t_start, peak_rss_mb());
    for (int64_t i = c.next_write; i < c.next_start; i++)
        if (c.active[i % c.window]) search_free(slot(&c, i));
    while (c.queue.count) free(queue_pop(&c.queue).payload);
    free(c.queue.items), free(c.win), free(c.active), free(c.busy), free(c.in);
    task_buffer_free(&c.out);
    if (c.greedy_ready) metrics_fid_greedy_free(&c.greedy);
    return code;
}
