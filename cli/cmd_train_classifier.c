// noisesearch train-classifier: train the verifier classifier or the
// evaluator (verifiers/classifier.h) on Fashion-MNIST with cross-entropy.
// One process, BLIS threads within it. Checkpoints every few minutes with
// the test accuracy at that step; --resume continues bit for bit.
// SIGTERM / SIGINT / SIGUSR1 save a checkpoint and exit with status 3.
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "model/gemm.h"
#include "verifiers/classifier.h"

enum { EXIT_INTERRUPTED = 3 };

typedef struct {
    const char *out, *checkpoint, *data_dir, *role;
    int resume, overwrite, threads, stop_after;
    int patch, depth, width, heads, init_seed;
    double checkpoint_seconds, log_seconds;
    long steps_override;
    classifier_train_config cfg;
} tc_options;

static volatile sig_atomic_t stop_requested;
static void on_stop_signal(int sig) { stop_requested = sig; }

static void tc_usage(FILE *out) {
    classifier_train_config d;
    classifier_train_config_defaults(&d);
    fprintf(out,
            "usage: noisesearch train-classifier --role verifier|evaluator --out W.h5 --checkpoint C.h5 [options]\n"
            "Train a Fashion-MNIST classifier (a ViT made of the denoiser's blocks) for the verifiers.\n\n"
            "  --role R                verifier (search scores) or evaluator (reported metrics; oracle verifiers only)\n"
            "  --out PATH              weights, written at every checkpoint and at the end (required)\n"
            "  --checkpoint PATH       training state for --resume (required)\n"
            "  --resume                continue from --checkpoint (its settings win; --steps may raise the total)\n"
            "  --overwrite             start afresh even if the checkpoint exists\n"
            "  --patch P --depth N --width D --heads H   architecture            [4, 4, 128, 4]\n"
            "  --batch B               images per step                           [%d]\n"
            "  --steps N               optimizer steps                           [%ld]\n"
            "  --lr X --lr-min X       peak and final learning rate (cosine)     [%g, %g]\n"
            "  --warmup N              linear warm-up steps                      [%ld]\n"
            "  --weight-decay X        AdamW decoupled decay                     [%g]\n"
            "  --clip X                global gradient-norm clip (0: off)        [%g]\n"
            "  --no-flip               no random horizontal flips\n"
            "  --shift S               random shifts of up to S pixels           [%d]\n"
            "  --init-seed K           initial weights                           [0]\n"
            "  --data-seed K           data order and augmentation               [0]\n"
            "  --checkpoint-every S    seconds between checkpoints (each measures test accuracy) [300]\n"
            "  --log-every S           seconds between progress lines            [10]\n"
            "  --stop-after N          stop after N steps of this run (checkpoint, exit 3)\n"
            "  --threads T             BLIS/OpenMP threads                       [all CPUs]\n"
            "  --data DIR              Fashion-MNIST directory                   [%s]\n",
            d.batch, d.steps, (double)d.schedule.lr, (double)d.schedule.lr_min, d.schedule.warmup_steps,
            (double)d.adam.weight_decay, (double)d.clip_norm, d.max_shift, DATASET_FASHION_MNIST_DIR);
}

static int parse_options(int argc, char **argv, tc_options *o) {
    memset(o, 0, sizeof *o);
    classifier_train_config_defaults(&o->cfg);
    o->patch = 4, o->depth = 4, o->width = 128, o->heads = 4;
    o->checkpoint_seconds = 300;
    o->log_seconds = 10;
    enum { O_OUT = 256, O_CKPT, O_RESUME, O_OVERWRITE, O_ROLE, O_PATCH, O_DEPTH, O_WIDTH, O_HEADS, O_BATCH, O_STEPS,
           O_LR, O_LR_MIN, O_WARMUP, O_WD, O_CLIP, O_NOFLIP, O_SHIFT, O_INIT_SEED, O_DATA_SEED, O_CKPT_EVERY,
           O_LOG_EVERY, O_STOP_AFTER, O_THREADS, O_DATA, O_HELP };
    static const struct option longopts[] = {
        {"out", 1, 0, O_OUT},         {"checkpoint", 1, 0, O_CKPT},     {"resume", 0, 0, O_RESUME},
        {"overwrite", 0, 0, O_OVERWRITE}, {"role", 1, 0, O_ROLE},       {"patch", 1, 0, O_PATCH},
        {"depth", 1, 0, O_DEPTH},     {"width", 1, 0, O_WIDTH},         {"heads", 1, 0, O_HEADS},
        {"batch", 1, 0, O_BATCH},     {"steps", 1, 0, O_STEPS},         {"lr", 1, 0, O_LR},
        {"lr-min", 1, 0, O_LR_MIN},   {"warmup", 1, 0, O_WARMUP},       {"weight-decay", 1, 0, O_WD},
        {"clip", 1, 0, O_CLIP},       {"no-flip", 0, 0, O_NOFLIP},      {"shift", 1, 0, O_SHIFT},
        {"init-seed", 1, 0, O_INIT_SEED}, {"data-seed", 1, 0, O_DATA_SEED},
        {"checkpoint-every", 1, 0, O_CKPT_EVERY}, {"log-every", 1, 0, O_LOG_EVERY},
        {"stop-after", 1, 0, O_STOP_AFTER}, {"threads", 1, 0, O_THREADS}, {"data", 1, 0, O_DATA},
        {"help", 0, 0, O_HELP},       {0, 0, 0, 0}};
    classifier_train_config *c = &o->cfg;
    int opt, bad = 0, steps = 0, warmup = 0, seed = 0;
    float f;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case O_OUT: o->out = optarg; break;
        case O_CKPT: o->checkpoint = optarg; break;
        case O_RESUME: o->resume = 1; break;
        case O_OVERWRITE: o->overwrite = 1; break;
        case O_ROLE: o->role = optarg; break;
        case O_PATCH: bad |= cli_parse_int("--patch", optarg, 1, 28, &o->patch); break;
        case O_DEPTH: bad |= cli_parse_int("--depth", optarg, 1, DIT_MAX_DEPTH, &o->depth); break;
        case O_WIDTH: bad |= cli_parse_int("--width", optarg, 4, 8192, &o->width); break;
        case O_HEADS: bad |= cli_parse_int("--heads", optarg, 1, 256, &o->heads); break;
        case O_BATCH: bad |= cli_parse_int("--batch", optarg, 1, 60000, &c->batch); break;
        case O_STEPS:
            bad |= cli_parse_int("--steps", optarg, 1, 1000000000, &steps);
            c->steps = c->schedule.total_steps = o->steps_override = steps;
            break;
        case O_LR: bad |= cli_parse_float("--lr", optarg, 0, 1, &c->schedule.lr); break;
        case O_LR_MIN: bad |= cli_parse_float("--lr-min", optarg, 0, 1, &c->schedule.lr_min); break;
        case O_WARMUP:
            bad |= cli_parse_int("--warmup", optarg, 0, 1000000000, &warmup);
            c->schedule.warmup_steps = warmup;
            break;
        case O_WD: bad |= cli_parse_float("--weight-decay", optarg, 0, 10, &c->adam.weight_decay); break;
        case O_CLIP: bad |= cli_parse_float("--clip", optarg, 0, 1e6, &c->clip_norm); break;
        case O_NOFLIP: c->hflip = 0; break;
        case O_SHIFT: bad |= cli_parse_int("--shift", optarg, 0, 8, &c->max_shift); break;
        case O_INIT_SEED: bad |= cli_parse_int("--init-seed", optarg, 0, 2147483647, &o->init_seed); break;
        case O_DATA_SEED:
            bad |= cli_parse_int("--data-seed", optarg, 0, 2147483647, &seed);
            c->seed = (uint64_t)seed;
            break;
        case O_CKPT_EVERY:
            bad |= cli_parse_float("--checkpoint-every", optarg, 1, 1e7, &f);
            o->checkpoint_seconds = f;
            break;
        case O_LOG_EVERY:
            bad |= cli_parse_float("--log-every", optarg, 0.01, 1e7, &f);
            o->log_seconds = f;
            break;
        case O_STOP_AFTER: bad |= cli_parse_int("--stop-after", optarg, 1, 1000000000, &o->stop_after); break;
        case O_THREADS: bad |= cli_parse_int("--threads", optarg, 0, 1024, &o->threads); break;
        case O_DATA: o->data_dir = optarg; break;
        case O_HELP: tc_usage(stdout); exit(0);
        default: bad = -1;
        }
    }
    const char *why = NULL;
    if (!bad && optind < argc) why = "unexpected argument";
    else if (!bad && (!o->out || !o->checkpoint)) why = "--out and --checkpoint are required";
    else if (!bad && (!o->role || (strcmp(o->role, "verifier") && strcmp(o->role, "evaluator"))))
        why = "--role must be 'verifier' or 'evaluator'";
    if (why) {
        fprintf(stderr, "noisesearch train-classifier: %s%s%s\n", why, optind < argc ? " " : "",
                optind < argc ? argv[optind] : "");
        return -1;
    }
    struct stat sb;
    if (!bad && !o->resume && !o->overwrite && stat(o->checkpoint, &sb) == 0) {
        fprintf(stderr,
                "noisesearch train-classifier: %s exists; pass --resume to continue it or --overwrite to start afresh\n",
                o->checkpoint);
        return -1;
    }
    if (!bad && !o->resume && classifier_train_config_check(c)) {
        fprintf(stderr, "noisesearch train-classifier: %s\n", ns_error_message());
        return -1;
    }
    return bad;
}

// Test accuracy now, appended to the curve.
static double measure(classifier *model, classifier_workspace *ws, const dataset *test, long step, double **curve,
                      int *n) {
    double acc = classifier_accuracy(model, ws, test, 0);
    *curve = realloc(*curve, (size_t)(*n + 1) * 2 * sizeof(double));
    NS_CHECK(*curve);
    (*curve)[2 * *n] = (double)step, (*curve)[2 * *n + 1] = acc;
    (*n)++;
    return acc;
}

static int run(tc_options *o) {
    dataset train, test;
    ns_status st = dataset_load_fashion_mnist(&train, o->data_dir, 1);
    if (!st) st = dataset_load_fashion_mnist(&test, o->data_dir, 0);
    if (st) {
        fprintf(stderr, "noisesearch train-classifier: %s\n", ns_error_message());
        return CLI_EXIT_USAGE;
    }
    classifier model;
    classifier_trainer tr;
    double *curve = NULL, seconds_before = 0;
    int n_curve = 0;
    if (o->resume) {
        st = classifier_checkpoint_resume(&tr, &model, o->checkpoint, &train, o->threads, o->steps_override, &curve,
                                          &n_curve, &seconds_before);
        if (!st && strcmp(model.role, o->role))
            st = ns_error_set(NS_ERR_ARG, "%s was trained as '%s', not '%s'", o->checkpoint, model.role, o->role);
    } else {
        classifier_config cc = classifier_config_make(28, 1, 10, o->patch, o->width, o->depth, o->heads);
        st = classifier_init(&model, &cc, (uint64_t)o->init_seed);
        if (!st) {
            snprintf(model.role, sizeof model.role, "%s", o->role);
            st = classifier_trainer_init(&tr, &model, &o->cfg, &train, o->threads);
        }
    }
    if (st) {
        fprintf(stderr, "noisesearch train-classifier: %s\n", ns_error_message());
        dataset_free(&train), dataset_free(&test);
        return CLI_EXIT_USAGE;
    }
    const classifier_train_config *c = &tr.cfg;
    const dit_config *bc = &model.cfg.backbone;
    fprintf(stderr, "noisesearch train-classifier: %s\n", gemm_describe());
    fprintf(stderr,
            "noisesearch train-classifier: %s %s, patch %d depth %d width %d heads %d (%zu parameters), batch %d, "
            "steps %ld (from %ld), lr %g, data seed %llu\n",
            o->resume ? "resuming" : "new", model.role, bc->patch_size, bc->depth, bc->hidden_size, bc->num_heads,
            model.backbone.num_params + model.head_params, c->batch, c->steps, tr.step, (double)c->schedule.lr,
            (unsigned long long)c->seed);
    double t_start = ns_now(), t_last_ckpt = t_start, t_last_log = t_start, log_loss = 0, log_acc = 0;
    long log_steps = 0, step0 = tr.step;
    int code = CLI_EXIT_OK;
    while (tr.step < c->steps) {
        classifier_step_info info;
        classifier_trainer_step(&tr, &info);
        log_loss += info.loss, log_acc += info.accuracy, log_steps++;
        double now = ns_now();
        if (now - t_last_log >= o->log_seconds || tr.step == c->steps) {
            double rate = (double)log_steps / (now - t_last_log);  // since the last line: the speed now
            fprintf(stderr, "step %ld/%ld  loss %.4f  batch accuracy %.3f  lr %.2e  %.0f img/s  ETA %.1f min\n",
                    tr.step, c->steps, log_loss / log_steps, log_acc / log_steps, (double)info.lr,
                    rate * c->batch, (double)(c->steps - tr.step) / rate / 60.0);
            t_last_log = now, log_loss = log_acc = 0, log_steps = 0;
        }
        int limit = o->stop_after && tr.step - step0 >= o->stop_after, done = tr.step == c->steps;
        int stop = stop_requested || limit;
        if (now - t_last_ckpt >= o->checkpoint_seconds || stop || done) {
            double acc = measure(&model, &tr.ws, &test, tr.step, &curve, &n_curve);
            double total = seconds_before + (ns_now() - t_start);
            st = classifier_checkpoint_save(&tr, o->checkpoint, total, curve, n_curve);
            if (!st) st = classifier_save(&model, o->out);
            if (st) {
                fprintf(stderr, "noisesearch train-classifier: %s\n", ns_error_message());
                code = CLI_EXIT_FAILURE;
                break;
            }
            fprintf(stderr, "step %ld  test accuracy %.4f  saved %s and %s (%.1f min of training)\n", tr.step, acc,
                    o->checkpoint, o->out, total / 60.0);
            t_last_ckpt = ns_now();
            if (stop && !done) {
                fprintf(stderr, "noisesearch train-classifier: stopped (%s); --resume continues\n",
                        stop_requested ? "signal" : "--stop-after");
                code = EXIT_INTERRUPTED;
                break;
            }
        }
    }
    free(curve);
    classifier_trainer_free(&tr);
    classifier_free(&model);
    dataset_free(&train), dataset_free(&test);
    return code;
}

int cmd_train_classifier(int argc, char **argv) {
    tc_options o;
    if (parse_options(argc, argv, &o)) return CLI_EXIT_USAGE;
    if (gemm_setup(o.threads) != NS_OK) {
        fprintf(stderr, "noisesearch train-classifier: %s\n", ns_error_message());
        return CLI_EXIT_USAGE;
    }
    signal(SIGTERM, on_stop_signal);
    signal(SIGINT, on_stop_signal);
    signal(SIGUSR1, on_stop_signal);
    return run(&o);
}
