// noisesearch reference / noisesearch eval: the metrics that judge a search,
// measured with the evaluator (the network no search optimises, §4).
//
//   reference  evaluator features of the Fashion-MNIST test set, their
//              Gaussian statistics and the features themselves (for KID and
//              precision/recall), tied to the evaluator file by its SHA-256.
//   eval       FID, KID, Inception Score, precision/recall (k-NN manifolds)
//              and class accuracy of the samples in sample files (`noisesearch
//              sample --h5`) or search run logs, against a reference; prints
//              a table and writes each file's row into it as /evaluation.
//              eval_files (cli/eval.h) is that whole path after parsing;
//              noisesearch curves calls it for logs lacking /evaluation.
//
// Every input is checked before anything is computed or written; bad input
// exits with status 2 and one line on stderr. docs/verifiers.md describes
// the file layouts.
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "eval.h"
#include "common/h5util.h"
#include "common/sha256.h"
#include "model/dataset.h"
#include "model/gemm.h"
#include "verifiers/metrics.h"
#include "verifiers/verifier.h"

#define REFERENCE_FORMAT "noisesearch-reference"
#define REFERENCE_STATS METRICS_REFERENCE_GROUP
#define RUNLOG_FORMAT_NAME "noisesearch-run-log"  // coordinator/runlog.h RUNLOG_FORMAT
#define PROGRESS_SECONDS 2.0

// ---------------------------------------------------------------------------
// The evaluator and feature extraction (shared by both commands).

typedef struct {
    const char *path;
    char sha256[SHA256_HEX_SIZE];
    classifier net;
    classifier_workspace ws;
    int K, D, C, S;  // classes, feature dim, image channels and side
} evaluator;

static ns_status evaluator_open(evaluator *e, const char *path, int batch, int threads) {
    memset(e, 0, sizeof *e);
    e->path = path;
    ns_status st = verifier_network_load(&e->net, path, 1);
    if (st) return st;
    if ((st = sha256_hex_file(path, e->sha256)) ||
        (st = classifier_workspace_init(&e->ws, &e->net.cfg, batch, threads))) {
        classifier_free(&e->net);
        return st;
    }
    e->K = e->net.cfg.num_classes;
    e->D = e->net.cfg.backbone.hidden_size;
    e->C = e->net.cfg.backbone.in_channels;
    e->S = e->net.cfg.backbone.input_size;
    return NS_OK;
}

static void evaluator_close(evaluator *e) {
    classifier_workspace_free(&e->ws);
    classifier_free(&e->net);
}

// features (n, D) and logits (n, K) of images (n, C, S, S), in batches, with
// a progress line on stderr every few seconds and one when done.
static void evaluator_run(evaluator *e, const char *cmd, const char *what, const float *images, int n,
                          float *features, float *logits) {
    size_t dim = (size_t)e->C * e->S * e->S;
    double t0 = ns_now(), last = t0;
    for (int start = 0; start < n; start += e->ws.max_batch) {
        int nb = n - start < e->ws.max_batch ? n - start : e->ws.max_batch;
        classifier_forward(&e->net, &e->ws, logits + (size_t)start * e->K, features + (size_t)start * e->D,
                           images + (size_t)start * dim, nb);
        double now = ns_now();
        int done = start + nb;
        if (now - last >= PROGRESS_SECONDS || done == n) {
            double rate = done / fmax(now - t0, 1e-9);
            fprintf(stderr, "noisesearch %s: %s: evaluator features %d/%d images, %.0f images/s, ETA %.0f s\n", cmd,
                    what, done, n, rate, (n - done) / rate);
            last = now;
        }
    }
}

// probs (n, K) = softmax of logits, in double.
static void softmax_rows(float *probs, const float *logits, int n, int K) {
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * K;
        double zmax = z[0], sum = 0;
        for (int k = 1; k < K; k++) zmax = z[k] > zmax ? z[k] : zmax;
        for (int k = 0; k < K; k++) sum += exp((double)z[k] - zmax);
        for (int k = 0; k < K; k++) probs[(size_t)i * K + k] = (float)(exp((double)z[k] - zmax) / sum);
    }
}

static void utc_now(char *buf, size_t n) {
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

static int fail(const char *cmd, int code) {
    fprintf(stderr, "noisesearch %s: %s\n", cmd, ns_error_message());
    return code;
}

// ---------------------------------------------------------------------------
// KID's feature scale. The kernel (a.b / D + 1)^3 was designed for Inception
// pool features, whose a.b / D is of order 1 or less; the evaluator's features
// are LayerNorm outputs with a learned scale (mean |f|^2 / D of 7-21 measured),
// so the cubic kernel is dominated by the norms and KID comes out in the tens
// to thousands. KID is therefore computed on the features divided by one
// scalar per evaluator, the reference set's RMS feature value
// s = sqrt(mean over images of |f|^2 / D), applied to both sets: a global
// rescaling that keeps the geometry and puts the reference at
// mean |f|^2 / D = 1. metrics_kid stays the textbook estimator; FID and
// precision/recall use the features as they are. Measured (docs/verifiers.md):
// the spread over subsets shrinks with the values, by about the same factor,
// so the rescaling fixes the scale, not KID's sensitivity.

// sqrt(sum of x^2 / (n d)) of x (n, d), summed in double in row order.
static double features_rms(const float *x, long n, int d) {
    double sum = 0;
    for (size_t i = 0; i < (size_t)n * (size_t)d; i++) sum += (double)x[i] * x[i];
    return sqrt(sum / ((double)n * d));
}

// A malloc'ed copy of x (n, d) divided by scale.
static float *features_scaled(const float *x, long n, int d, double scale, const char *what) {
    float *y = ns_malloc((size_t)n * d * sizeof(float), what);
    for (size_t i = 0; i < (size_t)n * (size_t)d; i++) y[i] = (float)(x[i] / scale);
    return y;
}

// ---------------------------------------------------------------------------
// noisesearch reference

typedef struct {
    const char *evaluator, *out, *data_dir;
    int overwrite, limit, batch, threads;
} reference_options;

static void reference_usage(FILE *out) {
    fprintf(out,
            "usage: noisesearch reference --evaluator E.h5 --out R.h5 [options]\n"
            "Evaluator features of the Fashion-MNIST test set and their Gaussian statistics, the reference\n"
            "that `noisesearch eval` measures samples against (FID, KID, precision/recall).\n\n"
            "  --evaluator PATH    the evaluator (a classifier trained with --role evaluator)  (required)\n"
            "  --out PATH          reference file to write (HDF5, written atomically)         (required)\n"
            "  --data DIR          Fashion-MNIST directory                 [%s]\n"
            "  --limit N           only the first N test images (quick checks; 0 = all)        [0]\n"
            "  --batch B           images per forward pass                                    [256]\n"
            "  --threads T         BLIS/OpenMP threads (0: BLIS_NUM_THREADS or all CPUs)      [0]\n"
            "  --overwrite         replace an existing output file\n",
            DATASET_FASHION_MNIST_DIR);
}

static int reference_parse(int argc, char **argv, reference_options *o) {
    *o = (reference_options){.batch = 256};
    enum { O_EVAL = 256, O_OUT, O_DATA, O_LIMIT, O_BATCH, O_THREADS, O_OVERWRITE, O_HELP };
    static const struct option longopts[] = {
        {"evaluator", 1, 0, O_EVAL}, {"out", 1, 0, O_OUT},         {"data", 1, 0, O_DATA},
        {"limit", 1, 0, O_LIMIT},    {"batch", 1, 0, O_BATCH},     {"threads", 1, 0, O_THREADS},
        {"overwrite", 0, 0, O_OVERWRITE}, {"help", 0, 0, O_HELP},  {0, 0, 0, 0}};
    int opt, bad = 0;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case O_EVAL: o->evaluator = optarg; break;
        case O_OUT: o->out = optarg; break;
        case O_DATA: o->data_dir = optarg; break;
        case O_LIMIT: bad |= cli_parse_int("--limit", optarg, 0, 100000000, &o->limit); break;
        case O_BATCH: bad |= cli_parse_int("--batch", optarg, 1, 65536, &o->batch); break;
        case O_THREADS: bad |= cli_parse_int("--threads", optarg, 0, 1024, &o->threads); break;
        case O_OVERWRITE: o->overwrite = 1; break;
        case O_HELP: reference_usage(stdout); exit(0);
        default: bad = -1;
        }
    }
    if (bad) return -1;
    if (optind < argc) {
        fprintf(stderr, "noisesearch reference: unexpected argument '%s' (--help lists the options)\n", argv[optind]);
        return -1;
    }
    if (!o->evaluator || !o->out) {
        fprintf(stderr, "noisesearch reference: --evaluator and --out are required (--help lists the options)\n");
        return -1;
    }
    if (!o->overwrite && file_exists(o->out)) {
        fprintf(stderr, "noisesearch reference: %s exists; pass --overwrite to replace it\n", o->out);
        return -1;
    }
    return 0;
}

static ns_status reference_write(const reference_options *o, const evaluator *e, const dataset *d, int n,
                                 const float *features, const metrics_gaussian *g, double accuracy) {
    h5u_atomic_file out;
    ns_status st = h5u_atomic_create(&out, o->out);
    if (st) return st;
    const char *p = out.tmp_path;
    hid_t f = out.file;
    char when[32];
    utc_now(when, sizeof when);
    hsize_t df[2] = {(hsize_t)n, (hsize_t)e->D};
    st = h5u_write_floats(f, p, "features", 2, df, features);
    if (!st) st = h5u_write_ints(f, p, "labels", 1, df, d->labels);
    if (!st) st = metrics_gaussian_write(f, p, REFERENCE_STATS, g);
    if (!st) st = h5u_attr_write_string(f, p, "format", REFERENCE_FORMAT);
    if (!st) st = h5u_attr_write_int(f, p, "version", 1);
    if (!st) st = h5u_attr_write_string(f, p, "program", "noisesearch " NS_VERSION " reference");
    if (!st) st = h5u_attr_write_string(f, p, "created", when);
    if (!st) st = h5u_attr_write_string(f, p, "evaluator", e->path);
    if (!st) st = h5u_attr_write_string(f, p, "evaluator_sha256", e->sha256);
    if (!st) st = h5u_attr_write_string(f, p, "data", o->data_dir ? o->data_dir : DATASET_FASHION_MNIST_DIR);
    if (!st) st = h5u_attr_write_string(f, p, "split", "test");
    if (!st) st = h5u_attr_write_int(f, p, "count", n);
    if (!st) st = h5u_attr_write_int(f, p, "feature_dim", e->D);
    if (!st) st = h5u_attr_write_double(f, p, "evaluator_accuracy", accuracy);
    if (!st) st = h5u_attr_write_double(f, p, "feature_rms", features_rms(features, n, e->D));
    if (!st)
        st = h5u_attr_write_string(f, p, "description",
                                   "features (count, feature_dim): evaluator features (mean over tokens of the final "
                                   "LayerNorm output) of the first count Fashion-MNIST test images; labels: their "
                                   "classes; stats/: Gaussian mean and unbiased covariance of the features; feature_rms: "
                                   "sqrt(mean |f|^2 / feature_dim), the scale KID divides both sets' features by");
    return h5u_atomic_finish(&out, st);
}

int cmd_reference(int argc, char **argv) {
    const char *cmd = "reference";
    reference_options o;
    if (reference_parse(argc, argv, &o)) return CLI_EXIT_USAGE;
    if (gemm_setup(o.threads)) return fail(cmd, CLI_EXIT_USAGE);
    evaluator e;
    if (evaluator_open(&e, o.evaluator, o.batch, o.threads)) return fail(cmd, CLI_EXIT_USAGE);
    dataset d;
    if (dataset_load_fashion_mnist(&d, o.data_dir, 0)) {
        evaluator_close(&e);
        return fail(cmd, CLI_EXIT_USAGE);
    }
    if (d.channels != e.C || d.height != e.S || d.width != e.S || d.num_classes > e.K) {
        ns_error_set(NS_ERR_ARG, "%s takes %dx%dx%d images of %d classes, the test set has %dx%dx%d of %d", e.path,
                     e.C, e.S, e.S, e.K, d.channels, d.height, d.width, d.num_classes);
        dataset_free(&d), evaluator_close(&e);
        return fail(cmd, CLI_EXIT_USAGE);
    }
    int n = o.limit > 0 && o.limit < d.count ? o.limit : d.count;
    fprintf(stderr, "noisesearch reference: %s; evaluator %s (sha256 %.16s...), %d test images\n", gemm_describe(),
            e.path, e.sha256, n);
    float *features = ns_malloc((size_t)n * e.D * sizeof(float), "reference features");
    float *logits = ns_malloc((size_t)n * e.K * sizeof(float), "reference logits");
    evaluator_run(&e, cmd, "test set", d.images, n, features, logits);
    double accuracy = 0;
    metrics_gaussian g;
    ns_status st = metrics_gaussian_init(&g, e.D);
    if (!st) st = metrics_gaussian_add(&g, features, n);
    if (!st) st = metrics_gaussian_finish(&g);
    if (!st) st = metrics_class_accuracy(&accuracy, NULL, logits, d.labels, n, e.K);
    if (!st) st = reference_write(&o, &e, &d, n, features, &g, accuracy);
    if (!st)
        fprintf(stderr, "noisesearch reference: wrote %s (%d x %d features, evaluator accuracy %.4f)\n", o.out, n, e.D,
                accuracy);
    int code = st ? fail(cmd, CLI_EXIT_FAILURE) : CLI_EXIT_OK;
    metrics_gaussian_free(&g);
    free(features), free(logits);
    dataset_free(&d);
    evaluator_close(&e);
    return code;
}

// ---------------------------------------------------------------------------
// noisesearch eval: options, the reference, the inputs

void eval_options_default(eval_options *o) {
    *o = (eval_options){.cmd = "eval", .k = 3, .kid_subsets = 100, .kid_size = 1000, .is_splits = 10, .batch = 256,
                        .print_table = 1};
}

static void eval_usage(FILE *out) {
    fprintf(out,
            "usage: noisesearch eval FILE.h5 [FILE2.h5 ...] --evaluator E.h5 --reference R.h5 [options]\n"
            "Metrics of the samples in sample files (noisesearch sample --h5) or search run logs, measured\n"
            "with the evaluator against the test-set reference (noisesearch reference); prints a table and\n"
            "writes each file's row into the file as group /evaluation (replacing an earlier one).\n\n"
            "  --evaluator PATH    the evaluator the reference was made with                  (required)\n"
            "  --reference PATH    reference features and statistics                          (required)\n"
            "  --k K               neighbours for the precision/recall manifolds              [3]\n"
            "  --kid-subsets N     KID: random subsets                                        [100]\n"
            "  --kid-size M        KID: samples per subset (capped at the set sizes)          [1000]\n"
            "  --kid-seed S        KID: subset draws                                          [0]\n"
            "  --is-splits N       Inception Score: splits                                    [10]\n"
            "  --batch B           images per forward pass                                    [256]\n"
            "  --threads T         BLIS/OpenMP threads (0: BLIS_NUM_THREADS or all CPUs)      [0]\n"
            "  --per-class         also print each file's accuracy per conditioning class\n"
            "  --no-write          print the table only; leave the files unchanged\n");
}

static int eval_parse(int argc, char **argv, eval_options *o) {
    eval_options_default(o);
    enum { O_EVAL = 256, O_REF, O_K, O_KID_SUBSETS, O_KID_SIZE, O_KID_SEED, O_IS_SPLITS, O_BATCH, O_THREADS,
           O_NO_WRITE, O_PER_CLASS, O_HELP };
    static const struct option longopts[] = {
        {"evaluator", 1, 0, O_EVAL},     {"reference", 1, 0, O_REF},      {"k", 1, 0, O_K},
        {"kid-subsets", 1, 0, O_KID_SUBSETS}, {"kid-size", 1, 0, O_KID_SIZE}, {"kid-seed", 1, 0, O_KID_SEED},
        {"is-splits", 1, 0, O_IS_SPLITS}, {"batch", 1, 0, O_BATCH},      {"threads", 1, 0, O_THREADS},
        {"no-write", 0, 0, O_NO_WRITE},   {"per-class", 0, 0, O_PER_CLASS}, {"help", 0, 0, O_HELP},
        {0, 0, 0, 0}};
    int opt, bad = 0;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case O_EVAL: o->evaluator = optarg; break;
        case O_REF: o->reference = optarg; break;
        case O_K: bad |= cli_parse_int("--k", optarg, 1, 1000, &o->k); break;
        case O_KID_SUBSETS: bad |= cli_parse_int("--kid-subsets", optarg, 1, 100000, &o->kid_subsets); break;
        case O_KID_SIZE: bad |= cli_parse_int("--kid-size", optarg, 2, 100000000, &o->kid_size); break;
        case O_KID_SEED: bad |= cli_parse_int("--kid-seed", optarg, 0, 2147483647, &o->kid_seed); break;
        case O_IS_SPLITS: bad |= cli_parse_int("--is-splits", optarg, 1, 10000, &o->is_splits); break;
        case O_BATCH: bad |= cli_parse_int("--batch", optarg, 1, 65536, &o->batch); break;
        case O_THREADS: bad |= cli_parse_int("--threads", optarg, 0, 1024, &o->threads); break;
        case O_NO_WRITE: o->no_write = 1; break;
        case O_PER_CLASS: o->per_class = 1; break;
        case O_HELP: eval_usage(stdout); exit(0);
        default: bad = -1;
        }
    }
    if (bad) return -1;
    o->files = (const char **)argv + optind;
    o->n_files = argc - optind;
    const char *why = !o->evaluator || !o->reference ? "--evaluator and --reference are required"
                      : o->n_files == 0              ? "no input files"
                                                     : NULL;
    if (why) {
        fprintf(stderr, "noisesearch eval: %s (--help lists the options)\n", why);
        return -1;
    }
    return 0;
}

typedef struct {
    const char *path;
    char sha256[SHA256_HEX_SIZE];
    int count, dim;
    float *features;         // (count, dim)
    double feature_rms;      // KID's scale (attribute feature_rms, or computed for older references)
    float *kid_features;     // (count, dim) features / feature_rms
    float *radii2;           // (count,) squared k-NN radii, for precision
    metrics_gaussian stats;  // finished
} reference;

static void reference_free(reference *r) {
    free(r->features), free(r->radii2), free(r->kid_features);
    metrics_gaussian_free(&r->stats);
    memset(r, 0, sizeof *r);
}

// Read and check a reference against the evaluator (digest, dimensions).
static ns_status reference_load(reference *r, const char *path, const evaluator *e, int k) {
    memset(r, 0, sizeof *r);
    r->path = path;
    hid_t f;
    ns_status st = h5u_open_read(&f, path);
    if (st) return st;
    char format[64] = "", digest[SHA256_HEX_SIZE + 1] = "", made_with[4096] = "";
    hsize_t dims[2] = {0, 0};
    st = h5u_attr_read_string(f, path, "format", format, sizeof format);
    if (!st && strcmp(format, REFERENCE_FORMAT))
        st = ns_error_set(NS_ERR_FORMAT, "%s: format '%s', expected '%s' (make one with noisesearch reference)", path,
                          format, REFERENCE_FORMAT);
    if (!st) st = h5u_attr_read_string(f, path, "evaluator_sha256", digest, sizeof digest);
    if (!st) st = h5u_attr_read_string(f, path, "evaluator", made_with, sizeof made_with);
    if (!st && strcmp(digest, e->sha256))
        st = ns_error_set(NS_ERR_ARG,
                          "%s was made with evaluator %s (sha256 %.16s...), not with %s (sha256 %.16s...); make a "
                          "reference for this evaluator with noisesearch reference",
                          path, made_with, digest, e->path, e->sha256);
    if (!st) st = h5u_read_floats(f, path, "features", 2, dims, &r->features);
    if (!st && (dims[1] != (hsize_t)e->D || dims[0] <= (hsize_t)k || dims[0] > 100000000))
        st = ns_error_set(NS_ERR_FORMAT, "%s: dataset 'features' has shape [%llu,%llu], expected [n,%d] with n > %d",
                          path, (unsigned long long)dims[0], (unsigned long long)dims[1], e->D, k);
    if (!st) st = metrics_gaussian_read(&r->stats, f, path, REFERENCE_STATS);
    if (!st && (r->stats.dim != e->D || r->stats.count != (long)dims[0]))
        st = ns_error_set(NS_ERR_FORMAT, "%s: %s/ describes %ld features of dimension %d, 'features' holds %llu of %d",
                          path, REFERENCE_STATS, r->stats.count, r->stats.dim, (unsigned long long)dims[0], e->D);
    if (!st) {
        htri_t has_rms;
        H5E_BEGIN_TRY { has_rms = H5Aexists(f, "feature_rms"); }
        H5E_END_TRY;
        if (has_rms > 0) st = h5u_attr_read_double(f, path, "feature_rms", &r->feature_rms);
        else r->feature_rms = features_rms(r->features, (long)dims[0], e->D);  // made before the attribute existed
    }
    if (!st && !(r->feature_rms > 0 && isfinite(r->feature_rms)))
        st = ns_error_set(NS_ERR_FORMAT, "%s: feature_rms = %g, expected a positive number (are all features zero?)",
                          path, r->feature_rms);
    h5u_close_file(f);
    if (!st) st = sha256_hex_file(path, r->sha256);
    if (st) {
        reference_free(r);
        return st;
    }
    r->count = (int)dims[0];
    r->dim = e->D;
    r->kid_features = features_scaled(r->features, r->count, r->dim, r->feature_rms, "reference KID features");
    return NS_OK;
}

// One file to evaluate: a sample file or a run log.
typedef struct {
    const char *path;
    int runlog, oracle, n;
    const char *images_name, *labels_name;  // dataset paths inside the file
    int *labels;                            // (n,) read by input_probe
} eval_input;

// The dims of dataset `name` (rank ndim) or an error naming it. NULL dims
// just checks presence.
static ns_status dataset_dims(hid_t f, const char *path, const char *name, int ndim, hsize_t *dims) {
    ns_status st = NS_OK;
    hid_t d = H5I_INVALID_HID, s = H5I_INVALID_HID;
    H5E_BEGIN_TRY {
        if (H5Lexists(f, name, H5P_DEFAULT) <= 0 || (d = H5Dopen2(f, name, H5P_DEFAULT)) < 0 ||
            (s = H5Dget_space(d)) < 0)
            st = ns_error_set(NS_ERR_FORMAT, "%s: missing dataset '%s'", path, name);
        else if (H5Sget_simple_extent_ndims(s) != ndim)
            st = ns_error_set(NS_ERR_FORMAT, "%s: dataset '%s' has rank %d, expected %d", path, name,
                              H5Sget_simple_extent_ndims(s), ndim);
        else
            H5Sget_simple_extent_dims(s, dims, NULL);
        if (s >= 0) H5Sclose(s);
        if (d >= 0) H5Dclose(d);
    }
    H5E_END_TRY;
    return st;
}

static int link_exists(hid_t f, const char *name) {
    htri_t e;
    H5E_BEGIN_TRY { e = H5Lexists(f, name, H5P_DEFAULT); }
    H5E_END_TRY;
    return e > 0;
}

// Open for reading; a file still held by a search's SWMR writer opens only
// in SWMR-read mode, which *live records.
ns_status eval_open_input(hid_t *f, const char *path, int *live) {
    *live = 0;
    ns_status st = h5u_open_read(f, path);
    if (st != NS_ERR_FORMAT || access(path, R_OK)) return st;
    hid_t g;
    H5E_BEGIN_TRY { g = H5Fopen(path, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, H5P_DEFAULT); }
    H5E_END_TRY;
    if (g < 0) return st;
    *f = g, *live = 1;
    return NS_OK;
}

// Which layout, how many samples, the labels; shapes checked against the
// evaluator. Reads no images.
static ns_status input_probe(eval_input *in, const char *path, const evaluator *e, const eval_options *o,
                             int min_n) {
    memset(in, 0, sizeof *in);
    in->path = path;
    hid_t f;
    int live;
    ns_status st = eval_open_input(&f, path, &live);
    if (st) return st;
    char format[64] = "";
    H5E_BEGIN_TRY {
        if (H5Aexists(f, "format") > 0) h5u_attr_read_string(f, path, "format", format, sizeof format);
    }
    H5E_END_TRY;
    in->runlog = !strcmp(format, RUNLOG_FORMAT_NAME) || link_exists(f, "searches");
    in->images_name = in->runlog ? "searches/sample" : "samples";
    in->labels_name = in->runlog ? "searches/label" : "labels";
    if (!in->runlog && !link_exists(f, "samples"))
        st = ns_error_set(NS_ERR_FORMAT,
                          "%s: missing dataset 'samples' (neither a sample file with samples and labels nor a run log "
                          "with /searches/sample and /searches/label)",
                          path);
    if (!st && live && !o->no_write)
        st = ns_error_set(NS_ERR_ARG, "%s is still being written by a search (SWMR); evaluate it with --no-write or "
                          "after the run ends", path);
    if (!st && in->runlog) st = h5u_attr_read_int(f, path, "oracle", &in->oracle);
    hsize_t di[4] = {0}, dl[1] = {0};
    if (!st) st = dataset_dims(f, path, in->images_name, 4, di);
    if (!st && (di[1] != (hsize_t)e->C || di[2] != (hsize_t)e->S || di[3] != (hsize_t)e->S))
        st = ns_error_set(NS_ERR_FORMAT, "%s: dataset '%s' has shape [%llu,%llu,%llu,%llu], expected [n,%d,%d,%d] (the "
                          "evaluator's image shape)",
                          path, in->images_name, (unsigned long long)di[0], (unsigned long long)di[1],
                          (unsigned long long)di[2], (unsigned long long)di[3], e->C, e->S, e->S);
    if (!st) st = h5u_read_ints(f, path, in->labels_name, 1, dl, &in->labels);
    if (!st && dl[0] != di[0])
        st = ns_error_set(NS_ERR_FORMAT, "%s: '%s' has %llu entries but '%s' holds %llu images", path, in->labels_name,
                          (unsigned long long)dl[0], in->images_name, (unsigned long long)di[0]);
    if (!st && (di[0] < (hsize_t)min_n || di[0] > 100000000))
        st = ns_error_set(NS_ERR_ARG, "%s: %llu samples; the metrics need at least %d (--is-splits %d, --k %d)", path,
                          (unsigned long long)di[0], min_n, o->is_splits, o->k);
    for (hsize_t i = 0; !st && i < dl[0]; i++)
        if (in->labels[i] < 0 || in->labels[i] >= e->K)
            st = ns_error_set(NS_ERR_FORMAT, "%s: %s[%llu] = %d is not a class of the evaluator [0, %d)", path,
                              in->labels_name, (unsigned long long)i, in->labels[i], e->K);
    h5u_close_file(f);
    if (st) {
        free(in->labels);
        in->labels = NULL;
        return st;
    }
    in->n = (int)di[0];
    return NS_OK;
}

static ns_status input_read_images(const eval_input *in, float **images) {
    hid_t f;
    int live;
    ns_status st = eval_open_input(&f, in->path, &live);
    if (st) return st;
    hsize_t d[4];
    st = h5u_read_floats(f, in->path, in->images_name, 4, d, images);
    h5u_close_file(f);
    return st;
}

// ---------------------------------------------------------------------------
// noisesearch eval: metrics, table, /evaluation

typedef struct {
    double fid, kid_mean, kid_std, is_mean, is_std, precision, recall, accuracy, seconds;
    int kid_size;
    int *confusion;           // (K,K) sample counts [conditioning label][evaluator argmax]
    double *class_accuracy;   // (K,) per conditioning label; NaN for a label without samples
} eval_result;

// Accuracy per conditioning label from a (K,K) confusion matrix; NaN for a
// label without samples.
static void class_accuracies(double *accuracy, const int *confusion, int K) {
    for (int c = 0; c < K; c++) {
        long total = 0;
        for (int j = 0; j < K; j++) total += confusion[(size_t)c * K + j];
        accuracy[c] = total ? (double)confusion[(size_t)c * K + c] / total : NAN;
    }
}

static ns_status evaluate(eval_result *r, const eval_options *o, evaluator *e, const reference *ref,
                          const eval_input *in, const float *images) {
    int n = in->n, K = e->K, D = e->D;
    double t0 = ns_now();
    float *features = ns_malloc((size_t)n * D * sizeof(float), "eval features");
    float *logits = ns_malloc((size_t)n * K * sizeof(float), "eval logits");
    float *probs = ns_malloc((size_t)n * K * sizeof(float), "eval probabilities");
    float *radii2 = ns_malloc((size_t)n * sizeof(float), "eval radii");
    evaluator_run(e, o->cmd, in->path, images, n, features, logits);
    softmax_rows(probs, logits, n, K);
    metrics_gaussian g;
    ns_status st = metrics_gaussian_init(&g, D);
    if (!st) st = metrics_gaussian_add(&g, features, n);
    if (!st) st = metrics_gaussian_finish(&g);
    if (!st) st = metrics_fid(&r->fid, &g, &ref->stats);
    r->kid_size = o->kid_size < n ? o->kid_size : n;
    if (r->kid_size > ref->count) r->kid_size = ref->count;
    float *kid_features = features_scaled(features, n, D, ref->feature_rms, "eval KID features");
    if (!st)
        st = metrics_kid(&r->kid_mean, &r->kid_std, kid_features, n, ref->kid_features, ref->count, D,
                         o->kid_subsets, o->kid_size, (uint64_t)o->kid_seed);
    free(kid_features);
    if (!st) st = metrics_inception_score(&r->is_mean, &r->is_std, probs, n, K, o->is_splits);
    // Precision: samples inside the reference manifold; recall: reference inside the samples' manifold.
    if (!st) st = metrics_manifold_fraction(&r->precision, features, n, ref->features, ref->radii2, ref->count, D, 0);
    if (!st) st = metrics_knn_radii(radii2, features, n, D, o->k, 0);
    if (!st) st = metrics_manifold_fraction(&r->recall, ref->features, ref->count, features, radii2, n, D, 0);
    r->confusion = ns_malloc((size_t)K * K * sizeof(int), "eval confusion matrix");
    r->class_accuracy = ns_malloc((size_t)K * sizeof(double), "eval class accuracy");
    if (!st) st = metrics_class_accuracy(&r->accuracy, r->confusion, logits, in->labels, n, K);
    if (!st) class_accuracies(r->class_accuracy, r->confusion, K);
    if (st) ns_error_set(st, "%s: %s", in->path, ns_error_message());
    r->seconds = ns_now() - t0;
    metrics_gaussian_free(&g);
    free(features), free(logits), free(probs), free(radii2);
    return st;
}

// The row as group /evaluation: written as /evaluation.new, then moved over
// the old one, so the file holds one complete row at every moment.
static ns_status result_write(const eval_input *in, const eval_result *r, const eval_options *o, const evaluator *e,
                              const reference *ref) {
    int K = e->K;
    const char *p = in->path, *tmp = EVAL_GROUP ".new";
    hid_t f, g = H5I_INVALID_HID;
    H5E_BEGIN_TRY { f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT); }
    H5E_END_TRY;
    if (f < 0)
        return ns_error_set(NS_ERR_IO, "%s: cannot open for writing the evaluation (read-only, or open in another "
                            "program?); --no-write skips writing", p);
    H5E_BEGIN_TRY {
        if (H5Lexists(f, tmp, H5P_DEFAULT) > 0) H5Ldelete(f, tmp, H5P_DEFAULT);
        g = H5Gcreate2(f, tmp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    }
    H5E_END_TRY;
    ns_status st = g < 0 ? ns_error_set(NS_ERR_IO, "%s: cannot create group /%s", p, tmp) : NS_OK;
    char when[32];
    utc_now(when, sizeof when);
    const struct {
        const char *name;
        double v;
    } metrics[] = {{"fid", r->fid},           {"kid_mean", r->kid_mean}, {"kid_std", r->kid_std},
                   {"is_mean", r->is_mean},   {"is_std", r->is_std},     {"precision", r->precision},
                   {"recall", r->recall},     {"accuracy", r->accuracy}, {"seconds", r->seconds},
                   {"kid_feature_scale", ref->feature_rms}};
    for (size_t i = 0; i < sizeof metrics / sizeof metrics[0] && !st; i++)
        st = h5u_attr_write_double(g, p, metrics[i].name, metrics[i].v);
    const struct {
        const char *name;
        long long v;
    } ints[] = {{"count", in->n},          {"oracle", in->oracle},          {"k", o->k},
                {"kid_subsets", o->kid_subsets}, {"kid_size", r->kid_size}, {"kid_seed", o->kid_seed},
                {"is_splits", o->is_splits}, {"reference_count", ref->count}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0] && !st; i++) st = h5u_attr_write_int(g, p, ints[i].name, ints[i].v);
    const hsize_t confusion_dims[2] = {(hsize_t)K, (hsize_t)K}, class_dims[1] = {(hsize_t)K};
    if (!st) st = h5u_write_ints(g, p, "confusion", 2, confusion_dims, r->confusion);
    if (!st) st = h5u_write_doubles(g, p, "class_accuracy", 1, class_dims, r->class_accuracy);
    if (!st) st = h5u_attr_write_string(g, p, "evaluator", e->path);
    if (!st) st = h5u_attr_write_string(g, p, "evaluator_sha256", e->sha256);
    if (!st) st = h5u_attr_write_string(g, p, "reference", ref->path);
    if (!st) st = h5u_attr_write_string(g, p, "reference_sha256", ref->sha256);
    if (!st) st = h5u_attr_write_string(g, p, "samples", in->images_name);
    if (!st) st = h5u_attr_write_string(g, p, "program", "noisesearch " NS_VERSION " eval");
    if (!st) st = h5u_attr_write_string(g, p, "created", when);
    if (!st)
        st = h5u_attr_write_string(g, p, "description",
                                   "metrics of the samples against the test-set reference in the evaluator's feature "
                                   "space: fid (Frechet distance), kid_mean/kid_std (unbiased MMD^2, cubic kernel, "
                                   "kid_subsets subsets of kid_size, on both sets' features divided by "
                                   "kid_feature_scale, the reference's RMS feature value), is_mean/is_std (Inception Score, is_splits "
                                   "shuffled splits), precision/recall (k-NN manifolds, k), accuracy (evaluator "
                                   "argmax = conditioning label); datasets confusion (sample counts, rows: "
                                   "conditioning label, columns: evaluator argmax) and class_accuracy (per "
                                   "conditioning label, NaN for a label without samples); docs/verifiers.md");
    H5E_BEGIN_TRY {
        if (g >= 0) H5Gclose(g);
        if (!st && H5Lexists(f, EVAL_GROUP, H5P_DEFAULT) > 0 && H5Ldelete(f, EVAL_GROUP, H5P_DEFAULT) < 0)
            st = ns_error_set(NS_ERR_IO, "%s: cannot replace the old /%s", p, EVAL_GROUP);
        if (!st && H5Lmove(f, tmp, f, EVAL_GROUP, H5P_DEFAULT, H5P_DEFAULT) < 0)
            st = ns_error_set(NS_ERR_IO, "%s: cannot move /%s into place", p, tmp);
        if (st && H5Lexists(f, tmp, H5P_DEFAULT) > 0) H5Ldelete(f, tmp, H5P_DEFAULT);
        if (H5Fclose(f) < 0 && !st) st = ns_error_set(NS_ERR_IO, "%s: closing after writing /%s failed (disk full?)", p,
                                                      EVAL_GROUP);
    }
    H5E_END_TRY;
    return st;
}

// Per file: each conditioning label's sample count and accuracy, and the
// class the evaluator most often mistakes it for.
static void print_per_class(const eval_input *in, const eval_result *r, int n, int K) {
    for (int i = 0; i < n; i++) {
        printf("\n%s: accuracy per conditioning class\n%5s  %7s  %8s  %s\n", in[i].path, "class", "n", "accuracy",
               "most often taken for");
        for (int c = 0; c < K; c++) {
            const int *row = r[i].confusion + (size_t)c * K;
            int total = 0, worst = -1;
            for (int j = 0; j < K; j++) {
                total += row[j];
                if (j != c && row[j] > 0 && (worst < 0 || row[j] > row[worst])) worst = j;
            }
            if (!total) continue;
            printf("%5d  %7d  %8.4f", c, total, r[i].class_accuracy[c]);
            if (worst >= 0) printf("  %d (%.4f)", worst, (double)row[worst] / total);
            printf("\n");
        }
    }
}

static void print_table(const eval_input *in, const eval_result *r, int n) {
    size_t w = 4;
    for (int i = 0; i < n; i++) w = strlen(in[i].path) > w ? strlen(in[i].path) : w;
    printf("%-*s  %7s  %-6s  %10s  %19s  %16s  %9s  %6s  %8s\n", (int)w, "file", "n", "oracle", "FID", "KID",
           "IS", "precision", "recall", "accuracy");
    for (int i = 0; i < n; i++)
        printf("%-*s  %7d  %-6s  %10.4f  %8.4f +- %-7.4f  %7.4f +- %-6.4f  %9.4f  %6.4f  %8.4f\n", (int)w, in[i].path,
               in[i].n, in[i].oracle ? "oracle" : "-", r[i].fid, r[i].kid_mean, r[i].kid_std, r[i].is_mean,
               r[i].is_std, r[i].precision, r[i].recall, r[i].accuracy);
}

int eval_files(const eval_options *o) {
    const char *cmd = o->cmd;
    if (gemm_setup(o->threads)) return fail(cmd, CLI_EXIT_USAGE);
    evaluator e;
    if (evaluator_open(&e, o->evaluator, o->batch, o->threads)) return fail(cmd, CLI_EXIT_USAGE);
    int code = CLI_EXIT_OK;
    reference ref;
    eval_input *in = ns_calloc((size_t)o->n_files, sizeof *in, "eval inputs");
    eval_result *res = ns_calloc((size_t)o->n_files, sizeof *res, "eval results");
    int probed = 0;
    // Everything is checked before anything is computed.
    ns_status st = reference_load(&ref, o->reference, &e, o->k);
    int min_n = o->is_splits > o->k + 1 ? o->is_splits : o->k + 1;
    if (min_n < 2) min_n = 2;
    for (; !st && probed < o->n_files; probed++) st = input_probe(&in[probed], o->files[probed], &e, o, min_n);
    if (st) {
        code = fail(cmd, CLI_EXIT_USAGE);
        goto done;
    }
    fprintf(stderr, "noisesearch %s: %s; evaluator %s (sha256 %.16s...), reference %s (%d test images)\n", cmd,
            gemm_describe(), e.path, e.sha256, ref.path, ref.count);
    ref.radii2 = ns_malloc((size_t)ref.count * sizeof(float), "reference radii");
    st = metrics_knn_radii(ref.radii2, ref.features, ref.count, ref.dim, o->k, 0);
    for (int i = 0; i < o->n_files && !st; i++) {
        float *images = NULL;
        st = input_read_images(&in[i], &images);
        if (!st) st = evaluate(&res[i], o, &e, &ref, &in[i], images);
        free(images);
    }
    if (st) {
        code = fail(cmd, CLI_EXIT_FAILURE);
        goto done;
    }
    if (o->print_table) print_table(in, res, o->n_files);
    if (o->per_class) print_per_class(in, res, o->n_files, e.K);
    for (int i = 0; i < o->n_files && !o->no_write && !st; i++) st = result_write(&in[i], &res[i], o, &e, &ref);
    if (st) code = fail(cmd, CLI_EXIT_FAILURE);
    else if (!o->no_write)
        fprintf(stderr, "noisesearch %s: wrote /%s into %d file(s)\n", cmd, EVAL_GROUP, o->n_files);
done:
    for (int i = 0; i < probed; i++) free(in[i].labels);
    for (int i = 0; i < o->n_files; i++) free(res[i].confusion), free(res[i].class_accuracy);
    free(in), free(res);
    reference_free(&ref);
    evaluator_close(&e);
    return code;
}

int cmd_eval(int argc, char **argv) {
    eval_options o;
    if (eval_parse(argc, argv, &o)) return CLI_EXIT_USAGE;
    return eval_files(&o);
}
