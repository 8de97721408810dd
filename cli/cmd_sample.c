// noisesearch sample: denoise Philox noise into samples with one sampler, no
// search. Writes a PNG grid (one row per class) and/or an HDF5 file with the
// samples, labels and every setting needed to reproduce them.
//
// Sample i of class k starts from noise stream (seed, k << 32 | i), so a
// sample does not depend on which other classes or how many samples were
// requested, nor on the batch size or thread count.
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "common/h5util.h"
#include "common/png_grid.h"
#include "model/denoiser.h"
#include "model/gemm.h"

typedef struct {
    const char *model_path, *classes, *png_path, *h5_path;
    int per_class, nfe, steps, cfg_channels, seed, batch, threads, zoom, overwrite;
    float cfg_scale;
    sampler_kind kind;
} sample_options;

static void sample_usage(FILE *out) {
    fprintf(out,
            "usage: noisesearch sample --model M.h5 [options]\n"
            "Denoise noise into samples (no search); writes a PNG grid and/or an HDF5 file.\n\n"
            "  --model PATH        denoiser weights (HDF5, docs/model.md)            (required)\n"
            "  --classes SPEC      'all' or a comma list of class indices             [all]\n"
            "  --per-class N       samples per class (grid columns)                   [10]\n"
            "  --sampler NAME      heun | euler | euler_maruyama                      [heun]\n"
            "  --nfe N             model evaluations per sample, unguided: Heun takes\n"
            "                      N/2 steps, the others N steps                      [250]\n"
            "  --steps N           sampler steps instead of --nfe\n"
            "  --cfg S             classifier-free guidance scale (1 = off)           [1.0]\n"
            "  --cfg-channels K    guide only the first K channels (0 = all)          [0]\n"
            "  --seed K            noise seed                                         [0]\n"
            "  --batch B           samples per forward pass (16-24 run fastest)      [16]\n"
            "  --threads T         BLIS/OpenMP threads (0: BLIS_NUM_THREADS or all CPUs) [0]\n"
            "  --out PATH          PNG grid, one row per class                        [none]\n"
            "  --h5 PATH           HDF5 file with samples, labels and settings       [none]\n"
            "  --zoom Z            PNG magnification                                  [2]\n"
            "  --overwrite         replace existing output files\n");
}

static int parse_options(int argc, char **argv, sample_options *o) {
    *o = (sample_options){.classes = "all", .per_class = 10, .nfe = 250, .batch = 16, .zoom = 2,
                          .cfg_scale = 1.0f, .kind = SAMPLER_HEUN};
    enum { O_MODEL = 256, O_CLASSES, O_PER_CLASS, O_SAMPLER, O_NFE, O_STEPS, O_CFG, O_CFG_CH, O_SEED, O_BATCH,
           O_THREADS, O_OUT, O_H5, O_ZOOM, O_OVERWRITE, O_HELP };
    static const struct option longopts[] = {
        {"model", required_argument, 0, O_MODEL},     {"classes", required_argument, 0, O_CLASSES},
        {"per-class", required_argument, 0, O_PER_CLASS}, {"sampler", required_argument, 0, O_SAMPLER},
        {"nfe", required_argument, 0, O_NFE},         {"steps", required_argument, 0, O_STEPS},
        {"cfg", required_argument, 0, O_CFG},         {"cfg-channels", required_argument, 0, O_CFG_CH},
        {"seed", required_argument, 0, O_SEED},       {"batch", required_argument, 0, O_BATCH},
        {"threads", required_argument, 0, O_THREADS}, {"out", required_argument, 0, O_OUT},
        {"h5", required_argument, 0, O_H5},           {"zoom", required_argument, 0, O_ZOOM},
        {"overwrite", no_argument, 0, O_OVERWRITE},   {"help", no_argument, 0, O_HELP},
        {0, 0, 0, 0}};
    int opt, bad = 0, nfe_given = 0;
    opterr = 1;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case O_MODEL: o->model_path = optarg; break;
        case O_CLASSES: o->classes = optarg; break;
        case O_PER_CLASS: bad |= cli_parse_int("--per-class", optarg, 1, 100000, &o->per_class); break;
        case O_SAMPLER:
            if (sampler_kind_from_name(optarg, &o->kind)) {
                fprintf(stderr, "noisesearch: --sampler: expected heun, euler or euler_maruyama, got '%s'\n", optarg);
                bad = -1;
            }
            break;
        case O_NFE: bad |= cli_parse_int("--nfe", optarg, 1, 1000000, &o->nfe); nfe_given = 1; break;
        case O_STEPS: bad |= cli_parse_int("--steps", optarg, 1, 1000000, &o->steps); break;
        case O_CFG: bad |= cli_parse_float("--cfg", optarg, 0.0, 100.0, &o->cfg_scale); break;
        case O_CFG_CH: bad |= cli_parse_int("--cfg-channels", optarg, 0, 64, &o->cfg_channels); break;
        case O_SEED: bad |= cli_parse_int("--seed", optarg, 0, 2147483647, &o->seed); break;
        case O_BATCH: bad |= cli_parse_int("--batch", optarg, 1, 65536, &o->batch); break;
        case O_THREADS: bad |= cli_parse_int("--threads", optarg, 0, 1024, &o->threads); break;
        case O_OUT: o->png_path = optarg; break;
        case O_H5: o->h5_path = optarg; break;
        case O_ZOOM: bad |= cli_parse_int("--zoom", optarg, 1, 64, &o->zoom); break;
        case O_OVERWRITE: o->overwrite = 1; break;
        case O_HELP: sample_usage(stdout); exit(0);
        default: bad = -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "noisesearch sample: unexpected argument '%s'\n", argv[optind]);
        bad = -1;
    }
    if (!bad && !o->model_path) {
        fprintf(stderr, "noisesearch sample: --model is required\n");
        bad = -1;
    }
    if (!bad && !o->png_path && !o->h5_path) {
        fprintf(stderr, "noisesearch sample: nothing to write: give --out PNG and/or --h5 FILE\n");
        bad = -1;
    }
    if (!bad && o->steps && nfe_given) {
        fprintf(stderr, "noisesearch sample: give either --nfe or --steps, not both\n");
        bad = -1;
    }
    if (!bad && !o->steps) {
        int per_step = o->kind == SAMPLER_HEUN ? 2 : 1;
        if (o->nfe % per_step) {
            fprintf(stderr, "noisesearch sample: --nfe %d is odd; Heun spends 2 evaluations per step\n", o->nfe);
            bad = -1;
        }
        o->steps = o->nfe / per_step;
    }
    const char *outs[2] = {o->png_path, o->h5_path};
    for (int i = 0; i < 2 && !bad; i++) {
        struct stat sb;
        if (outs[i] && !o->overwrite && stat(outs[i], &sb) == 0) {
            fprintf(stderr, "noisesearch sample: %s exists; pass --overwrite to replace it\n", outs[i]);
            bad = -1;
        }
    }
    if (bad) fprintf(stderr, "(noisesearch sample --help lists the options)\n");
    return bad;
}

static ns_status write_samples_h5(const sample_options *o, const sampler_params *sp, const dit_config *c,
                                  const float *samples, const int *labels, const int *index, int N, int nfe,
                                  double seconds) {
    h5u_atomic_file out;
    ns_status st = h5u_atomic_create(&out, o->h5_path);
    if (st) return st;
    const char *p = out.tmp_path;
    hsize_t sdims[4] = {(hsize_t)N, (hsize_t)c->in_channels, (hsize_t)c->input_size, (hsize_t)c->input_size};
    hsize_t ldims[1] = {(hsize_t)N};
    if (!st) st = h5u_write_floats(out.file, p, "samples", 4, sdims, samples);
    if (!st) st = h5u_write_ints(out.file, p, "labels", 1, ldims, labels);
    if (!st) st = h5u_write_ints(out.file, p, "sample_index", 1, ldims, index);
    if (!st) st = h5u_attr_write_string(out.file, p, "program", "noisesearch " NS_VERSION " sample");
    if (!st) st = h5u_attr_write_string(out.file, p, "model", o->model_path);
    if (!st) st = h5u_attr_write_string(out.file, p, "sampler", sampler_kind_name(sp->kind));
    if (!st) st = h5u_attr_write_int(out.file, p, "steps", sp->steps);
    if (!st) st = h5u_attr_write_int(out.file, p, "nfe_per_sample", nfe);
    if (!st) st = h5u_attr_write_double(out.file, p, "cfg_scale", sp->cfg_scale);
    if (!st) st = h5u_attr_write_int(out.file, p, "cfg_channels", sp->cfg_channels);
    if (!st) st = h5u_attr_write_int(out.file, p, "seed", o->seed);
    if (!st)
        st = h5u_attr_write_string(out.file, p, "noise",
                                   "philox4x32-10 Gaussian, key seed, stream (label << 32 | sample_index), "
                                   "indices 0..C*H*W-1 (model/noise.h)");
    if (!st) st = h5u_attr_write_string(out.file, p, "value_range", "[-1, 1] (pixels scaled as in training)");
    if (!st) st = h5u_attr_write_double(out.file, p, "seconds", seconds);
    return h5u_atomic_finish(&out, st);
}

int cmd_sample(int argc, char **argv) {
    sample_options o;
    if (parse_options(argc, argv, &o)) return CLI_EXIT_USAGE;
    if (gemm_setup(o.threads) != NS_OK) {
        fprintf(stderr, "noisesearch: %s\n", ns_error_message());
        return CLI_EXIT_USAGE;
    }
    dit_model m;
    if (dit_load(&m, o.model_path) != NS_OK) {
        fprintf(stderr, "noisesearch: %s\n", ns_error_message());
        return CLI_EXIT_USAGE;
    }
    const dit_config *c = &m.cfg;
    int *classes = ns_malloc(sizeof(int) * c->num_classes, "classes");
    int nclass = cli_parse_classes(o.classes, c->num_classes, classes);
    sampler_params sp = {.kind = o.kind, .steps = o.steps, .t_a = 0.0f, .t_b = 1.0f, .cfg_scale = o.cfg_scale,
                         .cfg_channels = o.cfg_channels};
    if (nclass < 0 || o.cfg_channels > c->in_channels) {
        if (nclass >= 0)
            fprintf(stderr, "noisesearch: --cfg-channels %d exceeds the model's %d channels\n", o.cfg_channels,
                    c->in_channels);
        free(classes);
        dit_model_free(&m);
        return CLI_EXIT_USAGE;
    }
    int N = nclass * o.per_class, dim = dit_sample_dim(c);
    int B = o.batch < N ? o.batch : N;
    int guided = o.cfg_scale != 1.0f;
    fprintf(stderr, "noisesearch sample: %s\n", gemm_describe());
    fprintf(stderr, "noisesearch sample: %s (%dx%dx%d, patch %d, depth %d, width %d), %d samples, %s %d steps "
                    "(%d NFE/sample), cfg %.2f, batch %d\n",
            o.model_path, c->input_size, c->input_size, c->in_channels, c->patch_size, c->depth, c->hidden_size, N,
            sampler_kind_name(o.kind), o.steps, sampler_nfe(&sp), o.cfg_scale, B);

    dit_workspace ws;
    sampler_workspace sws = {0};
    NS_CHECK(dit_workspace_init(&ws, c, guided ? 2 * B : B, o.threads) == NS_OK);
    NS_CHECK(sampler_workspace_init(&sws, dim, B) == NS_OK);
    denoiser d = {&m, &ws};
    sampler_model sm = denoiser_sampler_model(&d);
    float *samples = ns_malloc(sizeof(float) * (size_t)N * dim, "samples");
    int *labels = ns_malloc(sizeof(int) * N, "labels"), *index = ns_malloc(sizeof(int) * N, "index");
    noise_key *keys = ns_malloc(sizeof(noise_key) * N, "keys");
    for (int n = 0; n < N; n++) {
        labels[n] = classes[n / o.per_class];
        index[n] = n % o.per_class;
        keys[n] = (noise_key){.seed = (uint64_t)o.seed, .stream = ((uint64_t)labels[n] << 32) | (uint64_t)index[n]};
        noise_fill(samples + (size_t)n * dim, (size_t)dim, keys[n], 0);
    }

    double t0 = ns_now();
    ns_status st = NS_OK;
    int nfe = 0;
    for (int start = 0; start < N && !st; start += B) {
        int nb = N - start < B ? N - start : B;
        // SDE noise follows the initial noise in each sample's stream.
        st = sampler_run(&sm, &sp, &sws, samples + (size_t)start * dim, labels + start, nb, keys + start,
                         (uint64_t)dim, NULL, NULL, &nfe);
        double el = ns_now() - t0;
        int done = start + nb;
        fprintf(stderr, "noisesearch sample: %d/%d samples, %.1f samples/s, %.0f NFE/s, ETA %.0f s\n", done, N,
                done / el, (double)done * nfe / el, el / done * (N - done));
    }
    double seconds = ns_now() - t0;
    if (!st && o.png_path) {
        png_grid_layout g = {.rows = nclass, .cols = o.per_class, .channels = c->in_channels,
                             .height = c->input_size, .width = c->input_size, .zoom = o.zoom, .pad = 2};
        st = png_grid_write(o.png_path, samples, &g);
        if (!st) fprintf(stderr, "noisesearch sample: wrote %s (%d x %d grid)\n", o.png_path, nclass, o.per_class);
    }
    if (!st && o.h5_path) {
        st = write_samples_h5(&o, &sp, c, samples, labels, index, N, nfe, seconds);
        if (!st) fprintf(stderr, "noisesearch sample: wrote %s (%d samples)\n", o.h5_path, N);
    }
    if (st) fprintf(stderr, "noisesearch: %s\n", ns_error_message());

    free(samples), free(labels), free(index), free(keys), free(classes);
    sampler_workspace_free(&sws);
    dit_workspace_free(&ws);
    dit_model_free(&m);
    return st ? CLI_EXIT_FAILURE : CLI_EXIT_OK;
}
