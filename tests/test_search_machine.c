// The search state machine (coordinator/search.c) alone, driven by a
// synthetic executor instead of the denoiser: a task's end state is a
// deterministic function of the task (and of the state it starts from), its
// score a function of that state. Hundreds of random configurations of
// random, zero_order and paths (widths and rounds that grow the candidate
// array many times), single verifiers and ensembles, each run with its
// results returned in task order and in two shuffled orders. Checks: every
// search ends with a sample; the chosen candidate, the sample bits and the
// NFE counts do not depend on the order results arrive in; the NFEs are the
// sum of what the tasks reported; random search picks its best candidate;
// a paths choice is a chain of segments ending at t = 1. The test target
// compiles search.c with AddressSanitizer, so a pointer kept across the
// growth of the candidate array is an error here, not a rare crash.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../coordinator/search.h"
#include "expect.h"
#include "test_rng.h"

#define DIM 6

typedef struct {
    task t;
    float payload[DIM];
    int has_payload;
} pending_task;

typedef struct {
    pending_task *items;
    int count, cap;
} task_list;

static void on_emit(void *user, const task *t, const float *payload) {
    task_list *q = user;
    if (q->count == q->cap) {
        q->cap = q->cap ? 2 * q->cap : 64;
        q->items = realloc(q->items, (size_t)q->cap * sizeof *q->items);
    }
    pending_task *p = &q->items[q->count++];
    memset(p, 0, sizeof *p);
    p->t = *t;
    size_t n = task_payload_floats(t, DIM);
    EXPECT(n == 0 || n == DIM, "task payload of %zu floats", n);
    if (n) {
        EXPECT(payload != NULL, "a TASK_FROM_STATE task without its state");
        if (payload) memcpy(p->payload, payload, sizeof p->payload);
        p->has_payload = 1;
    }
}

static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t float_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

// The synthetic "denoiser + verifiers" of one task: deterministic in the
// task's noise, interval and steps and in its start state.
static void execute(const pending_task *p, result *r, float *out, size_t out_floats) {
    const task *t = &p->t;
    memset(r, 0, sizeof *r);
    r->search = t->search;
    r->candidate = t->candidate;
    r->nfe = t->steps * (t->sampler == SAMPLER_HEUN ? 2 : 1) * (t->cfg_scale != 1.0f ? 2 : 1);
    uint64_t h = mix(t->noise.seed ^ mix(t->noise.stream ^ mix(t->noise_base)));
    h = mix(h ^ float_bits(t->t_a) ^ (float_bits(t->t_b) << 32) ^ ((uint64_t)t->steps << 48));
    float end[DIM];
    for (int i = 0; i < DIM; i++) {
        double u = (double)(mix(h + (uint64_t)i) >> 11) * 0x1.0p-53 - 0.5;
        end[i] = (float)(p->has_payload ? 0.5 * p->payload[i] + u : u);
    }
    for (int k = 0; k < VERIFIER_KINDS; k++) {
        r->scores[k] = NAN;
        if (t->verifiers & VERIFIER_BIT(k)) r->scores[k] = end[k % DIM] + 0.01 * k;
    }
    result_layout l = result_layout_of(t, r, DIM);
    EXPECT(l.total <= out_floats, "result payload of %zu floats", l.total);
    memset(out, 0, out_floats * sizeof(float));
    if (t->want & TASK_WANT_END) memcpy(out + l.end, end, sizeof end);
    if (t->want & TASK_WANT_X1_HAT) memcpy(out + l.x1_hat, end, sizeof end);
    if (t->want & TASK_WANT_START) memcpy(out + l.start, p->has_payload ? p->payload : end, sizeof end);
}

typedef struct {
    int64_t chosen, search_nfe, final_nfe, reported_search_nfe, reported_final_nfe;
    int n_cand;
    float sample[DIM];
    int done;
} outcome;

// Run one search to the end. order 0: results in task order; else tasks
// of the queue are answered in a random order (a batch taken whole, like
// a worker's bundle, and answered shuffled).
static outcome run_search(const search_config *cfg, int64_t id, int order) {
    search s;
    search_init(&s, cfg, id, DIM, 0);
    task_list q = {0};
    search_start(&s, on_emit, &q);
    outcome o = {.chosen = -1};
    float out[8 * DIM];
    for (int guard = 0; q.count > 0 && guard < 1000000; guard++) {
        int pick = order ? (int)(uniform01() * q.count) : 0;
        pending_task p = q.items[pick];
        memmove(&q.items[pick], &q.items[pick + 1], (size_t)(q.count - pick - 1) * sizeof *q.items);
        q.count--;
        result r;
        execute(&p, &r, out, sizeof out / sizeof *out);
        if (s.phase == SEARCH_PHASE_FINAL) o.reported_final_nfe += r.nfe;
        else o.reported_search_nfe += r.nfe;
        search_on_result(&s, &p.t, &r, out, on_emit, &q);
    }
    o.done = s.phase == SEARCH_PHASE_DONE && s.sample != NULL;
    o.chosen = s.chosen;
    o.search_nfe = s.search_nfe;
    o.final_nfe = s.final_nfe;
    o.n_cand = s.n_cand;
    if (s.sample) memcpy(o.sample, s.sample, sizeof o.sample);

    // Algorithm-specific properties of the choice.
    if (o.done && cfg->algorithm == SEARCH_RANDOM && !cfg->ensemble) {
        int64_t best = 0;
        for (int i = 1; i < s.n_cand; i++)
            if (s.cand[i].score > s.cand[best].score) best = i;
        EXPECT(s.chosen == best, "random: chose %lld, best is %lld", (long long)s.chosen, (long long)best);
        EXPECT(s.n_cand == cfg->random_candidates, "random: %d candidates, asked %d", s.n_cand,
               cfg->random_candidates);
    }
    if (o.done && cfg->algorithm == SEARCH_PATHS) {
        EXPECT(s.cand[s.chosen].task.t_b == 1.0f, "paths: chosen segment ends at t = %g", s.cand[s.chosen].task.t_b);
        int64_t a = s.chosen, links = 0;
        while (s.cand[a].parent >= 0 && links < s.n_cand) {
            int64_t parent = s.cand[a].parent;
            EXPECT(parent < a, "paths: parent %lld of %lld", (long long)parent, (long long)a);
            EXPECT(s.cand[a].task.state_t == s.cand[parent].task.t_b, "paths: segment starts off its parent's end");
            a = parent, links++;
        }
        EXPECT(s.cand[a].task.t_a == 0.0f && s.cand[a].task.start == TASK_FROM_NOISE, "paths: root not from noise");
    }
    search_free(&s);
    free(q.items);
    return o;
}

static void random_config(search_config *c) {
    search_config_defaults(c);
    c->seed = (uint64_t)(uniform01() * 1e9);
    c->algorithm = (search_algorithm)(1 + (int)(uniform01() * 3));  // random, zero_order, paths
    c->sampler = uniform01() < 0.5 ? SAMPLER_HEUN : SAMPLER_EULER;
    int per = c->sampler == SAMPLER_HEUN ? 2 : 1;
    c->cfg_scale = uniform01() < 0.25 ? 2.0 : 1.0;
    if (c->cfg_scale != 1.0) per *= 2;
    c->search_nfe = per * (1 + (int)(uniform01() * 10));
    c->final_nfe = uniform01() < 0.3 ? c->search_nfe : per * (1 + (int)(uniform01() * 20));
    c->random_candidates = 1 + (int)(uniform01() * 70);
    c->zo_neighbours = 1 + (int)(uniform01() * 8);
    c->zo_iterations = 1 + (int)(uniform01() * 8);
    c->zo_restart_on_stall = uniform01() < 0.5;
    c->paths_initial = 1 + (int)(uniform01() * 6);
    c->paths_width = 1 + (int)(uniform01() * 6);
    c->paths_start_t = 0.1 + 0.8 * uniform01();
    c->paths_delta_f = 0.05 + 0.2 * uniform01();
    c->paths_delta_b = c->paths_delta_f + 0.05 + 0.3 * uniform01();
    c->paths_nfe_per_step = per * (1 + (int)(uniform01() * 4));
    c->log_noise = uniform01() < 0.5;
    c->log_x1_hat = uniform01() < 0.3;
    c->log_trajectories = 0;
    c->ensemble = uniform01() < 0.3;
    c->num_terms = c->ensemble ? 2 : 1;
    c->terms[0] = (config_verifier_term){VERIFIER_CLASS_LOGIT, 1.0};
    c->terms[1] = (config_verifier_term){VERIFIER_SELF_SIMILARITY, 0.5 + uniform01()};
}

int main(void) {
    int runs = 0, max_cand = 0;
    for (int trial = 0; trial < 300; trial++) {
        search_config cfg;
        random_config(&cfg);
        const char *name = search_algorithm_name(cfg.algorithm);
        int64_t id = (int64_t)(uniform01() * cfg.num_classes * cfg.samples_per_class);
        outcome ref = run_search(&cfg, id, 0);
        EXPECT(ref.done, "trial %d (%s): the search did not finish", trial, name);
        EXPECT(ref.search_nfe == ref.reported_search_nfe && ref.final_nfe == ref.reported_final_nfe,
               "trial %d (%s): NFEs %lld + %lld, tasks reported %lld + %lld", trial, name,
               (long long)ref.search_nfe, (long long)ref.final_nfe, (long long)ref.reported_search_nfe,
               (long long)ref.reported_final_nfe);
        for (int order = 1; order <= 2; order++) {
            outcome o = run_search(&cfg, id, order);
            EXPECT(o.done && o.chosen == ref.chosen && o.n_cand == ref.n_cand && o.search_nfe == ref.search_nfe &&
                       o.final_nfe == ref.final_nfe && !memcmp(o.sample, ref.sample, sizeof o.sample),
                   "trial %d (%s): results in another order gave chosen %lld (%d candidates), in task order %lld "
                   "(%d)",
                   trial, name, (long long)o.chosen, o.n_cand, (long long)ref.chosen, ref.n_cand);
        }
        if (ref.n_cand > max_cand) max_cand = ref.n_cand;
        runs++;
    }
    printf("%d configurations x 3 result orders; up to %d candidates in one search; %d failures\n", runs, max_cand,
           failures);
    return failures != 0;
}
