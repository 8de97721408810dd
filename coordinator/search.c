// The search algorithms (search.h; search-reference §3).
#include "search.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../model/noise.h"

#define FINAL_CANDIDATE (-1)  // candidate id of final-denoising tasks (paths replays: -1 - step)

static int per_eval(const search_config *c) {
    return (c->sampler == SAMPLER_HEUN ? 2 : 1) * (c->cfg_scale != 1.0 ? 2 : 1);
}

int search_steps_for(const search_config *cfg, int nfe) {
    int steps = nfe / per_eval(cfg);
    return steps > 0 ? steps : 1;
}

uint32_t search_verifier_kinds(const search_config *cfg) {
    if (cfg->algorithm == SEARCH_NONE) return 0;
    uint32_t k = 0;
    for (int i = 0; i < cfg->num_terms; i++) k |= VERIFIER_BIT(cfg->terms[i].kind);
    return k;
}

static int uses_fid(const search *s) { return (search_verifier_kinds(s->cfg) & VERIFIER_BIT(VERIFIER_FID_ORACLE)) != 0; }

void search_init(search *s, const search_config *cfg, int64_t id, int dim, int fid_dim) {
    memset(s, 0, sizeof *s);
    s->cfg = cfg;
    s->id = id;
    s->dim = dim;
    s->fid_dim = fid_dim;
    s->label = cfg->classes[id / cfg->samples_per_class];
    s->index = (int32_t)(id % cfg->samples_per_class);
    s->pivot_id = -1;
    s->chosen = -1;
    s->final_score = NAN;
    s->started = ns_now();
}

void search_free(search *s) {
    for (int i = 0; i < s->n_cand; i++) {
        search_candidate *c = &s->cand[i];
        free(c->state), free(c->noise), free(c->x1_hat), free(c->fid), free(c->trajectory), free(c->trajectory_t);
    }
    free(s->cand), free(s->pivot), free(s->alive), free(s->sample), free(s->replay), free(s->replay_state);
    memset(s, 0, sizeof *s);
}

static float *copy_floats(const float *src, size_t n) {
    float *p = ns_malloc(n * sizeof(float) + 1, "search state");
    memcpy(p, src, n * sizeof(float));
    return p;
}

static noise_key search_key(const search *s) {
    return (noise_key){.seed = s->cfg->seed, .stream = ((uint64_t)(uint32_t)s->label << 32) | (uint64_t)s->index};
}

// Full-run steps of the search and of the final budget, and whether a
// candidate's own search-budget run is already the final sample.
static int search_steps(const search *s) { return search_steps_for(s->cfg, s->cfg->search_nfe); }
static int final_steps(const search *s) { return search_steps_for(s->cfg, s->cfg->final_nfe); }
static int final_is_search(const search *s) { return search_steps(s) == final_steps(s); }

// A task for this search with the run's sampler settings.
static task base_task(const search *s, int64_t candidate, uint64_t noise_base) {
    const search_config *c = s->cfg;
    task t = {.search = s->id, .candidate = candidate, .label = s->label, .start = TASK_FROM_NOISE,
              .noise = search_key(s), .noise_base = noise_base, .t_a = 0.0f, .t_b = 1.0f,
              .sampler = (int32_t)c->sampler, .steps = search_steps(s), .cfg_scale = (float)c->cfg_scale,
              .cfg_channels = c->cfg_channels, .early_t = (float)c->self_similarity_t,
              .trajectory_stride = c->trajectory_stride};
    return t;
}

// A new candidate (id = its index) of the current round.
static search_candidate *add_candidate(search *s, int64_t parent, task *t) {
    if (s->n_cand == s->cap_cand) {
        s->cap_cand = s->cap_cand ? 2 * s->cap_cand : 16;
        s->cand = realloc(s->cand, (size_t)s->cap_cand * sizeof *s->cand);
        NS_CHECK(s->cand != NULL);
    }
    search_candidate *c = &s->cand[s->n_cand];
    memset(c, 0, sizeof *c);
    t->candidate = s->n_cand++;
    t->noise_base = (uint64_t)t->candidate << 32;
    c->round = s->round;
    c->parent = parent;
    c->score = NAN;
    return c;
}

// Emit a search candidate: logging wants and the verifiers of the run.
static void emit_candidate(search *s, int64_t parent, task t, const float *payload, int need_state,
                           search_emit_fn emit, void *user) {
    const search_config *c = s->cfg;
    search_candidate *cand = add_candidate(s, parent, &t);
    if (need_state) t.want |= TASK_WANT_END;
    if (c->log_noise) t.want |= TASK_WANT_START;
    if (c->log_x1_hat) t.want |= TASK_WANT_X1_HAT;
    if (c->log_trajectories) t.want |= TASK_WANT_TRAJECTORY;
    cand->task = t;
    s->pending++;
    emit(user, &cand->task, payload);
}

// ---------------------------------------------------------------------------
// Scores of a round: the single verifier's score, or the ensemble's mean
// rank within the group (the candidates ids[0..n) compared together).

static void score_group(search *s, const int64_t *ids, int n) {
    const search_config *c = s->cfg;
    if (!c->ensemble) {
        verifier_kind k = c->terms[0].kind;
        for (int i = 0; i < n; i++) s->cand[ids[i]].score = s->cand[ids[i]].res.scores[k];
        return;
    }
    int T = c->num_terms;
    double *table = ns_malloc((size_t)T * n * sizeof(double), "ensemble table");
    double *out = ns_malloc((size_t)n * sizeof(double), "ensemble ranks"), w[CONFIG_MAX_ENSEMBLE];
    for (int t = 0; t < T; t++) {
        w[t] = c->terms[t].weight;
        for (int i = 0; i < n; i++) table[(size_t)t * n + i] = s->cand[ids[i]].res.scores[c->terms[t].kind];
    }
    verifier_ensemble_ranks(out, table, n, w, T, n);
    for (int i = 0; i < n; i++) s->cand[ids[i]].score = out[i];
    free(table), free(out);
}

// Best of ids by score; ties (and NaN) go to the lower candidate id.
static int64_t best_of(const search *s, const int64_t *ids, int n) {
    int64_t best = ids[0];
    for (int i = 1; i < n; i++) {
        double a = s->cand[ids[i]].score, b = s->cand[best].score;
        if (a > b || (a == b && ids[i] < best) || (isnan(b) && !isnan(a))) best = ids[i];
    }
    return best;
}

static int64_t *round_ids(const search *s, int round, int *n) {
    int64_t *ids = ns_malloc((size_t)(s->n_cand + 1) * sizeof(int64_t), "round ids");
    *n = 0;
    for (int i = 0; i < s->n_cand; i++)
        if (s->cand[i].round == round) ids[(*n)++] = i;
    return ids;
}

// ---------------------------------------------------------------------------
// Final denoising

// scored: the final sample gets the run's per-candidate verifier scores
// (not computed for intermediate segments of a paths replay).
static void emit_final(search *s, task t, const float *payload, int scored, search_emit_fn emit, void *user) {
    t.want = TASK_WANT_END;
    t.verifiers = scored ? search_verifier_kinds(s->cfg) & ~VERIFIER_BIT(VERIFIER_FID_ORACLE) : 0;
    s->pending = 1;
    emit(user, &t, payload);
}

static void paths_replay_step(search *s, search_emit_fn emit, void *user);

// The chosen candidate is known: run (or reuse) its final denoising.
static void start_final(search *s, search_emit_fn emit, void *user) {
    const search_config *c = s->cfg;
    search_candidate *ch = &s->cand[s->chosen];
    s->phase = SEARCH_PHASE_FINAL;
    if (final_is_search(s) && ch->state && ch->task.t_b == 1.0f) {
        s->sample = copy_floats(ch->state, (size_t)s->dim);
        s->phase = SEARCH_PHASE_DONE;
        return;
    }
    if (c->algorithm == SEARCH_PATHS) {
        // The ancestor chain, root first, replayed at the final budget.
        int n = 0;
        for (int64_t a = s->chosen; a >= 0; a = s->cand[a].parent) n++;
        s->replay = ns_malloc((size_t)n * sizeof(int64_t), "replay chain");
        s->n_replay = n;
        for (int64_t a = s->chosen; a >= 0; a = s->cand[a].parent) s->replay[--n] = a;
        s->replay_at = 0;
        paths_replay_step(s, emit, user);
        return;
    }
    task t = base_task(s, FINAL_CANDIDATE, ch->task.noise_base);
    t.steps = final_steps(s);
    if (ch->task.start == TASK_FROM_STATE) {
        t.start = TASK_FROM_STATE;
        t.state_t = 0.0f;
        emit_final(s, t, ch->noise, 1, emit, user);
    } else {
        emit_final(s, t, NULL, 1, emit, user);
    }
}

// Steps of a paths segment [t_a, t_b] at a budget: proportional to its share
// of a full run for the initial segment, L NFEs (scaled with the budget) for
// a branch.
static int segment_steps(const search *s, const task *orig, int final) {
    double scale = final ? (double)final_steps(s) / search_steps(s) : 1.0;
    double steps = orig->steps * scale;
    int n = (int)lround(steps);
    return n > 0 ? n : 1;
}

static void paths_replay_step(search *s, search_emit_fn emit, void *user) {
    const search_candidate *c = &s->cand[s->replay[s->replay_at]];
    task t = c->task;
    t.candidate = -1 - s->replay_at;
    t.steps = segment_steps(s, &c->task, 1);
    t.trajectory_stride = 0;
    emit_final(s, t, t.start == TASK_FROM_STATE ? s->replay_state : NULL, s->replay_at + 1 == s->n_replay, emit,
               user);
}

// ---------------------------------------------------------------------------
// Algorithms

static void random_start(search *s, int n, search_emit_fn emit, void *user) {
    uint32_t kinds = search_verifier_kinds(s->cfg);
    for (int i = 0; i < n; i++) {
        task t = base_task(s, 0, 0);
        t.verifiers = kinds;
        emit_candidate(s, -1, t, NULL, final_is_search(s), emit, user);
    }
}

// Zero-order neighbour of pivot n (dim d) with direction noise w:
// u = n/|n|, w -= (w.u) u, w /= |w|, neighbour = |n| (tau u + sqrt(1 - tau^2) w).
static void zo_neighbour(float *out, const float *pivot, const float *w, int d, double tau) {
    double nn = 0, wu = 0, ww = 0;
    for (int i = 0; i < d; i++) nn += (double)pivot[i] * pivot[i];
    double norm = sqrt(nn);
    for (int i = 0; i < d; i++) wu += (double)w[i] * (pivot[i] / norm);
    double *perp = ns_malloc((size_t)d * sizeof(double), "zo direction");
    for (int i = 0; i < d; i++) perp[i] = w[i] - wu * (pivot[i] / norm), ww += perp[i] * perp[i];
    double pn = sqrt(ww), side = sqrt(1.0 - tau * tau);
    for (int i = 0; i < d; i++) out[i] = (float)(norm * (tau * (pivot[i] / norm) + side * perp[i] / pn));
    free(perp);
}

static void zo_round(search *s, search_emit_fn emit, void *user) {
    const search_config *c = s->cfg;
    uint32_t kinds = search_verifier_kinds(c);
    int d = s->dim;
    if (s->pivot_id < 0) {  // a pivot not yet scored: the first one, or a fresh one after a stall
        task t = base_task(s, 0, 0);
        t.verifiers = kinds;
        int64_t id = s->n_cand;
        if (!s->pivot) s->pivot = ns_malloc((size_t)d * sizeof(float), "pivot");
        noise_fill(s->pivot, (size_t)d, search_key(s), (uint64_t)id << 32);
        emit_candidate(s, -1, t, NULL, final_is_search(s), emit, user);
        s->pivot_id = id;
        s->cand[id].noise = s->cand[id].noise ? s->cand[id].noise : copy_floats(s->pivot, (size_t)d);
    }
    float *w = ns_malloc((size_t)d * sizeof(float), "zo noise"), *nb = ns_malloc((size_t)d * sizeof(float), "zo state");
    for (int j = 0; j < c->zo_neighbours; j++) {
        int64_t id = s->n_cand;
        noise_fill(w, (size_t)d, search_key(s), (uint64_t)id << 32);
        zo_neighbour(nb, s->pivot, w, d, c->zo_tau);
        task t = base_task(s, 0, 0);
        t.start = TASK_FROM_STATE;
        t.state_t = 0.0f;
        t.verifiers = kinds;
        // The neighbour's noise is kept on rank 0: a later pivot and its final need it.
        emit_candidate(s, s->pivot_id, t, nb, final_is_search(s), emit, user);
        search_candidate *cand = &s->cand[id];
        if (!cand->noise) cand->noise = copy_floats(nb, (size_t)d);
    }
    free(w), free(nb);
}

static void zo_round_done(search *s, search_emit_fn emit, void *user) {
    const search_config *c = s->cfg;
    int n;
    int64_t *ids = round_ids(s, s->round, &n);
    // Compare the pivot (scored now or in an earlier round) with this round's neighbours.
    int has_pivot = 0;
    for (int i = 0; i < n; i++) has_pivot |= ids[i] == s->pivot_id;
    if (!has_pivot) ids[n++] = s->pivot_id;
    score_group(s, ids, n);
    int64_t best = best_of(s, ids, n);
    free(ids);
    s->round++;
    int last = s->round == c->zo_iterations;
    if (best != s->pivot_id) {
        s->pivot_id = best;
        memcpy(s->pivot, s->cand[best].noise, (size_t)s->dim * sizeof(float));
    } else if (c->zo_restart_on_stall && !last) {
        s->pivot_id = -1;  // stall: a fresh pivot next round
    }
    if (last) {
        s->chosen = s->pivot_id;
        start_final(s, emit, user);
    } else {
        zo_round(s, emit, user);
    }
}

static void paths_start(search *s, search_emit_fn emit, void *user) {
    const search_config *c = s->cfg;
    for (int i = 0; i < c->paths_initial; i++) {
        task t = base_task(s, 0, 0);
        t.t_b = (float)c->paths_start_t;
        t.steps = (int)lround(c->paths_start_t * search_steps(s));
        if (t.steps < 1) t.steps = 1;
        emit_candidate(s, -1, t, NULL, 1, emit, user);
    }
}

static void paths_branch(search *s, search_emit_fn emit, void *user) {
    const search_config *c = s->cfg;
    int steps = c->paths_nfe_per_step / per_eval(c);
    for (int a = 0; a < s->n_alive; a++) {
        // By value: emit_candidate grows s->cand, so no pointer into it survives
        // the loop (the state is its own allocation).
        int64_t parent = s->alive[a];
        float parent_t = s->cand[parent].task.t_b;
        const float *parent_state = s->cand[parent].state;
        double ta = (double)parent_t - c->paths_delta_f;
        if (ta < 0) ta = 0;
        double tb = ta + c->paths_delta_b;
        for (int m = 0; m < c->paths_width; m++) {
            task t = base_task(s, 0, 0);
            t.start = TASK_FROM_STATE;
            t.state_t = parent_t;
            t.t_a = (float)ta;
            t.t_b = tb >= 1.0 ? 1.0f : (float)tb;
            t.steps = steps > 0 ? steps : 1;
            t.verifiers = search_verifier_kinds(c);
            emit_candidate(s, parent, t, parent_state, 1, emit, user);
        }
    }
}

static int cmp_score_desc(const void *a, const void *b, void *ctx) {
    const search *s = ctx;
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    double sx = s->cand[x].score, sy = s->cand[y].score;
    if (sx > sy || (!isnan(sx) && isnan(sy))) return -1;
    if (sx < sy || (isnan(sx) && !isnan(sy))) return 1;
    return x < y ? -1 : x > y;
}

// Insertion sort by (score desc, id asc): deterministic and stable.
static void sort_by_score(search *s, int64_t *ids, int n) {
    for (int i = 1; i < n; i++) {
        int64_t v = ids[i];
        int j = i - 1;
        while (j >= 0 && cmp_score_desc(&ids[j], &v, s) > 0) ids[j + 1] = ids[j], j--;
        ids[j + 1] = v;
    }
}

static void paths_round_done(search *s, search_emit_fn emit, void *user) {
    const search_config *c = s->cfg;
    int n;
    int64_t *ids = round_ids(s, s->round, &n);
    int reached_end = s->cand[ids[0]].task.t_b == 1.0f;
    if (s->round > 0) {
        score_group(s, ids, n);
        sort_by_score(s, ids, n);
        if (n > c->paths_initial) n = c->paths_initial;
    }
    free(s->alive);
    s->alive = ids;
    s->n_alive = n;
    // States of branches that did not survive are no longer needed.
    for (int i = 0; i < s->n_cand; i++) {
        int alive = 0;
        for (int a = 0; a < n; a++) alive |= s->alive[a] == i;
        if (!alive && s->cand[i].state && !(final_is_search(s) && s->cand[i].task.t_b == 1.0f)) {
            free(s->cand[i].state);
            s->cand[i].state = NULL;
        }
    }
    s->round++;
    if (reached_end && s->round > 1) {
        s->chosen = s->alive[0];
        start_final(s, emit, user);
    } else {
        paths_branch(s, emit, user);
    }
}

// ---------------------------------------------------------------------------
// Driving

void search_start(search *s, search_emit_fn emit, void *user) {
    const search_config *c = s->cfg;
    s->phase = SEARCH_PHASE_RUN;
    switch (c->algorithm) {
    case SEARCH_NONE: {
        task t = base_task(s, 0, 0);
        t.steps = final_steps(s);
        emit_candidate(s, -1, t, NULL, 1, emit, user);
        break;
    }
    case SEARCH_RANDOM: random_start(s, c->random_candidates, emit, user); break;
    case SEARCH_ZERO_ORDER: zo_round(s, emit, user); break;
    case SEARCH_PATHS: paths_start(s, emit, user); break;
    }
}

static void keep_outputs(search *s, search_candidate *c, const task *t, const result *r, const float *payload) {
    size_t d = (size_t)s->dim;
    result_layout l = result_layout_of(t, r, s->dim);
    if (t->want & TASK_WANT_END) c->state = copy_floats(payload + l.end, d);
    if ((t->want & TASK_WANT_START) && !c->noise) c->noise = copy_floats(payload + l.start, d);
    if (t->want & TASK_WANT_X1_HAT) c->x1_hat = copy_floats(payload + l.x1_hat, d);
    if (r->fid_dim) c->fid = copy_floats(payload + l.fid, (size_t)r->fid_dim);
    if (r->n_trajectory) {
        c->trajectory = copy_floats(payload + l.trajectory, (size_t)r->n_trajectory * d);
        c->trajectory_t = copy_floats(payload + l.trajectory_t, (size_t)r->n_trajectory);
    }
}

void search_on_result(search *s, const task *t, const result *r, const float *payload, search_emit_fn emit,
                      void *user) {
    const search_config *c = s->cfg;
    NS_CHECK(s->pending > 0);
    s->pending--;
    s->verifier_seconds += r->verifier_seconds;
    if (s->phase == SEARCH_PHASE_FINAL) {
        result_layout l = result_layout_of(t, r, s->dim);
        s->final_nfe += r->nfe;
        if (c->algorithm == SEARCH_PATHS && s->replay && s->replay_at + 1 < s->n_replay) {
            if (!s->replay_state) s->replay_state = ns_malloc((size_t)s->dim * sizeof(float), "replay state");
            memcpy(s->replay_state, payload + l.end, (size_t)s->dim * sizeof(float));
            s->replay_at++;
            paths_replay_step(s, emit, user);
            return;
        }
        s->sample = copy_floats(payload + l.end, (size_t)s->dim);
        if (!c->ensemble && c->num_terms && c->algorithm != SEARCH_NONE) s->final_score = r->scores[c->terms[0].kind];
        s->phase = SEARCH_PHASE_DONE;
        s->wall_seconds = ns_now() - s->started;
        return;
    }
    NS_CHECK(t->candidate >= 0 && t->candidate < s->n_cand);
    search_candidate *cand = &s->cand[t->candidate];
    NS_CHECK(!cand->done);
    cand->done = 1;
    cand->res = *r;
    s->search_nfe += r->nfe;
    keep_outputs(s, cand, t, r, payload);
    if (s->pending) return;
    switch (c->algorithm) {
    case SEARCH_NONE:
        s->search_nfe = 0;
        s->final_nfe = r->nfe;
        s->chosen = 0;
        s->sample = copy_floats(cand->state, (size_t)s->dim);
        s->phase = SEARCH_PHASE_DONE;
        break;
    case SEARCH_RANDOM: {
        int n;
        int64_t *ids = round_ids(s, 0, &n);
        if (uses_fid(s)) {
            s->phase = SEARCH_PHASE_CHOOSE;  // the scheduler picks, in search order
        } else {
            score_group(s, ids, n);
            s->chosen = best_of(s, ids, n);
            start_final(s, emit, user);
        }
        free(ids);
        break;
    }
    case SEARCH_ZERO_ORDER: zo_round_done(s, emit, user); break;
    case SEARCH_PATHS: paths_round_done(s, emit, user); break;
    }
    if (s->phase == SEARCH_PHASE_DONE) s->wall_seconds = ns_now() - s->started;
}

void search_choose(search *s, int64_t chosen, search_emit_fn emit, void *user) {
    NS_CHECK(s->phase == SEARCH_PHASE_CHOOSE && chosen >= 0 && chosen < s->n_cand);
    s->chosen = chosen;
    start_final(s, emit, user);
    if (s->phase == SEARCH_PHASE_DONE) s->wall_seconds = ns_now() - s->started;
}
