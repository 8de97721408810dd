// noisesearch train: train the denoiser on Fashion-MNIST with the
// flow-matching loss, data-parallel over MPI ranks (each rank its slice of
// every global batch, gradients summed with MPI_Allreduce) and BLIS threads
// within a rank. Checkpoints every few minutes; --resume continues exactly.
// SIGTERM / SIGINT / SIGUSR1 save a checkpoint and exit with status 3.
#include <getopt.h>
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "model/gemm.h"
#include "model/trainer.h"

enum { EXIT_INTERRUPTED = 3 };

typedef struct {
    const char *out, *checkpoint, *data_dir;
    int resume, threads, eval_every, overwrite;
    double checkpoint_seconds, log_seconds;
    long steps_override, decay_steps;
    int lr_min_set;
    int stop_after;  // steps in this invocation before a checkpoint and exit 3; 0: no limit
    trainer_config cfg;
} train_options;

static volatile sig_atomic_t stop_requested;
static void on_stop_signal(int sig) { stop_requested = sig; }

static void allreduce_floats(void *ctx, float *buf, size_t n) {
    MPI_Comm comm = *(MPI_Comm *)ctx;
    for (size_t done = 0; done < n;) {  // MPI counts are int
        int chunk = n - done > (1u << 30) ? (1 << 30) : (int)(n - done);
        MPI_Allreduce(MPI_IN_PLACE, buf + done, chunk, MPI_FLOAT, MPI_SUM, comm);
        done += (size_t)chunk;
    }
}

static void allreduce_doubles(void *ctx, double *buf, size_t n) {
    MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, MPI_SUM, *(MPI_Comm *)ctx);
}

static void train_usage(FILE *out) {
    trainer_config d;
    trainer_config_defaults(&d);
    fprintf(out,
            "usage: [mpirun -np P] noisesearch train --out W.h5 --checkpoint C.h5 [options]\n"
            "Train the denoiser on Fashion-MNIST (flow matching, SiT linear path).\n\n"
            "  --out PATH              EMA weights, written at every checkpoint and at the end (required)\n"
            "  --checkpoint PATH       training state for --resume (required)\n"
            "  --resume                continue from --checkpoint (its settings win; --steps may raise the total)\n"
            "  --overwrite             start afresh even if the checkpoint exists\n"
            "  --patch P --depth N --width D --heads H   architecture            [2, 6, 128, 4]\n"
            "  --learn-sigma           final layer predicts 2C channels (DiT/SiT checkpoints' layout)\n"
            "  --batch B               global batch over all ranks               [%d]\n"
            "  --steps N               optimizer steps                           [%ld]\n"
            "  --lr X --lr-min X       peak and final learning rate              [%g, %g]\n"
            "  --warmup N              linear warm-up steps                      [%ld]\n"
            "  --schedule S            cosine | constant | wsd (constant, then a cosine from\n"
            "                          --decay-start to lr-min at --steps)       [cosine]\n"
            "  --decay-start S         wsd: the first step of the decay\n"
            "  --decay N               with --resume: cool down from the checkpoint's step, a cosine\n"
            "                          to --lr-min (default: the checkpoint's) over N more steps\n"
            "  --weight-decay X        AdamW decoupled decay of weight matrices  [%g]\n"
            "  --clip X                global gradient-norm clip (0: off)        [%g]\n"
            "  --ema X                 EMA decay                                 [%g]\n"
            "  --class-dropout X       probability of the null label             [%g]\n"
            "  --no-flip               no random horizontal flips\n"
            "  --seed K                initialisation and data-order seed        [0]\n"
            "  --eval-every N          test loss every N steps (and at the end)  [2000]\n"
            "  --eval-samples N        test images for the test loss (0: none)   [%d]\n"
            "  --checkpoint-every S    seconds between checkpoints               [300]\n"
            "  --log-every S           seconds between progress lines            [10]\n"
            "  --stop-after N          stop after N steps of this run (checkpoint, exit 3)\n"
            "  --threads T             BLIS/OpenMP threads per rank              [all CPUs / ranks]\n"
            "  --data DIR              Fashion-MNIST directory                   [%s]\n",
            d.global_batch, d.steps, (double)d.schedule.lr, (double)d.schedule.lr_min, d.schedule.warmup_steps,
            (double)d.adam.weight_decay, (double)d.clip_norm, (double)d.ema_decay, (double)d.class_dropout,
            d.eval_samples, DATASET_FASHION_MNIST_DIR);
}

static int parse_options(int argc, char **argv, train_options *o) {
    memset(o, 0, sizeof *o);
    trainer_config_defaults(&o->cfg);
    o->cfg.model = (dit_config){.input_size = 28, .in_channels = 1, .patch_size = 2, .depth = 6,
                                .hidden_size = 128, .num_heads = 4, .num_classes = 10, .mlp_ratio = 4.0f};
    o->eval_every = 2000;
    o->checkpoint_seconds = 300;
    o->log_seconds = 10;
    enum { O_OUT = 256, O_CKPT, O_RESUME, O_OVERWRITE, O_PATCH, O_DEPTH, O_WIDTH, O_HEADS, O_SIGMA, O_BATCH,
           O_STEPS, O_LR, O_LR_MIN, O_DECAY, O_DECAY_START, O_WARMUP, O_SCHEDULE, O_WD, O_CLIP, O_EMA, O_DROPOUT, O_NOFLIP, O_SEED,
           O_EVAL_EVERY, O_EVAL_SAMPLES, O_CKPT_EVERY, O_LOG_EVERY, O_STOP_AFTER, O_THREADS, O_DATA, O_HELP };
    static const struct option longopts[] = {
        {"out", 1, 0, O_OUT},           {"checkpoint", 1, 0, O_CKPT},        {"resume", 0, 0, O_RESUME},
        {"overwrite", 0, 0, O_OVERWRITE}, {"patch", 1, 0, O_PATCH},          {"depth", 1, 0, O_DEPTH},
        {"width", 1, 0, O_WIDTH},       {"heads", 1, 0, O_HEADS},            {"learn-sigma", 0, 0, O_SIGMA},
        {"batch", 1, 0, O_BATCH},       {"steps", 1, 0, O_STEPS},            {"lr", 1, 0, O_LR},
        {"lr-min", 1, 0, O_LR_MIN},     {"warmup", 1, 0, O_WARMUP},          {"schedule", 1, 0, O_SCHEDULE},
        {"decay", 1, 0, O_DECAY},       {"decay-start", 1, 0, O_DECAY_START},
        {"weight-decay", 1, 0, O_WD},   {"clip", 1, 0, O_CLIP},              {"ema", 1, 0, O_EMA},
        {"class-dropout", 1, 0, O_DROPOUT}, {"no-flip", 0, 0, O_NOFLIP},     {"seed", 1, 0, O_SEED},
        {"eval-every", 1, 0, O_EVAL_EVERY}, {"eval-samples", 1, 0, O_EVAL_SAMPLES},
        {"checkpoint-every", 1, 0, O_CKPT_EVERY}, {"log-every", 1, 0, O_LOG_EVERY},
        {"stop-after", 1, 0, O_STOP_AFTER},
        {"threads", 1, 0, O_THREADS},   {"data", 1, 0, O_DATA},              {"help", 0, 0, O_HELP},
        {0, 0, 0, 0}};
    trainer_config *c = &o->cfg;
    int opt, bad = 0, steps = 0, warmup = 0, seed = 0;
    float f;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case O_OUT: o->out = optarg; break;
        case O_CKPT: o->checkpoint = optarg; break;
        case O_RESUME: o->resume = 1; break;
        case O_OVERWRITE: o->overwrite = 1; break;
        case O_PATCH: bad |= cli_parse_int("--patch", optarg, 1, 28, &c->model.patch_size); break;
        case O_DEPTH: bad |= cli_parse_int("--depth", optarg, 1, DIT_MAX_DEPTH, &c->model.depth); break;
        case O_WIDTH: bad |= cli_parse_int("--width", optarg, 4, 8192, &c->model.hidden_size); break;
        case O_HEADS: bad |= cli_parse_int("--heads", optarg, 1, 256, &c->model.num_heads); break;
        case O_SIGMA: c->model.learn_sigma = 1; break;
        case O_BATCH: bad |= cli_parse_int("--batch", optarg, 1, 60000, &c->global_batch); break;
        case O_STEPS:
            bad |= cli_parse_int("--steps", optarg, 1, 1000000000, &steps);
            c->steps = c->schedule.total_steps = o->steps_override = steps;
            break;
        case O_LR: bad |= cli_parse_float("--lr", optarg, 0, 1, &c->schedule.lr); break;
        case O_LR_MIN:
            bad |= cli_parse_float("--lr-min", optarg, 0, 1, &c->schedule.lr_min);
            o->lr_min_set = 1;
            break;
        case O_DECAY:
            bad |= cli_parse_int("--decay", optarg, 1, 1000000000, &steps);
            o->decay_steps = steps;
            break;
        case O_DECAY_START:
            bad |= cli_parse_int("--decay-start", optarg, 0, 1000000000, &steps);
            c->schedule.decay_start = steps;
            break;
        case O_WARMUP:
            bad |= cli_parse_int("--warmup", optarg, 0, 1000000000, &warmup);
            c->schedule.warmup_steps = warmup;
            break;
        case O_SCHEDULE:
            if (optim_lr_kind_from_name(optarg, &c->schedule.kind)) {
                fprintf(stderr, "noisesearch train: --schedule: %s\n", ns_error_message());
                bad = -1;
            }
            break;
        case O_WD: bad |= cli_parse_float("--weight-decay", optarg, 0, 10, &c->adam.weight_decay); break;
        case O_CLIP: bad |= cli_parse_float("--clip", optarg, 0, 1e6, &c->clip_norm); break;
        case O_EMA: bad |= cli_parse_float("--ema", optarg, 0, 0.999999, &c->ema_decay); break;
        case O_DROPOUT: bad |= cli_parse_float("--class-dropout", optarg, 0, 1, &c->class_dropout); break;
        case O_NOFLIP: c->hflip = 0; break;
        case O_SEED:
            bad |= cli_parse_int("--seed", optarg, 0, 2147483647, &seed);
            c->seed = (uint64_t)seed;
            break;
        case O_EVAL_EVERY: bad |= cli_parse_int("--eval-every", optarg, 1, 1000000000, &o->eval_every); break;
        case O_EVAL_SAMPLES: bad |= cli_parse_int("--eval-samples", optarg, 0, 10000, &c->eval_samples); break;
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
        case O_HELP: train_usage(stdout); exit(0);
        default: bad = -1;
        }
    }
    if (!bad && optind < argc) {
        fprintf(stderr, "noisesearch train: unexpected argument '%s'\n", argv[optind]);
        bad = -1;
    }
    const char *conflict = o->decay_steps && !o->resume                ? "--decay needs --resume (it cools a run down)"
                           : o->decay_steps && o->steps_override       ? "--decay sets the steps itself; drop --steps"
                           : o->resume && o->lr_min_set && !o->decay_steps ? "--lr-min with --resume needs --decay"
                                                                       : NULL;
    if (!bad && conflict) {
        fprintf(stderr, "noisesearch train: %s\n", conflict);
        bad = -1;
    }
    if (!bad && (!o->out || !o->checkpoint)) {
        fprintf(stderr, "noisesearch train: --out and --checkpoint are required\n");
        bad = -1;
    }
    struct stat sb;
    if (!bad && !o->resume && !o->overwrite && stat(o->checkpoint, &sb) == 0) {
        fprintf(stderr, "noisesearch train: %s exists; pass --resume to continue it or --overwrite to start afresh\n",
                o->checkpoint);
        bad = -1;
    }
    if (!bad && !o->resume && trainer_config_check(c)) {
        fprintf(stderr, "noisesearch train: %s\n", ns_error_message());
        bad = -1;
    }
    return bad;
}

// Per-rank thread count: the CPUs divided among the ranks on this machine.
static int default_threads(MPI_Comm comm) {
    MPI_Comm node;
    int local = 1;
    MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    MPI_Comm_size(node, &local);
    MPI_Comm_free(&node);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int t = (int)(cpus / local);
    return t > 0 ? t : 1;
}

static int run_training(train_options *o, MPI_Comm comm, int rank, int size) {
    dataset train, test;
    ns_status st = dataset_load_fashion_mnist(&train, o->data_dir, 1);
    if (!st) st = dataset_load_fashion_mnist(&test, o->data_dir, 0);
    if (st) {
        if (!rank) fprintf(stderr, "noisesearch train: %s\n", ns_error_message());
        return CLI_EXIT_USAGE;
    }
    trainer_comm tc = {.ctx = &comm, .rank = rank, .size = size, .allreduce_floats = size > 1 ? allreduce_floats : NULL,
                       .allreduce_doubles = size > 1 ? allreduce_doubles : NULL};
    trainer tr;
    double seconds_before = 0;
    if (o->resume) {
        st = trainer_resume(&tr, o->checkpoint, &train, tc, o->threads, o->steps_override, o->decay_steps,
                            o->lr_min_set ? o->cfg.schedule.lr_min : -1.0f);
        seconds_before = trainer_checkpoint_seconds(o->checkpoint);
    } else {
        st = trainer_init(&tr, &o->cfg, &train, tc, o->threads);
    }
    if (st) {
        if (!rank) fprintf(stderr, "noisesearch train: %s\n", ns_error_message());
        dataset_free(&train), dataset_free(&test);
        return CLI_EXIT_USAGE;
    }
    const trainer_config *c = &tr.cfg;
    if (!rank) {
        char decay[96] = "";
        if (c->schedule.kind == OPTIM_LR_WSD)
            snprintf(decay, sizeof decay, " (cosine to %g from step %ld)", (double)c->schedule.lr_min,
                     c->schedule.decay_start);
        fprintf(stderr, "noisesearch train: %s; %d rank%s\n", gemm_describe(), size, size > 1 ? "s" : "");
        fprintf(stderr,
                "noisesearch train: %s model 28x28x1 patch %d depth %d width %d heads %d (%zu parameters), "
                "batch %d, steps %ld (from %ld), lr %g %s%s, seed %llu\n",
                o->resume ? "resuming" : "new", c->model.patch_size, c->model.depth, c->model.hidden_size,
                c->model.num_heads, tr.model.num_params, c->global_batch, c->steps, tr.step, (double)c->schedule.lr,
                optim_lr_kind_name(c->schedule.kind), decay, (unsigned long long)c->seed);
    }
    double t_start = ns_now(), t_last_ckpt = t_start, t_last_log = t_start, log_sum = 0;
    long log_steps = 0, step0 = tr.step;
    int exit_code = CLI_EXIT_OK;
    while (tr.step < c->steps) {
        trainer_step_info info;
        trainer_step(&tr, &info);
        log_sum += info.loss, log_steps++;
        double now = ns_now();
        if (!rank && (now - t_last_log >= o->log_seconds || tr.step == c->steps)) {
            double rate = (double)log_steps / (now - t_last_log);  // since the last line: the speed now
            fprintf(stderr, "step %ld/%ld  loss %.4f  lr %.2e  grad-norm %.3f  %.0f img/s  ETA %.0f min\n", tr.step,
                    c->steps, log_sum / log_steps, (double)info.lr, info.grad_norm, rate * c->global_batch,
                    (double)(c->steps - tr.step) / rate / 60.0);
            t_last_log = now, log_sum = 0, log_steps = 0;
        }
        if (c->eval_samples > 0 && (tr.step % o->eval_every == 0 || tr.step == c->steps)) {  // 0: no test loss
            double lm, le;
            trainer_eval(&tr, &test, &lm, &le);
            if (!rank) fprintf(stderr, "step %ld  test loss %.4f (weights)  %.4f (EMA)\n", tr.step, lm, le);
        }
        // Agree on stopping and checkpointing: rank 0's clock and any rank's signal.
        int limit = o->stop_after && tr.step - step0 >= o->stop_after;
        double flags[2] = {stop_requested || limit ? 1 : 0, !rank && now - t_last_ckpt >= o->checkpoint_seconds};
        if (size > 1) allreduce_doubles(&comm, flags, 2);
        int stop = flags[0] > 0, done = tr.step == c->steps;
        if (flags[1] > 0 || stop || done) {
            double total_seconds = seconds_before + (ns_now() - t_start);
            if (!rank) {
                st = trainer_checkpoint_save(&tr, o->checkpoint, total_seconds);
                if (!st) st = dit_save(&tr.ema, o->out);
                if (st) fprintf(stderr, "noisesearch train: %s\n", ns_error_message());
                else fprintf(stderr, "noisesearch train: step %ld: saved %s and %s (%.1f min of training)\n", tr.step,
                             o->checkpoint, o->out, total_seconds / 60.0);
            }
            int failed = st != NS_OK;
            MPI_Bcast(&failed, 1, MPI_INT, 0, comm);
            if (failed) {
                exit_code = CLI_EXIT_FAILURE;
                break;
            }
            t_last_ckpt = ns_now();
            if (stop && !done) {
                if (!rank)
                    fprintf(stderr, "noisesearch train: stopped (%s); --resume continues\n",
                            stop_requested ? "signal" : "--stop-after");
                exit_code = EXIT_INTERRUPTED;
                break;
            }
        }
    }
    trainer_free(&tr);
    dataset_free(&train), dataset_free(&test);
    return exit_code;
}

int cmd_train(int argc, char **argv) {
    int rank, size;
    cli_mpi_start(&rank, &size);
    MPI_Comm comm = MPI_COMM_WORLD;
    train_options o;
    if (rank) opterr = 0;  // one copy of each message
    int code = parse_options(argc, argv, &o) ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    if (!code) {
        int threads = o.threads > 0 ? o.threads : default_threads(comm);
        if (gemm_setup(threads) != NS_OK) {
            if (!rank) fprintf(stderr, "noisesearch train: %s\n", ns_error_message());
            code = CLI_EXIT_USAGE;
        } else {
            o.threads = threads;
            signal(SIGTERM, on_stop_signal);
            signal(SIGINT, on_stop_signal);
            signal(SIGUSR1, on_stop_signal);
            code = run_training(&o, comm, rank, size);
        }
    }
    MPI_Finalize();
    return code;
}
