// Flow-matching training loop pieces (see trainer.h): initialisation, the
// per-sample random draws, one data-parallel step, evaluation, checkpoints.
#include "trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/h5util.h"
#include "dit_io.h"
#include "gemm.h"
#include "layers.h"
#include "noise.h"

#define CHECKPOINT_FORMAT "noisesearch-train-checkpoint"
// Philox streams of one seed, kept apart by their top bits (0 << 62 is
// dit_train_init_weights').
#define STREAM_PERM (1ull << 62)   // | epoch: data order
#define STREAM_STEP (2ull << 62)   // | step: t, dropout, flip of each sample
#define STREAM_NOISE (3ull << 62)  // | global sample number: the noise x0
#define EVAL_SEED 0x5eed0fe5a1ull  // fixed: the test loss always sees the same t and noise

void trainer_config_defaults(trainer_config *c) {
    memset(c, 0, sizeof *c);
    c->global_batch = 128;
    c->steps = 10000;
    c->schedule = (optim_schedule){.kind = OPTIM_LR_COSINE, .lr = 3e-4f, .lr_min = 3e-5f, .warmup_steps = 500,
                                   .total_steps = c->steps};
    c->adam = (optim_adamw_config){.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.0f};
    c->clip_norm = 1.0f;
    c->ema_decay = 0.9999f;
    c->class_dropout = 0.1f;
    c->hflip = 1;
    c->eval_samples = 1000;
}

ns_status trainer_config_check(const trainer_config *c) {
    ns_status st = dit_config_check(&c->model);
    if (st) return st;
    if (c->global_batch < 1) return ns_error_set(NS_ERR_ARG, "batch must be at least 1, got %d", c->global_batch);
    if (c->steps < 1) return ns_error_set(NS_ERR_ARG, "steps must be at least 1, got %ld", c->steps);
    if ((st = optim_schedule_check(&c->schedule))) return st;
    if (!(c->clip_norm >= 0)) return ns_error_set(NS_ERR_ARG, "clip must be >= 0, got %g", (double)c->clip_norm);
    if (!(c->ema_decay >= 0 && c->ema_decay < 1))
        return ns_error_set(NS_ERR_ARG, "ema decay must be in [0, 1), got %g", (double)c->ema_decay);
    if (!(c->class_dropout >= 0 && c->class_dropout <= 1))
        return ns_error_set(NS_ERR_ARG, "class dropout must be in [0, 1], got %g", (double)c->class_dropout);
    if (c->eval_samples < 0) return ns_error_set(NS_ERR_ARG, "eval samples must be >= 0");
    return NS_OK;
}

static double *curve_push(double *curve, int *n, int *cap, int width, const double *row) {
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 256;
        curve = realloc(curve, sizeof(double) * width * (size_t)*cap);
        NS_CHECK(curve);
    }
    memcpy(curve + (size_t)*n * width, row, sizeof(double) * width);
    (*n)++;
    return curve;
}

// Allocate everything but the weights' values.
static ns_status trainer_alloc(trainer *tr, const trainer_config *cfg, const dataset *train, trainer_comm comm,
                               int threads) {
    memset(tr, 0, sizeof *tr);
    ns_status st = trainer_config_check(cfg);
    if (st) return st;
    if (train->channels != cfg->model.in_channels || train->height != cfg->model.input_size ||
        train->width != cfg->model.input_size || train->num_classes > cfg->model.num_classes)
        return ns_error_set(NS_ERR_ARG, "the model (%dx%dx%d, %d classes) does not fit the data (%dx%dx%d, %d classes)",
                            cfg->model.input_size, cfg->model.input_size, cfg->model.in_channels,
                            cfg->model.num_classes, train->height, train->width, train->channels, train->num_classes);
    if (cfg->global_batch < comm.size || cfg->global_batch > train->count)
        return ns_error_set(NS_ERR_ARG, "batch %d must be between the number of ranks (%d) and the dataset size (%d)",
                            cfg->global_batch, comm.size, train->count);
    tr->cfg = *cfg;
    tr->comm = comm;
    tr->train = train;
    int base = cfg->global_batch / comm.size, extra = cfg->global_batch % comm.size;
    tr->local_batch = base + (comm.rank < extra);
    tr->local_first = comm.rank * base + (comm.rank < extra ? comm.rank : extra);
    if ((st = dit_model_init(&tr->model, &cfg->model))) return st;
    if ((st = optim_adamw_init(&tr->opt, &tr->model, &cfg->adam))) return st;
    if ((st = dit_train_acts_init(&tr->acts, &cfg->model, tr->local_batch, threads))) return st;
    size_t dim = (size_t)dit_sample_dim(&cfg->model), lb = (size_t)tr->local_batch;
    tr->grad = ns_aligned_alloc(tr->model.num_params * sizeof(float), "gradients");
    dit_params_bind(&tr->grad_p, &cfg->model, tr->grad);
    tr->x1 = ns_aligned_alloc(lb * dim * sizeof(float), "batch images");
    tr->x0 = ns_aligned_alloc(lb * dim * sizeof(float), "batch noise");
    tr->dv = ns_aligned_alloc(lb * dim * sizeof(float), "loss gradient");
    tr->t = ns_malloc(lb * sizeof(float), "batch t");
    tr->y = ns_malloc(lb * sizeof(int), "batch labels");
    tr->perm = ns_malloc((size_t)train->count * sizeof(uint32_t), "data order");
    tr->perm_epoch = -1;
    return NS_OK;
}

ns_status trainer_init(trainer *tr, const trainer_config *cfg, const dataset *train, trainer_comm comm,
                       int threads) {
    ns_status st = trainer_alloc(tr, cfg, train, comm, threads);
    if (!st) {
        dit_train_init_weights(&tr->model, cfg->seed);
        st = optim_ema_init(&tr->ema, &tr->model);
    }
    if (st) trainer_free(tr);
    return st;
}

void trainer_free(trainer *tr) {
    dit_model_free(&tr->model);
    dit_model_free(&tr->ema);
    optim_adamw_free(&tr->opt);
    dit_train_acts_free(&tr->acts);
    free(tr->grad), free(tr->x1), free(tr->x0), free(tr->dv), free(tr->t), free(tr->y), free(tr->perm);
    free(tr->train_curve), free(tr->test_curve);
    memset(tr, 0, sizeof *tr);
}

// The data order of one epoch, from its own stream.
static void make_permutation(trainer *tr, long epoch) {
    noise_permutation(tr->perm, tr->train->count, (noise_key){tr->cfg.seed, STREAM_PERM | (uint64_t)epoch});
    tr->perm_epoch = epoch;
}

// This rank's slice of the global batch of step s: images (flipped at
// random), labels (null with probability class_dropout), t ~ U(0,1), noise.
static void fill_batch(trainer *tr, long s) {
    const dataset *d = tr->train;
    int B = tr->cfg.global_batch, H = d->height, W = d->width, C = d->channels;
    size_t dim = (size_t)C * H * W;
    long per_epoch = d->count / B;
    long epoch = s / per_epoch;
    if (epoch != tr->perm_epoch) make_permutation(tr, epoch);
    noise_key step_key = {tr->cfg.seed, STREAM_STEP | (uint64_t)s};
    for (int b = 0; b < tr->local_batch; b++) {
        uint64_t j = (uint64_t)(tr->local_first + b);
        int idx = (int)tr->perm[(s % per_epoch) * B + (long)j];
        const float *src = d->images + (size_t)idx * dim;
        float *dst = tr->x1 + (size_t)b * dim;
        int flip = tr->cfg.hflip && noise_uniform(step_key, 4 * j + 2) < 0.5;
        for (int c = 0; c < C; c++)
            for (int r = 0; r < H; r++)
                for (int x = 0; x < W; x++)
                    dst[((size_t)c * H + r) * W + x] = src[((size_t)c * H + r) * W + (flip ? W - 1 - x : x)];
        tr->t[b] = (float)noise_uniform(step_key, 4 * j);
        tr->y[b] = noise_uniform(step_key, 4 * j + 1) < tr->cfg.class_dropout ? tr->cfg.model.num_classes
                                                                                : d->labels[idx];
        noise_key nkey = {tr->cfg.seed, STREAM_NOISE | ((uint64_t)s * (uint64_t)B + j)};
        noise_fill(tr->x0 + (size_t)b * dim, dim, nkey, 0);
    }
}

void trainer_step(trainer *tr, trainer_step_info *info) {
    long s = tr->step;
    int B = tr->cfg.global_batch;
    fill_batch(tr, s);
    memset(tr->grad, 0, tr->model.num_params * sizeof(float));
    double loss = dit_train_flow_loss(&tr->model, &tr->acts, tr->dv, tr->x1, tr->x0, tr->t, tr->y, tr->local_batch);
    // dv is the gradient of this rank's mean; the step follows the global mean.
    size_t n = (size_t)tr->local_batch * dit_sample_dim(&tr->cfg.model);
    float share = (float)tr->local_batch / (float)B;
    for (size_t i = 0; i < n; i++) tr->dv[i] *= share;
    dit_backward(&tr->model, &tr->acts, &tr->grad_p, tr->dv, tr->local_batch);
    double total = loss * tr->local_batch;
    if (tr->comm.allreduce_floats) {
        tr->comm.allreduce_floats(tr->comm.ctx, tr->grad, tr->model.num_params);
        tr->comm.allreduce_doubles(tr->comm.ctx, &total, 1);
    }
    double norm = optim_clip_grad_norm(&tr->model, tr->grad, tr->cfg.clip_norm, 0);
    float lr = optim_lr_at(&tr->cfg.schedule, s);
    optim_adamw_step(&tr->opt, &tr->model, tr->grad, lr, 0);
    float decay = fminf(tr->cfg.ema_decay, (1.0f + (float)s) / (10.0f + (float)s));
    optim_ema_update(&tr->ema, &tr->model, decay, 0);
    tr->step = s + 1;
    tr->curve_sum += total / B;
    if (++tr->curve_count == TRAINER_CURVE_EVERY) {
        double row[2] = {(double)tr->step, tr->curve_sum / tr->curve_count};
        tr->train_curve = curve_push(tr->train_curve, &tr->n_train, &tr->cap_train, 2, row);
        tr->curve_sum = 0, tr->curve_count = 0;
    }
    if (info) *info = (trainer_step_info){.step = s + 1, .loss = total / B, .grad_norm = norm, .lr = lr};
}

// Test loss with fixed draws: image i gets t and noise from EVAL_SEED, its
// true label. Ranks take contiguous shares; totals are summed.
static double eval_model(trainer *tr, const dit_model *m, const dataset *test) {
    int n = tr->cfg.eval_samples < test->count ? tr->cfg.eval_samples : test->count;
    int P = tr->comm.size, r = tr->comm.rank;
    int first = (int)((long)n * r / P), last = (int)((long)n * (r + 1) / P);
    size_t dim = (size_t)dit_sample_dim(&m->cfg);
    noise_key tkey = {EVAL_SEED, 0};
    double total = 0;
    for (int start = first; start < last; start += tr->local_batch) {
        int nb = last - start < tr->local_batch ? last - start : tr->local_batch;
        for (int b = 0; b < nb; b++) {
            int i = start + b;
            memcpy(tr->x1 + (size_t)b * dim, test->images + (size_t)i * dim, dim * sizeof(float));
            noise_fill(tr->x0 + (size_t)b * dim, dim, (noise_key){EVAL_SEED, 1 + (uint64_t)i}, 0);
            tr->t[b] = (float)noise_uniform(tkey, (uint64_t)i);
            tr->y[b] = test->labels[i];
        }
        total += nb * dit_train_flow_loss(m, &tr->acts, tr->dv, tr->x1, tr->x0, tr->t, tr->y, nb);
    }
    if (tr->comm.allreduce_doubles) tr->comm.allreduce_doubles(tr->comm.ctx, &total, 1);
    return n ? total / n : 0.0;
}

void trainer_eval(trainer *tr, const dataset *test, double *loss_model, double *loss_ema) {
    *loss_model = eval_model(tr, &tr->model, test);
    *loss_ema = eval_model(tr, &tr->ema, test);
    double row[3] = {(double)tr->step, *loss_model, *loss_ema};
    tr->test_curve = curve_push(tr->test_curve, &tr->n_test, &tr->cap_test, 3, row);
}

// ---------------------------------------------------------------------------
// Checkpoints: root attributes (format, step, the training config), groups
// model / ema / adam_m / adam_v (state_dict-named datasets; the architecture
// on the model and ema groups), datasets train_loss (n, 2) and test_loss (n, 3).

typedef struct {
    const char *name;
    double *value;
} config_field;

// The numeric training settings, as (attribute name, value) pairs.
static int config_fields(trainer_config *c, double *v, config_field *f) {
    int n = 0;
    double *slot = v;
#define FIELD(attr, expr) (f[n++] = (config_field){attr, slot}, *slot++ = (double)(expr))
    FIELD("global_batch", c->global_batch);
    FIELD("steps", c->steps);
    FIELD("lr", c->schedule.lr);
    FIELD("lr_min", c->schedule.lr_min);
    FIELD("warmup_steps", c->schedule.warmup_steps);
    FIELD("beta1", c->adam.beta1);
    FIELD("beta2", c->adam.beta2);
    FIELD("adam_eps", c->adam.eps);
    FIELD("weight_decay", c->adam.weight_decay);
    FIELD("clip_norm", c->clip_norm);
    FIELD("ema_decay", c->ema_decay);
    FIELD("class_dropout", c->class_dropout);
    FIELD("hflip", c->hflip);
    FIELD("seed", c->seed);
    FIELD("eval_samples", c->eval_samples);
#undef FIELD
    return n;
}

static void config_from_fields(trainer_config *c, const double *v) {
    int i = 0;
    c->global_batch = (int)v[i++];
    c->steps = (long)v[i++];
    c->schedule.lr = (float)v[i++];
    c->schedule.lr_min = (float)v[i++];
    c->schedule.warmup_steps = (long)v[i++];
    c->adam.beta1 = (float)v[i++];
    c->adam.beta2 = (float)v[i++];
    c->adam.eps = (float)v[i++];
    c->adam.weight_decay = (float)v[i++];
    c->clip_norm = (float)v[i++];
    c->ema_decay = (float)v[i++];
    c->class_dropout = (float)v[i++];
    c->hflip = (int)v[i++];
    c->seed = (uint64_t)v[i++];
    c->eval_samples = (int)v[i++];
    c->schedule.total_steps = c->steps;
}

ns_status trainer_checkpoint_save(const trainer *tr, const char *path, double train_seconds) {
    h5u_atomic_file out;
    ns_status st = h5u_atomic_create(&out, path);
    if (st) return st;
    const char *p = out.tmp_path;
    trainer_config cfg = tr->cfg;
    double values[32];
    config_field fields[32];
    int nf = config_fields(&cfg, values, fields);
    st = h5u_attr_write_string(out.file, p, "format", CHECKPOINT_FORMAT);
    if (!st) st = h5u_attr_write_int(out.file, p, "step", tr->step);
    if (!st) st = h5u_attr_write_int(out.file, p, "adam_step", tr->opt.step);
    if (!st) st = h5u_attr_write_int(out.file, p, "ranks", tr->comm.size);
    if (!st) st = h5u_attr_write_double(out.file, p, "train_seconds", train_seconds);
    if (!st) st = h5u_attr_write_double(out.file, p, "curve_partial_sum", tr->curve_sum);
    if (!st) st = h5u_attr_write_int(out.file, p, "curve_partial_count", tr->curve_count);
    if (!st) st = h5u_attr_write_string(out.file, p, "schedule", optim_lr_kind_name(cfg.schedule.kind));
    if (!st) st = h5u_attr_write_int(out.file, p, "decay_start", cfg.schedule.decay_start);
    for (int i = 0; i < nf && !st; i++) st = h5u_attr_write_double(out.file, p, fields[i].name, *fields[i].value);
    if (!st) st = dit_group_write(out.file, p, "model", &tr->model, tr->model.memory, 1);
    if (!st) st = dit_group_write(out.file, p, "ema", &tr->ema, tr->ema.memory, 1);
    if (!st) st = dit_group_write(out.file, p, "adam_m", &tr->model, tr->opt.m, 0);
    if (!st) st = dit_group_write(out.file, p, "adam_v", &tr->model, tr->opt.v, 0);
    hsize_t d2[2] = {(hsize_t)tr->n_train, 2}, d3[2] = {(hsize_t)tr->n_test, 3};
    if (!st) st = h5u_write_doubles(out.file, p, "train_loss", 2, d2, tr->train_curve);
    if (!st) st = h5u_write_doubles(out.file, p, "test_loss", 2, d3, tr->test_curve);
    return h5u_atomic_finish(&out, st);
}

double trainer_checkpoint_seconds(const char *path) {
    hid_t f;
    double s = 0;
    if (h5u_open_read(&f, path)) return 0;
    if (h5u_attr_read_double(f, path, "train_seconds", &s)) s = 0;
    h5u_close_file(f);
    return s;
}

static ns_status read_curve(hid_t f, const char *path, const char *name, int width, double **curve, int *n,
                            int *cap) {
    hsize_t dims[2];
    ns_status st = h5u_read_doubles(f, path, name, 2, dims, curve);
    if (st) return st;
    if (dims[1] != (hsize_t)width) return ns_error_set(NS_ERR_FORMAT, "%s: %s has %d columns, expected %d", path, name,
                                                      (int)dims[1], width);
    *n = *cap = (int)dims[0];
    return NS_OK;
}

ns_status trainer_resume(trainer *tr, const char *path, const dataset *train, trainer_comm comm, int threads,
                         long steps_override, long decay_steps, float decay_lr_min) {
    memset(tr, 0, sizeof *tr);
    hid_t f;
    ns_status st = h5u_open_read(&f, path);
    if (st) return st;
    char format[64], kind[32];
    trainer_config cfg;
    trainer_config_defaults(&cfg);
    double values[32];
    config_field fields[32];
    int nf = config_fields(&cfg, values, fields), step = 0, adam_step = 0;
    st = h5u_attr_read_string(f, path, "format", format, sizeof format);
    if (!st && strcmp(format, CHECKPOINT_FORMAT))
        st = ns_error_set(NS_ERR_FORMAT, "%s: format '%s', expected a training checkpoint ('%s')", path, format,
                          CHECKPOINT_FORMAT);
    if (!st) st = h5u_attr_read_int(f, path, "step", &step);
    if (!st) st = h5u_attr_read_int(f, path, "adam_step", &adam_step);
    double curve_sum = 0;
    int curve_count = 0;
    if (!st) st = h5u_attr_read_double(f, path, "curve_partial_sum", &curve_sum);
    if (!st) st = h5u_attr_read_int(f, path, "curve_partial_count", &curve_count);
    if (!st) st = h5u_attr_read_string(f, path, "schedule", kind, sizeof kind);
    if (!st) st = optim_lr_kind_from_name(kind, &cfg.schedule.kind);
    for (int i = 0; i < nf && !st; i++) st = h5u_attr_read_double(f, path, fields[i].name, fields[i].value);
    int decay_start = 0;  // checkpoints written before wsd existed lack it (and are not wsd)
    if (!st && H5Aexists(f, "decay_start") > 0) st = h5u_attr_read_int(f, path, "decay_start", &decay_start);
    hid_t g = H5I_INVALID_HID;
    if (!st) {
        config_from_fields(&cfg, values);
        cfg.schedule.decay_start = decay_start;
        if (steps_override > 0) cfg.steps = cfg.schedule.total_steps = steps_override;
        if (decay_steps > 0 && cfg.schedule.kind == OPTIM_LR_WSD)
            st = ns_error_set(NS_ERR_ARG, "%s already decays (from step %d to %ld); resume it without a new decay",
                              path, decay_start, cfg.steps);
        if (!st && decay_steps > 0) {
            cfg.schedule.kind = OPTIM_LR_WSD;
            cfg.schedule.decay_start = step;
            cfg.steps = cfg.schedule.total_steps = step + decay_steps;
            if (decay_lr_min >= 0) cfg.schedule.lr_min = decay_lr_min;
        }
        if (!st) st = optim_schedule_check(&cfg.schedule);
    }
    if (!st) {
        H5E_BEGIN_TRY { g = H5Gopen2(f, "model", H5P_DEFAULT); }
        H5E_END_TRY;
        st = g < 0 ? ns_error_set(NS_ERR_FORMAT, "%s: missing group 'model'", path)
                   : dit_config_read_attrs(g, path, &cfg.model);
        if (g >= 0) H5Gclose(g);
    }
    if (!st) st = trainer_alloc(tr, &cfg, train, comm, threads);
    if (!st) st = dit_model_init(&tr->ema, &cfg.model);
    if (!st) st = dit_group_read(f, path, "model", &tr->model, tr->model.memory);
    if (!st) st = dit_group_read(f, path, "ema", &tr->ema, tr->ema.memory);
    if (!st) st = dit_group_read(f, path, "adam_m", &tr->model, tr->opt.m);
    if (!st) st = dit_group_read(f, path, "adam_v", &tr->model, tr->opt.v);
    if (!st) st = read_curve(f, path, "train_loss", 2, &tr->train_curve, &tr->n_train, &tr->cap_train);
    if (!st) st = read_curve(f, path, "test_loss", 3, &tr->test_curve, &tr->n_test, &tr->cap_test);
    h5u_close_file(f);
    if (st) {
        trainer_free(tr);
        return st;
    }
    tr->step = step;
    tr->opt.step = adam_step;
    tr->curve_sum = curve_sum;
    tr->curve_count = curve_count;
    return NS_OK;
}
