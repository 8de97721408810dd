// Executing tasks (executor.h): noise or state in, sampler over [t_a, t_b],
// clean prediction, verifier scores, results out.
#include "executor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../model/dit_io.h"

ns_status executor_init(executor *e, const executor_config *cfg) {
    memset(e, 0, sizeof *e);
    e->cfg = *cfg;
    ns_status st = dit_load(&e->model, cfg->model_path);
    if (st) return st;
    int B = cfg->max_batch;
    if ((st = dit_workspace_init(&e->dws, &e->model.cfg, B, cfg->threads))) goto fail;
    e->den = (denoiser){&e->model, &e->dws};
    e->sm = denoiser_sampler_model(&e->den);
    e->dim = e->sm.dim;
    if ((st = sampler_workspace_init(&e->sws, e->dim, B))) goto fail;
    if (cfg->verifier_kinds &&
        (st = verifier_set_init(&e->vs, cfg->verifier_kinds, cfg->classifier_path, cfg->evaluator_path, B,
                                cfg->threads)))
        goto fail;
    e->fid_dim = cfg->verifier_kinds & VERIFIER_BIT(VERIFIER_FID_ORACLE) ? verifier_set_fid_dim(&e->vs) : 0;
    if (cfg->verifier_kinds && (st = verifier_set_check_input(&e->vs, e->model.cfg.in_channels,
                                                               e->model.cfg.input_size, e->model.cfg.input_size)))
        goto fail;
    size_t bd = (size_t)B * e->dim * sizeof(float);
    e->x = ns_aligned_alloc(bd, "executor states");
    e->scored = ns_aligned_alloc(bd, "executor scored images");
    e->x1 = ns_aligned_alloc(bd, "executor x1_hat");
    e->early = ns_aligned_alloc(bd, "executor early states");
    e->early_x1 = ns_aligned_alloc(bd, "executor early x1_hat");
    e->start = ns_aligned_alloc(bd, "executor start states");
    e->keys = ns_malloc((size_t)B * sizeof(noise_key), "executor keys");
    e->labels = ns_malloc((size_t)B * sizeof(int), "executor labels");
    e->scores = ns_malloc((size_t)B * VERIFIER_KINDS * sizeof(double), "executor scores");
    e->fid = ns_aligned_alloc(((size_t)B * e->fid_dim + 1) * sizeof(float), "executor fid features");
    e->group = ns_malloc((size_t)B * sizeof(int), "executor group");
    return NS_OK;
fail:
    executor_free(e);
    return st;
}

void executor_free(executor *e) {
    dit_model_free(&e->model);
    dit_workspace_free(&e->dws);
    sampler_workspace_free(&e->sws);
    verifier_set_free(&e->vs);
    free(e->x), free(e->scored), free(e->x1), free(e->early), free(e->early_x1), free(e->start);
    free(e->keys), free(e->labels), free(e->scores), free(e->fid), free(e->traj), free(e->traj_t);
    free(e->out), free(e->out_offset), free(e->done), free(e->group);
    memset(e, 0, sizeof *e);
}

int executor_dim(const executor *e) { return e->dim; }
int executor_channels(const executor *e) { return e->model.cfg.in_channels; }
int executor_image_size(const executor *e) { return e->model.cfg.input_size; }

// Tasks that can share one sampler run: everything but identity, label,
// noise key and state must match (and the SDE's counter base, which is one
// value per run).
static int same_group(const task *a, const task *b) {
    return a->start == b->start && a->state_t == b->state_t && a->t_a == b->t_a && a->t_b == b->t_b &&
           a->sampler == b->sampler && a->steps == b->steps && a->cfg_scale == b->cfg_scale &&
           a->cfg_channels == b->cfg_channels && a->want == b->want && a->verifiers == b->verifiers &&
           a->early_t == b->early_t && a->trajectory_stride == b->trajectory_stride &&
           (a->sampler != SAMPLER_EULER_MARUYAMA || a->noise_base == b->noise_base);
}

static int wants_early(const task *t) {
    return (t->verifiers & VERIFIER_BIT(VERIFIER_SELF_SIMILARITY)) != 0;
}

// Trajectory points of a run: the start, every stride-th step, the last.
static int trajectory_points(const task *t) {
    if (!(t->want & TASK_WANT_TRAJECTORY)) return 0;
    int k = t->trajectory_stride > 0 ? t->trajectory_stride : 1;
    return 1 + t->steps / k + (t->steps % k != 0);
}

static void record_trajectory(executor *e, const float *x, float t, int B) {
    size_t d = (size_t)e->dim;
    for (int b = 0; b < B; b++)
        memcpy(e->traj + ((size_t)b * e->traj_cap + e->traj_n) * d, x + (size_t)b * d, d * sizeof(float));
    e->traj_t[e->traj_n++] = t;
}

static ns_status on_step(void *user, int step, float t, const float *x, int B) {
    executor *e = user;
    const task *g = e->group_task;
    if (g->want & TASK_WANT_TRAJECTORY) {
        int k = g->trajectory_stride > 0 ? g->trajectory_stride : 1;
        if ((step + 1) % k == 0 || step + 1 == g->steps) record_trajectory(e, x, t, B);
    }
    if (wants_early(g) && !e->early_taken && t >= g->early_t) {
        memcpy(e->early, x, (size_t)B * e->dim * sizeof(float));
        e->early_time = t;
        e->early_taken = 1;
    }
    return NS_OK;
}

// One model batch: tasks idx[0..B) all of one group.
static ns_status run_group(executor *e, const task *tasks, const float *const *payloads, const int *idx, int B,
                           result *results) {
    const task *g = &tasks[idx[0]];
    size_t d = (size_t)e->dim;
    double t0 = ns_now();
    for (int b = 0; b < B; b++) {
        const task *t = &tasks[idx[b]];
        e->keys[b] = t->noise;
        e->labels[b] = t->label;
        float *x = e->x + b * d;
        if (t->start == TASK_FROM_NOISE) {
            noise_fill(x, d, t->noise, t->noise_base);
        } else {
            memcpy(x, payloads[idx[b]], d * sizeof(float));
            if (t->state_t > t->t_a) {
                ns_status st = sampler_renoise(&e->sws, x, 1, t->state_t, t->t_a, &e->keys[b], t->noise_base);
                if (st) return st;
            }
        }
    }
    memcpy(e->start, e->x, B * d * sizeof(float));
    int points = trajectory_points(g);
    if (points > e->traj_cap) {
        free(e->traj), free(e->traj_t);
        e->traj_cap = points;
        e->traj = ns_aligned_alloc((size_t)e->cfg.max_batch * points * d * sizeof(float), "trajectories");
        e->traj_t = ns_malloc((size_t)points * sizeof(float), "trajectory times");
    }
    e->traj_n = 0;
    e->group_task = g;
    e->early_taken = 0;
    if (points) record_trajectory(e, e->x, g->t_a, B);
    if (wants_early(g) && g->t_a >= g->early_t) {
        memcpy(e->early, e->x, B * d * sizeof(float));
        e->early_time = g->t_a, e->early_taken = 1;
    }
    sampler_params sp = {.kind = (sampler_kind)g->sampler, .steps = g->steps, .t_a = g->t_a, .t_b = g->t_b,
                         .cfg_scale = g->cfg_scale, .cfg_channels = g->cfg_channels};
    int nfe = 0, more = 0;
    ns_status st = sampler_run(&e->sm, &sp, &e->sws, e->x, e->labels, B, e->keys, g->noise_base + d, on_step, e, &nfe);
    if (st) return st;
    int need_scores = g->verifiers != 0;
    // The clean prediction at t_b (the end state itself at t = 1).
    if (g->t_b < 1.0f && (need_scores || (g->want & TASK_WANT_X1_HAT))) {
        st = sampler_x1_hat_eval(&e->sm, &e->sws, e->x1, e->x, g->t_b, e->labels, B, g->cfg_scale, g->cfg_channels,
                                 &more);
        if (st) return st;
        nfe += more;
    } else {
        memcpy(e->x1, e->x, B * d * sizeof(float));
    }
    if (wants_early(g)) {
        NS_CHECK(e->early_taken);
        st = sampler_x1_hat_eval(&e->sm, &e->sws, e->early_x1, e->early, e->early_time, e->labels, B, g->cfg_scale,
                                 g->cfg_channels, &more);
        if (st) return st;
        nfe += more;
    }
    double t1 = ns_now();
    for (size_t i = 0; i < (size_t)B * VERIFIER_KINDS; i++) e->scores[i] = NAN;
    if (need_scores) {
        // Score with only the kinds this group asked for.
        uint32_t all = e->vs.kinds;
        e->vs.kinds = g->verifiers;
        st = verifier_set_score(&e->vs, e->x1, wants_early(g) ? e->early_x1 : NULL, e->labels, B, e->scores,
                                e->fid_dim ? e->fid : NULL);
        e->vs.kinds = all;
        if (st) return st;
    }
    double t2 = ns_now();
    for (int b = 0; b < B; b++) {
        const task *t = &tasks[idx[b]];
        result *r = &results[idx[b]];
        memset(r, 0, sizeof *r);
        r->search = t->search, r->candidate = t->candidate, r->worker = e->cfg.worker, r->nfe = nfe;
        r->n_trajectory = e->traj_n;
        r->fid_dim = (t->verifiers & VERIFIER_BIT(VERIFIER_FID_ORACLE)) ? e->fid_dim : 0;
        memcpy(r->scores, e->scores + (size_t)b * VERIFIER_KINDS, sizeof r->scores);
        r->seconds = (t2 - t0) / B;
        r->verifier_seconds = (t2 - t1) / B;
        result_layout l = result_layout_of(t, r, e->dim);
        float *out = e->out + e->out_offset[idx[b]];
        if (t->want & TASK_WANT_END) memcpy(out + l.end, e->x + b * d, d * sizeof(float));
        if (t->want & TASK_WANT_X1_HAT) memcpy(out + l.x1_hat, e->x1 + b * d, d * sizeof(float));
        if (t->want & TASK_WANT_START) memcpy(out + l.start, e->start + b * d, d * sizeof(float));
        if (r->fid_dim) memcpy(out + l.fid, e->fid + (size_t)b * e->fid_dim, (size_t)e->fid_dim * sizeof(float));
        for (int k = 0; k < e->traj_n; k++)
            memcpy(out + l.trajectory + k * d, e->traj + ((size_t)b * e->traj_cap + k) * d, d * sizeof(float));
        memcpy(out + l.trajectory_t, e->traj_t, (size_t)e->traj_n * sizeof(float));
    }
    return NS_OK;
}

ns_status executor_run(executor *e, const task *tasks, const float *const *payloads, int n, result *results) {
    if (n <= 0) return NS_OK;
    if (n > e->max_tasks) {
        free(e->out_offset), free(e->done);
        e->max_tasks = n;
        e->out_offset = ns_malloc((size_t)n * sizeof(size_t), "executor offsets");
        e->done = ns_malloc((size_t)n, "executor task flags");
    }
    // Output space: the largest payload each task can have (its trajectory
    // length is known from its step count).
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        result r = {.n_trajectory = trajectory_points(&tasks[i]),
                    .fid_dim = (tasks[i].verifiers & VERIFIER_BIT(VERIFIER_FID_ORACLE)) ? e->fid_dim : 0};
        e->out_offset[i] = total;
        total += result_payload_floats(&tasks[i], &r, e->dim);
    }
    if (total + 1 > e->out_cap) {
        free(e->out);
        e->out_cap = total + 1;
        e->out = ns_aligned_alloc(e->out_cap * sizeof(float), "executor outputs");
    }
    for (int i = 0; i < n; i++) {
        const task *t = &tasks[i];
        if (t->t_a < 0 || !(t->t_a < t->t_b) || t->t_b > 1 || t->steps < 1 ||
            (t->start == TASK_FROM_STATE && !(t->state_t >= t->t_a)) ||
            (t->verifiers & ~e->vs.kinds) || t->label < 0 || t->label > e->model.cfg.num_classes)
            return ns_error_set(NS_ERR_ARG, "malformed task (search %lld, candidate %lld)", (long long)t->search,
                                (long long)t->candidate);
    }
    char *done = e->done;
    int *idx = e->group;
    memset(done, 0, (size_t)n);
    ns_status st = NS_OK;
    for (int i = 0; i < n && !st; i++) {
        if (done[i]) continue;
        int B = 0;
        for (int j = i; j < n && B < e->cfg.max_batch; j++)
            if (!done[j] && same_group(&tasks[i], &tasks[j])) idx[B++] = j, done[j] = 1;
        st = run_group(e, tasks, payloads, idx, B, results);
    }
    return st;
}
