// noisesearch curves: scaling curves (quality against compute) of a set of
// search run logs, the shape of the paper's Figures 3-6 (Ma et al. 2025).
//
// One row per run log: its algorithm, verifier and oracle flag, its cost per
// sample (search, final and total NFEs, verifier cost in NFE equivalents and
// seconds, wall time; means over /searches) and its quality (the evaluator's
// metrics from the log's /evaluation group, written by `noisesearch eval`).
// Outputs in DIR: curves.csv, curves.h5 (group /curves, one dataset per
// column), curves.gp (a self-contained gnuplot script holding the data) and
// one PNG per metric against total NFEs per sample on a log axis: one line
// per algorithm x verifier, the `none` logs together as the "more denoising
// steps only" baseline, oracle lines marked in the legend.
//
// A log without a usable /evaluation is evaluated through eval's own code
// path (cli/eval.h) when --evaluator and --reference are given, and refused
// otherwise. Every log is read and checked before anything is written (the
// evaluation then writes /evaluation into the logs it measures, as eval
// does); each output is written under a temporary name and renamed into place.
// docs/curves.md describes the command.
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "common/h5util.h"
#include "common/sha256.h"
#include "coordinator/runlog.h"
#include "eval.h"

#define CURVES_FORMAT "noisesearch-curves"
#define CURVES_GROUP "curves"
#define BASELINE_TITLE "more denoising steps only"

// ---------------------------------------------------------------------------
// A row and its columns

typedef struct {
    char file[4096], algorithm[64], verifier[512], model[4096], model_sha256[SHA256_HEX_SIZE];
    int oracle, searches;
    double search_nfe, final_nfe, total_nfe, verifier_nfe, verifier_seconds, wall_seconds;  // per sample
    double denoiser_gflops, total_gflops;  // per NFE; per sample, denoiser and verifiers (NaN: log predates it)
    double fid, kid_mean, kid_std, is_mean, is_std, precision, recall, accuracy;            // from /evaluation
    char evaluator_sha256[SHA256_HEX_SIZE], reference_sha256[SHA256_HEX_SIZE];
    char stale[256];  // why /evaluation cannot be used ("" when it can)
} curves_row;

typedef enum { COL_TEXT, COL_INT, COL_REAL } column_kind;

// The table's columns, in CSV order: one list drives the CSV, the HDF5
// group and the attributes that describe it.
static const struct {
    const char *name;
    column_kind kind;
    size_t offset;
    const char *units, *description;
} columns[] = {
#define COL(name, kind, units, description) {#name, kind, offsetof(curves_row, name), units, description}
    COL(file, COL_TEXT, "", "the run log"),
    COL(algorithm, COL_TEXT, "", "search algorithm (root attribute algorithm); none: no search, the baseline"),
    COL(verifier, COL_TEXT, "", "verifier (root attribute verifier); unused by algorithm none"),
    COL(oracle, COL_INT, "1", "1 when the verifier reads the evaluator (root attribute oracle)"),
    COL(searches, COL_INT, "1", "complete searches in the log = samples evaluated"),
    COL(search_nfe, COL_REAL, "NFE", "denoiser NFEs of the search per sample (mean of /searches/search_nfe)"),
    COL(final_nfe, COL_REAL, "NFE", "denoiser NFEs of the final denoising per sample (mean of /searches/final_nfe)"),
    COL(total_nfe, COL_REAL, "NFE", "search_nfe + final_nfe: the plots' x axis"),
    COL(verifier_nfe, COL_REAL, "NFE equivalents",
        "verifier cost per sample, verifier FLOPs over one denoiser forward's (mean of /searches/verifier_nfe)"),
    COL(verifier_seconds, COL_REAL, "s", "seconds in verifiers per sample (mean of /searches/verifier_seconds)"),
    COL(wall_seconds, COL_REAL, "s",
        "wall-clock seconds per sample, first task to final sample (mean of /searches/wall_seconds)"),
    COL(model, COL_TEXT, "", "the denoiser weights (root attribute model_path)"),
    COL(denoiser_gflops, COL_REAL, "GFLOP",
        "one denoiser forward of one sample, i.e. one NFE (root attribute denoiser_flops / 1e9)"),
    COL(total_gflops, COL_REAL, "GFLOP",
        "compute per sample: (total_nfe + verifier_nfe) x denoiser_gflops; the x axis of --x flops"),
    COL(fid, COL_REAL, "1", "FID (/evaluation fid)"),
    COL(kid_mean, COL_REAL, "1", "KID, mean over subsets (/evaluation kid_mean)"),
    COL(kid_std, COL_REAL, "1", "KID, standard deviation over subsets (/evaluation kid_std)"),
    COL(is_mean, COL_REAL, "1", "Inception Score with the evaluator, mean over splits (/evaluation is_mean)"),
    COL(is_std, COL_REAL, "1", "Inception Score, standard deviation over splits (/evaluation is_std)"),
    COL(precision, COL_REAL, "1", "precision, k-NN manifolds (/evaluation precision)"),
    COL(recall, COL_REAL, "1", "recall, k-NN manifolds (/evaluation recall)"),
    COL(accuracy, COL_REAL, "1", "evaluator argmax = conditioning label (/evaluation accuracy)"),
#undef COL
};
#define N_COLUMNS (int)(sizeof columns / sizeof columns[0])

static const char *row_text(const curves_row *r, int c) { return (const char *)r + columns[c].offset; }
static int row_int(const curves_row *r, int c) { return *(const int *)((const char *)r + columns[c].offset); }
static double row_real(const curves_row *r, int c) { return *(const double *)((const char *)r + columns[c].offset); }

// The plotted metrics: output name, column, title, axis label.
static const struct {
    const char *name, *column, *title, *label;
} plots[] = {
    {"fid", "fid", "FID", "FID (lower is better)"},
    {"kid", "kid_mean", "KID", "KID, mean over subsets (lower is better)"},
    {"is", "is_mean", "Inception Score", "Inception Score with the evaluator (higher is better)"},
    {"precision", "precision", "Precision", "precision (higher is better)"},
    {"recall", "recall", "Recall", "recall (higher is better)"},
    {"accuracy", "accuracy", "Accuracy", "evaluator accuracy on the conditioning labels"},
};
#define N_PLOTS (int)(sizeof plots / sizeof plots[0])

// ---------------------------------------------------------------------------
// Options

typedef struct {
    const char *out, *evaluator, *reference, *gnuplot;
    const char **files;
    int n_files, batch, threads, no_plots, x_flops;
} curves_options;

static void curves_usage(FILE *out) {
    fprintf(out,
            "usage: noisesearch curves RUN.h5 [RUN2.h5 ...] --out DIR [--evaluator E.h5 --reference R.h5] [options]\n"
            "Scaling curves of search run logs: a table of cost (NFEs, verifier cost, wall time per sample) and\n"
            "the evaluator's metrics (each log's /evaluation, from noisesearch eval) as DIR/curves.csv and\n"
            "DIR/curves.h5, and one PNG per metric against total NFEs per sample (gnuplot; script DIR/curves.gp).\n\n"
            "  --out DIR           output directory (created if missing)                      (required)\n"
            "  --evaluator PATH    with --reference: evaluate the logs that lack an up-to-date /evaluation\n"
            "  --reference PATH      (as noisesearch eval with its default settings); without them such a\n"
            "                        log is an error\n"
            "  --batch B           evaluation: images per forward pass                        [256]\n"
            "  --threads T         evaluation: BLIS/OpenMP threads (0: BLIS_NUM_THREADS or all CPUs) [0]\n"
            "  --x nfe|flops       the plots' x axis: total NFEs, or total GFLOPs (denoiser and verifiers;\n"
            "                        compares denoisers of different sizes)                    [nfe]\n"
            "  --gnuplot PROGRAM   gnuplot to run                                             [gnuplot]\n"
            "  --no-plots          write the table only\n");
}

static int curves_parse(int argc, char **argv, curves_options *o) {
    *o = (curves_options){.batch = 256, .gnuplot = "gnuplot"};
    enum { O_OUT = 256, O_EVAL, O_REF, O_BATCH, O_THREADS, O_GNUPLOT, O_NO_PLOTS, O_X, O_HELP };
    static const struct option longopts[] = {
        {"out", 1, 0, O_OUT},         {"evaluator", 1, 0, O_EVAL},   {"reference", 1, 0, O_REF},
        {"batch", 1, 0, O_BATCH},     {"threads", 1, 0, O_THREADS},  {"gnuplot", 1, 0, O_GNUPLOT},
        {"no-plots", 0, 0, O_NO_PLOTS}, {"x", 1, 0, O_X},            {"help", 0, 0, O_HELP},
        {0, 0, 0, 0}};
    int opt, bad = 0;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case O_OUT: o->out = optarg; break;
        case O_EVAL: o->evaluator = optarg; break;
        case O_REF: o->reference = optarg; break;
        case O_BATCH: bad |= cli_parse_int("--batch", optarg, 1, 65536, &o->batch); break;
        case O_THREADS: bad |= cli_parse_int("--threads", optarg, 0, 1024, &o->threads); break;
        case O_GNUPLOT: o->gnuplot = optarg; break;
        case O_NO_PLOTS: o->no_plots = 1; break;
        case O_X:
            if (!strcmp(optarg, "nfe") || !strcmp(optarg, "flops")) o->x_flops = !strcmp(optarg, "flops");
            else fprintf(stderr, "noisesearch curves: --x '%s': expected nfe or flops\n", optarg), bad = -1;
            break;
        case O_HELP: curves_usage(stdout); exit(0);
        default: bad = -1;
        }
    }
    if (bad) return -1;
    o->files = (const char **)argv + optind;
    o->n_files = argc - optind;
    const char *why = !o->out || !*o->out               ? "--out is required"
                      : o->n_files == 0                 ? "no run logs given"
                      : !o->evaluator != !o->reference ? "--evaluator and --reference go together"
                      : strlen(o->out) > 3000           ? "--out: path too long"
                                                        : NULL;
    if (why) {
        fprintf(stderr, "noisesearch curves: %s (--help lists the options)\n", why);
        return -1;
    }
    return 0;
}

static int fail(int code) {
    fprintf(stderr, "noisesearch curves: %s\n", ns_error_message());
    return code;
}

// Whether program (a path, or a name looked up on PATH) can be executed.
static int program_found(const char *program) {
    if (strchr(program, '/')) return access(program, X_OK) == 0;
    const char *path = getenv("PATH");
    for (const char *p = path ? path : ""; *p;) {
        const char *end = strchr(p, ':');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char candidate[4096];
        snprintf(candidate, sizeof candidate, "%.*s/%s", (int)len, len ? p : ".", program);
        if (access(candidate, X_OK) == 0) return 1;
        p += len + (end != NULL);
    }
    return 0;
}

// ---------------------------------------------------------------------------
// Reading a run log

static int has_link(hid_t loc, const char *name) {
    htri_t e;
    H5E_BEGIN_TRY { e = H5Lexists(loc, name, H5P_DEFAULT); }
    H5E_END_TRY;
    return e > 0;
}

static int has_attr(hid_t obj, const char *name) {
    htri_t e;
    H5E_BEGIN_TRY { e = H5Aexists(obj, name); }
    H5E_END_TRY;
    return e > 0;
}

// *mean = mean of the first n entries of /searches/NAME (which needs >= n).
static ns_status searches_mean(double *mean, hid_t f, const char *path, const char *name, int n) {
    char full[64];
    snprintf(full, sizeof full, "searches/%s", name);
    hsize_t dims[1];
    double *v = NULL;
    ns_status st = h5u_read_doubles(f, path, full, 1, dims, &v);
    if (!st && dims[0] < (hsize_t)n)
        st = ns_error_set(NS_ERR_FORMAT, "%s: /%s has %llu rows, /searches/search %d complete searches", path, full,
                          (unsigned long long)dims[0], n);
    double sum = 0;
    for (int i = 0; !st && i < n; i++) sum += v[i];
    free(v);
    *mean = sum / n;
    return st;
}

// The metrics of /evaluation, or why they cannot be used (r->stale).
static ns_status evaluation_read(curves_row *r, hid_t f) {
    r->stale[0] = 0;
    if (!has_link(f, EVAL_GROUP)) {
        snprintf(r->stale, sizeof r->stale, "no /%s", EVAL_GROUP);
        return NS_OK;
    }
    char where[4200];
    snprintf(where, sizeof where, "%s: /%s", r->file, EVAL_GROUP);
    hid_t g;
    H5E_BEGIN_TRY { g = H5Gopen2(f, EVAL_GROUP, H5P_DEFAULT); }
    H5E_END_TRY;
    if (g < 0) return ns_error_set(NS_ERR_FORMAT, "%s is not a group", where);
    const struct {
        const char *name;
        double *v;
    } metrics[] = {{"fid", &r->fid},         {"kid_mean", &r->kid_mean},   {"kid_std", &r->kid_std},
                   {"is_mean", &r->is_mean}, {"is_std", &r->is_std},       {"precision", &r->precision},
                   {"recall", &r->recall},   {"accuracy", &r->accuracy}};
    ns_status st = NS_OK;
    for (size_t i = 0; i < sizeof metrics / sizeof metrics[0] && !st; i++)
        st = h5u_attr_read_double(g, where, metrics[i].name, metrics[i].v);
    int count = 0;
    if (!st) st = h5u_attr_read_int(g, where, "count", &count);
    if (!st) st = h5u_attr_read_string(g, where, "evaluator_sha256", r->evaluator_sha256, sizeof r->evaluator_sha256);
    if (!st) st = h5u_attr_read_string(g, where, "reference_sha256", r->reference_sha256, sizeof r->reference_sha256);
    // Made by an eval that computed KID on unscaled features: not comparable with current rows.
    if (!st && !has_attr(g, "kid_feature_scale"))
        snprintf(r->stale, sizeof r->stale, "/%s predates KID's feature scaling", EVAL_GROUP);
    if (!st && count != r->searches)
        snprintf(r->stale, sizeof r->stale, "/%s describes %d samples, the log holds %d complete searches", EVAL_GROUP,
                 count, r->searches);
    H5E_BEGIN_TRY { H5Gclose(g); }
    H5E_END_TRY;
    return st;
}

static ns_status row_read(curves_row *r, const char *path) {
    memset(r, 0, sizeof *r);
    if (strlen(path) >= sizeof r->file) return ns_error_set(NS_ERR_ARG, "path too long: %.64s...", path);
    snprintf(r->file, sizeof r->file, "%s", path);
    hid_t f;
    int live;
    ns_status st = eval_open_input(&f, path, &live);
    if (st) return st;
    char format[64] = "";
    int has_format = has_attr(f, "format");
    if (has_format) st = h5u_attr_read_string(f, path, "format", format, sizeof format);
    if (!st && strcmp(format, RUNLOG_FORMAT))
        st = ns_error_set(NS_ERR_FORMAT, "%s: not a run log of noisesearch search (%s%s%s, expected '%s')", path,
                          has_format ? "root attribute format '" : "no root attribute format", format,
                          has_format ? "'" : "", RUNLOG_FORMAT);
    if (!st) st = h5u_attr_read_string(f, path, "algorithm", r->algorithm, sizeof r->algorithm);
    if (!st) st = h5u_attr_read_string(f, path, "verifier", r->verifier, sizeof r->verifier);
    if (!st) st = h5u_attr_read_int(f, path, "oracle", &r->oracle);
    if (!st) st = h5u_attr_read_string(f, path, "model_path", r->model, sizeof r->model);
    if (!st) st = h5u_attr_read_string(f, path, "model_sha256", r->model_sha256, sizeof r->model_sha256);
    r->denoiser_gflops = NAN;  // logs written before the attribute existed
    if (!st && has_attr(f, "denoiser_flops")) {
        st = h5u_attr_read_double(f, path, "denoiser_flops", &r->denoiser_gflops);
        r->denoiser_gflops /= 1e9;
    }
    // A search is in the log exactly when its /searches/search row holds its
    // id: the complete searches are the rows before the first fill value -1.
    hsize_t dims[1] = {0};
    double *ids = NULL;
    if (!st) st = h5u_read_doubles(f, path, "searches/search", 1, dims, &ids);
    while (!st && (hsize_t)r->searches < dims[0] && ids[r->searches] >= 0 && r->searches < 2147483647)
        r->searches++;
    free(ids);
    if (!st && r->searches == 0) st = ns_error_set(NS_ERR_FORMAT, "%s: no complete search in the log", path);
    if (!st) st = searches_mean(&r->search_nfe, f, path, "search_nfe", r->searches);
    if (!st) st = searches_mean(&r->final_nfe, f, path, "final_nfe", r->searches);
    if (!st) st = searches_mean(&r->verifier_nfe, f, path, "verifier_nfe", r->searches);
    if (!st) st = searches_mean(&r->verifier_seconds, f, path, "verifier_seconds", r->searches);
    if (!st) st = searches_mean(&r->wall_seconds, f, path, "wall_seconds", r->searches);
    r->total_nfe = r->search_nfe + r->final_nfe;
    r->total_gflops = (r->total_nfe + r->verifier_nfe) * r->denoiser_gflops;
    if (!st) st = evaluation_read(r, f);
    h5u_close_file(f);
    return st;
}

// ---------------------------------------------------------------------------
// Evaluating what lacks an up-to-date /evaluation, then checking that every
// row was measured the same way.

// With --evaluator/--reference, a row measured with other networks is
// re-evaluated too, so every row ends up measured by the ones given.
static ns_status mark_other_networks(curves_row *rows, int n, const curves_options *o) {
    char e[SHA256_HEX_SIZE], r[SHA256_HEX_SIZE];
    ns_status st = sha256_hex_file(o->evaluator, e);
    if (!st) st = sha256_hex_file(o->reference, r);
    for (int i = 0; i < n && !st; i++)
        if (!rows[i].stale[0] && (strcmp(rows[i].evaluator_sha256, e) || strcmp(rows[i].reference_sha256, r)))
            snprintf(rows[i].stale, sizeof rows[i].stale, "/%s was made with another evaluator or reference",
                     EVAL_GROUP);
    return st;
}

static int evaluate_stale(curves_row *rows, int n, const curves_options *o) {
    const char **files = ns_calloc((size_t)n, sizeof *files, "curves: logs to evaluate");
    int m = 0, first = -1;
    for (int i = 0; i < n; i++)
        if (rows[i].stale[0]) files[m++] = rows[i].file, first = first < 0 ? i : first;
    int code = CLI_EXIT_OK;
    if (m) {
        fprintf(stderr, "noisesearch curves: evaluating %d of %d logs (%s: %s%s)\n", m, n, files[0],
                rows[first].stale, m > 1 ? "; ..." : "");
        eval_options e;
        eval_options_default(&e);
        e.cmd = "curves";
        e.evaluator = o->evaluator, e.reference = o->reference;
        e.files = files, e.n_files = m;
        e.batch = o->batch, e.threads = o->threads;
        e.print_table = 0;
        code = eval_files(&e);
        for (int i = 0; i < n && !code; i++) {
            char path[sizeof rows[i].file];  // row_read clears the row first
            memcpy(path, rows[i].file, sizeof path);
            if (rows[i].stale[0] && row_read(&rows[i], path)) code = fail(CLI_EXIT_FAILURE);
        }
    }
    free(files);
    return code;
}

static ns_status check_rows(const curves_row *rows, int n, int x_flops) {
    for (int i = 0; i < n; i++) {
        const curves_row *r = &rows[i];
        if (x_flops && isnan(r->denoiser_gflops))
            return ns_error_set(NS_ERR_ARG, "%s: no root attribute denoiser_flops (the log predates it), which --x "
                                "flops needs; plot it with --x nfe, or run the search again", r->file);
        if (r->stale[0])
            return ns_error_set(NS_ERR_ARG, "%s: %s; run noisesearch eval on it, or give curves --evaluator and "
                                "--reference", r->file, r->stale);
        if (strcmp(r->evaluator_sha256, rows[0].evaluator_sha256) || strcmp(r->reference_sha256, rows[0].reference_sha256))
            return ns_error_set(NS_ERR_ARG, "%s was evaluated with evaluator %.16s... and reference %.16s..., %s with "
                                "%.16s... and %.16s...; one plot needs one evaluator and reference (give curves "
                                "--evaluator and --reference to re-evaluate)", r->file, r->evaluator_sha256,
                                r->reference_sha256, rows[0].file, rows[0].evaluator_sha256, rows[0].reference_sha256);
    }
    return NS_OK;
}

// ---------------------------------------------------------------------------
// Lines, per denoiser (model_sha256): its `none` logs form its baseline
// whatever their verifier; every other algorithm x verifier x oracle is one
// line. Sorted by denoiser, by line (baseline first), then by total NFEs.

static int is_baseline(const curves_row *r) { return !strcmp(r->algorithm, "none"); }

static int line_cmp(const curves_row *a, const curves_row *b) {
    int m = strcmp(a->model_sha256, b->model_sha256);
    if (m) return m;
    if (is_baseline(a) || is_baseline(b)) return is_baseline(b) - is_baseline(a);
    int c = strcmp(a->algorithm, b->algorithm);
    if (!c) c = strcmp(a->verifier, b->verifier);
    return c ? c : a->oracle - b->oracle;
}

static int row_cmp(const void *pa, const void *pb) {
    const curves_row *a = pa, *b = pb;
    int c = line_cmp(a, b);
    if (c) return c;
    if (a->total_nfe != b->total_nfe) return a->total_nfe < b->total_nfe ? -1 : 1;
    return strcmp(a->file, b->file);
}

// With several denoisers, every title starts with the weights' file name.
static void line_title(char *buf, size_t size, const curves_row *r, int several_models) {
    char prefix[300] = "";
    if (several_models) {
        const char *slash = strrchr(r->model, '/');
        snprintf(prefix, sizeof prefix, "%.280s: ", slash ? slash + 1 : r->model);
    }
    if (is_baseline(r)) snprintf(buf, size, "%s" BASELINE_TITLE, prefix);
    else snprintf(buf, size, "%s%s, %s%s", prefix, r->algorithm, r->verifier, r->oracle ? " (oracle)" : "");
}

// The rows are sorted, so the denoisers come in runs of rows: 0 when all
// rows share one, otherwise the count.
static int model_index(const curves_row *rows, int i) {
    int k = 0;
    for (int j = 1; j <= i; j++) k += strcmp(rows[j].model_sha256, rows[j - 1].model_sha256) != 0;
    return k;
}

// A search line's style: its colour from a palette of 9 (Tableau 10 less its
// grey, which is too near the black baseline), its point type from its
// algorithm, dotted if oracle. Past 9 search lines the colours repeat on dash-dot
// lines: two lines look alike only 18 search lines apart and of one algorithm.
static const char *const line_colours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                           "#8c564b", "#e377c2", "#bcbd22", "#17becf"};
#define N_LINE_COLOURS (int)(sizeof line_colours / sizeof line_colours[0])

static int algorithm_point_type(const char *algorithm) {
    if (!strcmp(algorithm, "random")) return 7;      // filled circle
    if (!strcmp(algorithm, "zero_order")) return 9;  // filled triangle
    if (!strcmp(algorithm, "paths")) return 5;       // filled square
    return 13;                                       // filled diamond
}

static void line_style(FILE *out, const curves_row *rows, int i, int search_line) {
    const curves_row *r = &rows[i];
    if (is_baseline(r)) {  // black, dashed, one open point type per denoiser
        fprintf(out, " lc rgb 'black' dt 2 lw 2 pt %d ps 1.2", 6 + 2 * model_index(rows, i));
        return;
    }
    int dash = r->oracle ? 3 : (search_line / N_LINE_COLOURS) % 2 ? 4 : 1;
    fprintf(out, " lc rgb '%s' dt %d lw 2 pt %d ps 1.2", line_colours[search_line % N_LINE_COLOURS], dash,
            algorithm_point_type(r->algorithm));
}

// ---------------------------------------------------------------------------
// Outputs

// A double as the shortest of %.15g, %.16g, %.17g that reads back as the same
// value (%.17g always does), so the CSV is exact but stays readable.
static void format_real(char *buf, size_t size, double v) {
    if (isnan(v)) {
        snprintf(buf, size, "NaN");
        return;
    }
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(buf, size, "%.*g", digits, v);
        if (strtod(buf, NULL) == v) return;
    }
}

static void csv_text(FILE *out, const char *s) {
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, out);
        return;
    }
    fputc('"', out);  // RFC 4180: quoted, inner quotes doubled
    for (; *s; s++) {
        if (*s == '"') fputc('"', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

static ns_status mkdirs(const char *dir) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf) return ns_error_set(NS_ERR_ARG, "path too long: %s", dir);
    for (char *p = buf + 1;; p++) {
        char c = *p;
        if (c != '/' && c != 0) continue;
        *p = 0;
        struct stat sb;
        if (mkdir(buf, 0777) && errno != EEXIST)
            return ns_error_set(NS_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
        if (stat(buf, &sb) || !S_ISDIR(sb.st_mode))
            return ns_error_set(NS_ERR_IO, "%s: exists and is not a directory", buf);
        if (!c) return NS_OK;
        *p = c;
    }
}

// A text file written as PATH.tmp.PID by emit(out, ctx), renamed into place.
static ns_status text_file_write(const char *path, void (*emit)(FILE *out, const void *ctx), const void *ctx) {
    char tmp[4096 + 64];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *out = fopen(tmp, "w");
    if (!out) return ns_error_set(NS_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    emit(out, ctx);
    int bad = ferror(out);
    bad |= fclose(out) != 0;
    if (!bad && rename(tmp, path) == 0) return NS_OK;
    unlink(tmp);
    return ns_error_set(NS_ERR_IO, "%s: write failed (disk full?)", path);
}

typedef struct {
    const curves_row *rows;
    int n;
    const char *dir;
    int x_flops;  // x axis total_gflops, else total_nfe
} table;

static double row_x(const table *t, int i) { return t->x_flops ? t->rows[i].total_gflops : t->rows[i].total_nfe; }

static void csv_write(FILE *out, const void *ctx) {
    const table *t = ctx;
    for (int c = 0; c < N_COLUMNS; c++) fprintf(out, "%s%s", c ? "," : "", columns[c].name);
    fputc('\n', out);
    for (int i = 0; i < t->n; i++) {
        for (int c = 0; c < N_COLUMNS; c++) {
            char num[64];
            if (c) fputc(',', out);
            switch (columns[c].kind) {
            case COL_TEXT: csv_text(out, row_text(&t->rows[i], c)); break;
            case COL_INT: fprintf(out, "%d", row_int(&t->rows[i], c)); break;
            case COL_REAL:
                format_real(num, sizeof num, row_real(&t->rows[i], c));
                fputs(num, out);
                break;
            }
        }
        fputc('\n', out);
    }
}

static ns_status h5_text_column(hid_t g, const char *path, const char *name, const char **v, hsize_t n) {
    ns_status st = NS_OK;
    hid_t type = H5I_INVALID_HID, space = H5I_INVALID_HID, d = H5I_INVALID_HID;
    H5E_BEGIN_TRY {
        if ((type = H5Tcopy(H5T_C_S1)) < 0 || H5Tset_size(type, H5T_VARIABLE) < 0 ||
            H5Tset_cset(type, H5T_CSET_UTF8) < 0 || (space = H5Screate_simple(1, &n, NULL)) < 0 ||
            (d = H5Dcreate2(g, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
            H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0)
            st = ns_error_set(NS_ERR_IO, "%s: cannot write dataset %s (disk full?)", path, name);
        if (d >= 0) H5Dclose(d);
        if (space >= 0) H5Sclose(space);
        if (type >= 0) H5Tclose(type);
    }
    H5E_END_TRY;
    return st;
}

static ns_status h5_column(hid_t g, const char *path, const table *t, int c) {
    hsize_t n = (hsize_t)t->n;
    ns_status st;
    if (columns[c].kind == COL_TEXT) {
        const char **v = ns_malloc(n * sizeof *v, "curves text column");
        for (int i = 0; i < t->n; i++) v[i] = row_text(&t->rows[i], c);
        st = h5_text_column(g, path, columns[c].name, v, n);
        free(v);
    } else if (columns[c].kind == COL_INT) {
        int *v = ns_malloc(n * sizeof *v, "curves int column");
        for (int i = 0; i < t->n; i++) v[i] = row_int(&t->rows[i], c);
        st = h5u_write_ints(g, path, columns[c].name, 1, &n, v);
        free(v);
    } else {
        double *v = ns_malloc(n * sizeof *v, "curves real column");
        for (int i = 0; i < t->n; i++) v[i] = row_real(&t->rows[i], c);
        st = h5u_write_doubles(g, path, columns[c].name, 1, &n, v);
        free(v);
    }
    hid_t d;
    H5E_BEGIN_TRY { d = st ? H5I_INVALID_HID : H5Dopen2(g, columns[c].name, H5P_DEFAULT); }
    H5E_END_TRY;
    if (!st && d < 0) st = ns_error_set(NS_ERR_IO, "%s: cannot reopen dataset %s", path, columns[c].name);
    if (!st) st = h5u_attr_write_string(d, path, "units", columns[c].units);
    if (!st) st = h5u_attr_write_string(d, path, "description", columns[c].description);
    H5E_BEGIN_TRY {
        if (d >= 0) H5Dclose(d);
    }
    H5E_END_TRY;
    return st;
}

static ns_status h5_write(const char *path, const table *t) {
    h5u_atomic_file out;
    ns_status st = h5u_atomic_create(&out, path);
    if (st) return st;
    hid_t g;
    H5E_BEGIN_TRY { g = H5Gcreate2(out.file, CURVES_GROUP, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT); }
    H5E_END_TRY;
    if (g < 0) st = ns_error_set(NS_ERR_IO, "%s: cannot create group /%s", path, CURVES_GROUP);
    for (int c = 0; c < N_COLUMNS && !st; c++) st = h5_column(g, path, t, c);
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    if (!st) st = h5u_attr_write_string(g, path, "evaluator_sha256", t->rows[0].evaluator_sha256);
    if (!st) st = h5u_attr_write_string(g, path, "reference_sha256", t->rows[0].reference_sha256);
    if (!st)
        st = h5u_attr_write_string(g, path, "description",
                                   "one row per run log (the same rows as curves.csv), sorted by denoiser "
                                   "(model_sha256), by line (the none baseline first, then algorithm, verifier, "
                                   "oracle) and total_nfe; cost columns are "
                                   "means per sample over the log's complete searches, metrics its /evaluation; "
                                   "docs/curves.md");
    if (!st) st = h5u_attr_write_string(out.file, path, "format", CURVES_FORMAT);
    if (!st) st = h5u_attr_write_int(out.file, path, "version", 1);
    if (!st) st = h5u_attr_write_string(out.file, path, "program", "noisesearch " NS_VERSION " curves");
    if (!st) st = h5u_attr_write_string(out.file, path, "created", when);
    H5E_BEGIN_TRY {
        if (g >= 0) H5Gclose(g);
    }
    H5E_END_TRY;
    return h5u_atomic_finish(&out, st);
}

// A gnuplot single-quoted string (no escapes inside; a quote is doubled).
static void gp_string(FILE *out, const char *s) {
    fputc('\'', out);
    for (; *s; s++) {
        if (*s == '\'') fputc('\'', out);
        fputc(*s, out);
    }
    fputc('\'', out);
}

static int column_index(const char *name) {
    for (int c = 0; c < N_COLUMNS; c++)
        if (!strcmp(columns[c].name, name)) return c;
    NS_CHECK(!"plotted column exists");
    return -1;
}

// The script: every line's points as a datablock ($line0, ...; columns
// x (total_nfe or total_gflops) then the plotted metrics), then one PNG per metric. The output
// names get the gnuplot variable `suffix` (curves runs it with a temporary
// suffix and renames; a user's `gnuplot curves.gp` writes the plain names).
static void gp_write(FILE *out, const void *ctx) {
    const table *t = ctx;
    fprintf(out,
            "# Scaling curves of %d run log(s), written by noisesearch %s curves (numbers: curves.csv).\n"
            "# Self-contained: restyle and redraw with  cd %s && gnuplot curves.gp\n"
            "if (!exists('suffix')) suffix = ''\n"
            "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
            "    set terminal pngcairo noenhanced size 1280,720 font 'sans,11'\n"
            "} else {\n"
            "    set terminal png noenhanced size 1280,720\n"
            "}\n"
            "set logscale x 2\n"
            "set format x '%%g'\n"
            "set xlabel '%s'\n"
            "set grid\n"
            "set key outside right top box Left reverse\n"
            "set offsets graph 0.05, graph 0.05, graph 0.05, graph 0.05\n",
            t->n, NS_VERSION, t->dir,
            t->x_flops ? "total GFLOPs per sample (denoiser NFEs and verifier forwards)"
                       : "total NFEs per sample (search + final denoising)");
    int several_models = model_index(t->rows, t->n - 1) > 0;
    int lines = 0;
    for (int i = 0; i < t->n; lines++) {
        fprintf(out, "\n$line%d << EOD\n# %s", lines, t->x_flops ? "total_gflops" : "total_nfe");
        for (int p = 0; p < N_PLOTS; p++) fprintf(out, " %s", plots[p].column);
        fputc('\n', out);
        int j = i;
        for (; j < t->n && !line_cmp(&t->rows[i], &t->rows[j]); j++) {
            char num[64];
            format_real(num, sizeof num, row_x(t, j));
            fputs(num, out);
            for (int p = 0; p < N_PLOTS; p++) {
                format_real(num, sizeof num, row_real(&t->rows[j], column_index(plots[p].column)));
                fprintf(out, " %s", num);
            }
            fputc('\n', out);
        }
        fprintf(out, "EOD\n");
        i = j;
    }
    for (int p = 0; p < N_PLOTS; p++) {
        fprintf(out, "\nset output '%s.png'.suffix\nset ylabel ", plots[p].name);
        gp_string(out, plots[p].label);
        char title[128];
        snprintf(title, sizeof title, "%s vs compute", plots[p].title);
        fprintf(out, "\nset title ");
        gp_string(out, title);
        fprintf(out, "\nplot");
        for (int i = 0, l = 0, search_line = 0; i < t->n; l++) {
            char name[700];
            line_title(name, sizeof name, &t->rows[i], several_models);
            fprintf(out, "%s $line%d using 1:%d with linespoints title ", l ? ", \\\n    " : " ", l, p + 2);
            gp_string(out, name);
            line_style(out, t->rows, i, search_line);
            search_line += !is_baseline(&t->rows[i]);
            int j = i;
            while (j < t->n && !line_cmp(&t->rows[i], &t->rows[j])) j++;
            i = j;
        }
        fprintf(out, "\nset output\n");
    }
}

// Run gnuplot on DIR/curves.gp (in DIR) writing NAME.png.tmp.PID, then move
// the PNGs into place. gnuplot's output is kept and shown only on failure.
static ns_status plots_draw(const char *dir, const char *gnuplot) {
    char suffix[64], arg[96];
    snprintf(suffix, sizeof suffix, ".tmp.%ld", (long)getpid());
    snprintf(arg, sizeof arg, "suffix='%s'", suffix);
    int pipefd[2];
    if (pipe(pipefd)) return ns_error_set(NS_ERR_IO, "cannot run %s: pipe: %s", gnuplot, strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(pipefd[0]), close(pipefd[1]);
        return ns_error_set(NS_ERR_IO, "cannot run %s: fork: %s", gnuplot, strerror(errno));
    }
    if (pid == 0) {  // the child: stdin from /dev/null, stdout and stderr into the pipe
        int null = open("/dev/null", O_RDONLY);
        if (null >= 0) dup2(null, 0), close(null);
        dup2(pipefd[1], 1), dup2(pipefd[1], 2);
        close(pipefd[0]), close(pipefd[1]);
        if (chdir(dir) == 0) execlp(gnuplot, gnuplot, "-e", arg, "curves.gp", (char *)NULL);
        fprintf(stderr, "cannot run %s: %s\n", gnuplot, strerror(errno));
        _exit(127);
    }
    close(pipefd[1]);
    // Keep the tail of gnuplot's output: the error it stopped on is its last line.
    char log[4096] = "", chunk[1024];
    size_t len = 0;
    ssize_t got;
    while ((got = read(pipefd[0], chunk, sizeof chunk)) != 0) {
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) break;
        size_t drop = len + (size_t)got > sizeof log - 1 ? len + (size_t)got - (sizeof log - 1) : 0;
        memmove(log, log + drop, len - drop);  // drop <= len: a chunk is smaller than the log
        len -= drop;
        memcpy(log + len, chunk, (size_t)got);
        len += (size_t)got;
        log[len] = 0;
    }
    close(pipefd[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    ns_status st = NS_OK;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        while (len && (log[len - 1] == '\n' || log[len - 1] == ' ')) log[--len] = 0;
        char *last = strrchr(log, '\n');
        st = ns_error_set(NS_ERR_IO, "%s failed on %s/curves.gp (%s %d): %s", gnuplot, dir,
                          WIFEXITED(status) ? "exit status" : "signal",
                          WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), last ? last + 1 : len ? log : "no output");
    }
    for (int p = 0; p < N_PLOTS; p++) {
        char final[4096], tmp[4096 + 64];
        snprintf(final, sizeof final, "%s/%s.png", dir, plots[p].name);
        snprintf(tmp, sizeof tmp, "%s%s", final, suffix);
        if (!st && rename(tmp, final))
            st = ns_error_set(NS_ERR_IO, "%s: gnuplot wrote no %s (%s)", final, tmp, strerror(errno));
        unlink(tmp);
    }
    return st;
}

// DIR/curves.csv, curves.h5 and (unless --no-plots) curves.gp and the PNGs.
static ns_status outputs_write(const table *t, const curves_options *o) {
    char csv[4096], h5[4096], gp[4096];
    snprintf(csv, sizeof csv, "%s/curves.csv", o->out);
    snprintf(h5, sizeof h5, "%s/curves.h5", o->out);
    snprintf(gp, sizeof gp, "%s/curves.gp", o->out);
    ns_status st = mkdirs(o->out);
    if (!st) st = text_file_write(csv, csv_write, t);
    if (!st) st = h5_write(h5, t);
    if (!st && !o->no_plots) st = text_file_write(gp, gp_write, t);
    if (!st && !o->no_plots) st = plots_draw(o->out, o->gnuplot);
    return st;
}

static void print_table(const curves_row *rows, int n) {
    int wa = 9, wv = 8;
    for (int i = 0; i < n; i++) {
        int la = (int)strlen(rows[i].algorithm), lv = is_baseline(&rows[i]) ? 1 : (int)strlen(rows[i].verifier);
        wa = la > wa ? la : wa, wv = lv > wv ? lv : wv;
    }
    printf("%-*s  %-*s  %-6s  %7s  %10s  %12s  %10s  %19s  %16s  %9s  %6s  %8s\n", wa, "algorithm", wv, "verifier",
           "oracle", "samples", "NFE/sample", "GFLOP/sample", "FID", "KID", "IS", "precision", "recall", "accuracy");
    for (int i = 0; i < n; i++) {
        const curves_row *r = &rows[i];
        printf("%-*s  %-*s  %-6s  %7d  %10.1f  %12.3f  %10.4f  %8.4f +- %-7.4f  %7.4f +- %-6.4f  %9.4f  %6.4f  %8.4f\n",
               wa, r->algorithm, wv, is_baseline(r) ? "-" : r->verifier, r->oracle ? "oracle" : "-", r->searches,
               r->total_nfe, r->total_gflops, r->fid, r->kid_mean, r->kid_std, r->is_mean, r->is_std, r->precision, r->recall,
               r->accuracy);
    }
}

int cmd_curves(int argc, char **argv) {
    curves_options o;
    if (curves_parse(argc, argv, &o)) return CLI_EXIT_USAGE;
    if (!o.no_plots && !program_found(o.gnuplot)) {
        fprintf(stderr, "noisesearch curves: %s not found%s; install gnuplot (Debian: apt-get install gnuplot-nox), "
                "give --gnuplot PROGRAM, or pass --no-plots for the table only\n", o.gnuplot,
                strchr(o.gnuplot, '/') ? "" : " on PATH");
        return CLI_EXIT_USAGE;
    }
    curves_row *rows = ns_calloc((size_t)o.n_files, sizeof *rows, "curves rows");
    int code = CLI_EXIT_OK;
    ns_status st = NS_OK;
    for (int i = 0; i < o.n_files && !st; i++) st = row_read(&rows[i], o.files[i]);
    if (!st && o.evaluator) st = mark_other_networks(rows, o.n_files, &o);
    if (st) {
        code = fail(CLI_EXIT_USAGE);
        goto done;
    }
    if (o.evaluator && (code = evaluate_stale(rows, o.n_files, &o))) goto done;
    if ((st = check_rows(rows, o.n_files, o.x_flops))) {
        code = fail(CLI_EXIT_USAGE);
        goto done;
    }
    qsort(rows, (size_t)o.n_files, sizeof *rows, row_cmp);
    if ((st = outputs_write(&(table){rows, o.n_files, o.out, o.x_flops}, &o))) {
        code = fail(CLI_EXIT_FAILURE);
        goto done;
    }
    print_table(rows, o.n_files);
    fprintf(stderr, "noisesearch curves: wrote %s/curves.csv, curves.h5%s (%d runs)\n", o.out,
            o.no_plots ? "" : ", curves.gp and 6 plots (fid, kid, is, precision, recall, accuracy .png)", o.n_files);
done:
    free(rows);
    return code;
}
