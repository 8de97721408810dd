// Run configs (config.h). One table of keys (name, type, default, range,
// help) drives defaults, parsing, overrides, the resolved YAML and the
// reference, so no key is listed twice. A file is parsed with libyaml's
// document API, which keeps every node's position for the error messages.
// No MPI.
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "../common/h5util.h"

// Value types. T_KIND (a verifier kind, no 'ensemble') is an ensemble term's
// name; no key has it.
typedef enum {
    T_INT, T_SEED, T_FLOAT, T_BOOL, T_PATH, T_SAMPLER, T_ALGORITHM, T_VERIFIER, T_KIND, T_CLASSES, T_ENSEMBLE
} key_type;
enum { OPEN_LO = 1, OPEN_HI = 2 };  // exclusive bounds of a T_FLOAT range
#define KEYS_MAX 64
#define ENSEMBLE_NAME VERIFIER_KINDS  // verifier.name 'ensemble' in the loader
#define WEIGHT_MAX 1000.0             // ensemble weights are relative; (0, WEIGHT_MAX]

// Where a key got its value: a line and column (1-based) of the file, an
// override, or neither (the default).
typedef struct {
    int line, column;
    const char *override;
} config_origin;

// A config being read. verifier.name and verifier.ensemble are kept as given
// until every override is in, then resolved into c.terms.
typedef struct {
    search_config c;    // first, so a key's offset into c is its offset here
    int verifier_name;  // a verifier_kind, or ENSEMBLE_NAME
    config_verifier_term list[CONFIG_MAX_ENSEMBLE];
    int n_list;
    config_origin origin[KEYS_MAX];
    const char *file;      // the config file (for messages)
    const char *override;  // the override being applied, or NULL
} config_loader;

typedef struct {
    const char *name;  // dotted: section.sub.key
    key_type type;
    size_t offset;     // into config_loader
    const char *def;   // default, as YAML
    double lo, hi;     // range of T_INT, T_FLOAT, T_CLASSES (the class indices)
    int open;          // OPEN_LO | OPEN_HI
    const char *help;
} config_key;

#define C(f) offsetof(config_loader, c.f)
#define NOR 0, 0, 0  // no range
#define UNIT 0, 1, OPEN_LO | OPEN_HI
static const config_key keys[] = {
    {"run.seed", T_SEED, C(seed), "0", NOR, "Noise seed of every candidate (Philox streams of this seed)"},
    {"run.classes", T_CLASSES, C(classes), "all", 0, 9, 0, "The classes to sample"},
    {"run.samples_per_class", T_INT, C(samples_per_class), "2", 1, 1000000, 0, "Samples (one search each) per class"},
    {"run.out", T_PATH, C(out), "runs/default.h5", NOR, "The HDF5 run log"},
    {"run.batch", T_INT, C(batch), "16", 1, 4096, 0, "Candidates per worker forward pass"},
    {"run.threads", T_INT, C(threads), "0", 0, 4096, 0, "BLIS threads per rank (0: the node's CPUs / its ranks)"},
    {"run.progress_every", T_FLOAT, C(progress_every), "10", 0.1, 86400, 0, "Seconds between plain progress lines"},
    {"run.flush_every", T_FLOAT, C(flush_every), "5", 0.1, 3600, 0, "Seconds between run-log flushes"},
    {"model.weights", T_PATH, C(model), "weights/default.h5", NOR, "Denoiser weights (HDF5, docs/model.md)"},
    {"sampler.kind", T_SAMPLER, C(sampler), "heun", NOR,
     "ODE (euler; heun: 2 NFEs per step) or SDE (euler_maruyama) sampler"},
    {"sampler.search_nfe", T_INT, C(search_nfe), "50", 1, 100000, 0,
     "NFEs per search candidate over t 0 -> 1 (a multiple of the NFEs per step)"},
    {"sampler.final_nfe", T_INT, C(final_nfe), "250", 1, 100000, 0, "NFEs of the final denoising of the chosen noise"},
    {"sampler.cfg_scale", T_FLOAT, C(cfg_scale), "1.0", 0, 100, 0,
     "Classifier-free guidance scale (1: none; otherwise each step costs twice the NFEs)"},
    {"sampler.cfg_channels", T_INT, C(cfg_channels), "0", 0, 64, 0, "Guide only the first k channels (0: all)"},
    {"search.algorithm", T_ALGORITHM, C(algorithm), "random", NOR,
     "Search algorithm (search-reference §3); none: one noise per sample, no verifier"},
    {"search.random.candidates", T_INT, C(random_candidates), "8", 1, 1000000, 0,
     "N noises per sample; the best is denoised again with final_nfe"},
    {"search.zero_order.neighbours", T_INT, C(zo_neighbours), "4", 1, 4096, 0,
     "N neighbours of the pivot per iteration"},
    {"search.zero_order.iterations", T_INT, C(zo_iterations), "4", 1, 100000, 0, "Iterations (pivot updates)"},
    {"search.zero_order.tau", T_FLOAT, C(zo_tau), "0.95", UNIT, "Cosine similarity of each neighbour to the pivot"},
    {"search.zero_order.restart_on_stall", T_BOOL, C(zo_restart_on_stall), "true", NOR,
     "Draw a fresh pivot when no neighbour beats it"},
    {"search.paths.initial", T_INT, C(paths_initial), "4", 1, 4096, 0, "N paths kept after each round"},
    {"search.paths.width", T_INT, C(paths_width), "2", 1, 4096, 0, "M branches of each kept path per round"},
    {"search.paths.start_t", T_FLOAT, C(paths_start_t), "0.5", UNIT, "The t where branching starts"},
    {"search.paths.delta_f", T_FLOAT, C(paths_delta_f), "0.1", UNIT,
     "Each round re-noises back by this much t (< start_t)"},
    {"search.paths.delta_b", T_FLOAT, C(paths_delta_b), "0.2", UNIT,
     "Then integrates forward by this much t (> delta_f)"},
    {"search.paths.nfe_per_step", T_INT, C(paths_nfe_per_step), "10", 1, 100000, 0,
     "L: NFEs of each forward (delta_b) run"},
    {"verifier.name", T_VERIFIER, offsetof(config_loader, verifier_name), "class_logit", NOR,
     "The score a search maximises (ensemble: the weighted mean rank over verifier.ensemble)"},
    {"verifier.ensemble", T_ENSEMBLE, offsetof(config_loader, list), "[]", NOR,
     "The terms when verifier.name is ensemble: 2 to 8 distinct verifiers, fid_oracle excluded"},
    {"verifier.classifier", T_PATH, C(classifier), "weights/verifier.h5", NOR,
     "The verifier classifier (role 'verifier') of class_logit, class_logprob, self_similarity"},
    {"verifier.evaluator", T_PATH, C(evaluator), "weights/evaluator.h5", NOR,
     "The evaluator (role 'evaluator'), read only by the oracle verifiers is_oracle, fid_oracle"},
    {"verifier.reference", T_PATH, C(reference), "weights/fmnist-test-reference.h5", NOR,
     "The test-set statistics fid_oracle compares with"},
    {"verifier.self_similarity_t", T_FLOAT, C(self_similarity_t), "0.6", UNIT,
     "The t of the early x1_hat that self_similarity compares with the final sample"},
    {"log.trajectories", T_BOOL, C(log_trajectories), "false", NOR, "Log every k-th state of every candidate"},
    {"log.trajectory_stride", T_INT, C(trajectory_stride), "10", 1, 100000, 0, "k of log.trajectories"},
    {"log.x1_hat", T_BOOL, C(log_x1_hat), "false", NOR, "Log the scored x1_hat of each candidate"},
    {"log.noise", T_BOOL, C(log_noise), "true", NOR, "Log each candidate's initial noise"},
    {"log.png", T_BOOL, C(log_png), "true", NOR, "Write a PNG grid of the chosen samples beside the log"},
};
#define N_KEYS ((int)(sizeof keys / sizeof keys[0]))
_Static_assert(sizeof keys / sizeof keys[0] <= KEYS_MAX, "raise KEYS_MAX");
_Static_assert(sizeof(sampler_kind) == sizeof(int) && sizeof(search_algorithm) == sizeof(int), "enums stored as int");

const char *search_algorithm_name(search_algorithm a) {
    static const char *const names[] = {"none", "random", "zero_order", "paths"};
    return (unsigned)a < sizeof names / sizeof names[0] ? names[a] : NULL;
}

int search_algorithm_from_name(const char *name, search_algorithm *out) {
    for (int a = 0; search_algorithm_name(a); a++)
        if (!strcmp(name, search_algorithm_name(a))) return *out = a, 0;
    return -1;
}

// The i-th value name of an enum type, NULL past the last.
static const char *enum_name(key_type t, int i) {
    switch (t) {
    case T_SAMPLER: return sampler_kind_name(i);
    case T_ALGORITHM: return search_algorithm_name(i);
    case T_KIND: return i >= 0 && i < VERIFIER_KINDS ? verifier_kind_name(i) : NULL;
    case T_VERIFIER: return i == ENSEMBLE_NAME ? "ensemble" : enum_name(T_KIND, i);
    default: return NULL;
    }
}

static int key_find(const char *name) {
    for (int i = 0; i < N_KEYS; i++)
        if (!strcmp(keys[i].name, name)) return i;
    return -1;
}

static int is_section(const char *name) {
    size_t n = strlen(name);
    for (int i = 0; i < N_KEYS; i++)
        if (!strncmp(keys[i].name, name, n) && keys[i].name[n] == '.') return 1;
    return 0;
}

static int edit_distance(const char *a, const char *b, size_t nb) {
    int row[128];
    NS_CHECK(nb < sizeof row / sizeof row[0]);
    for (size_t j = 0; j <= nb; j++) row[j] = (int)j;
    for (size_t i = 1; a[i - 1]; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= nb; j++) {
            int up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best, diag = up;
        }
    }
    return row[nb];
}

// The valid key (or, with sections, section) nearest to name by edit distance.
static void closest(const char *name, int sections, char *out, size_t size) {
    int best = INT_MAX;
    for (int i = 0; i < N_KEYS; i++)
        for (const char *k = keys[i].name, *d = k;; d++) {
            if (*d && (*d != '.' || !sections)) continue;
            int e = edit_distance(name, k, (size_t)(d - k));
            if (e < best) best = e, snprintf(out, size, "%.*s", (int)(d - k), k);
            if (!*d) break;
        }
}

// ---------------------------------------------------------------------------
// Errors: "FILE:LINE:COLUMN: message", "override 'KEY=VALUE': message", or
// "FILE: message" for a key left at its default.

__attribute__((format(printf, 3, 4))) static ns_status fail(const config_loader *L, config_origin o,
                                                            const char *fmt, ...) {
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!L) return ns_error_set(NS_ERR_ARG, "%s", msg);
    if (o.override) return ns_error_set(NS_ERR_ARG, "override '%s': %s", o.override, msg);
    if (o.line) return ns_error_set(NS_ERR_ARG, "%s:%d:%d: %s", L->file, o.line, o.column, msg);
    return ns_error_set(NS_ERR_ARG, "%s: %s", L->file, msg);
}

static config_origin mark_origin(const config_loader *L, yaml_mark_t m) {
    return L->override ? (config_origin){0, 0, L->override} : (config_origin){(int)m.line + 1, (int)m.column + 1, NULL};
}

// Where key got its value (L may be NULL: nowhere, the message stands alone).
static config_origin key_origin(const config_loader *L, const char *key) {
    int i = key_find(key);
    NS_CHECK(i >= 0);
    return L ? L->origin[i] : (config_origin){0};
}

#define node_fail(L, node, ...) fail(L, mark_origin(L, (node)->start_mark), __VA_ARGS__)
#define key_fail(L, key, ...) fail(L, key_origin(L, key), __VA_ARGS__)

static ns_status yaml_fail(const config_loader *L, const yaml_parser_t *p) {
    if (p->error == YAML_MEMORY_ERROR) return ns_error_set(NS_ERR_NOMEM, "out of memory parsing YAML");
    if (p->error == YAML_READER_ERROR && !L->override)
        return ns_error_set(NS_ERR_ARG, "%s: %s (byte %zu)", L->file, p->problem, p->problem_offset);
    config_origin o = mark_origin(L, p->problem_mark);
    if (!p->context) return fail(L, o, "YAML syntax error: %s", p->problem);
    if (L->override) return fail(L, o, "YAML syntax error: %s (%s)", p->problem, p->context);
    return fail(L, o, "YAML syntax error: %s (%s at line %zu, column %zu)", p->problem, p->context,
                p->context_mark.line + 1, p->context_mark.column + 1);
}

// ---------------------------------------------------------------------------
// Values: each parser reads one node into its key's place.

static const char *scalar(const yaml_node_t *n) { return (const char *)n->data.scalar.value; }

// What a node is, for "got ...": 'text', the string 'text' (quoted), nothing,
// a mapping, a list. One call per message (a static buffer).
static const char *describe(const yaml_node_t *n) {
    static char buf[96];
    if (n->type == YAML_MAPPING_NODE) return "a mapping";
    if (n->type == YAML_SEQUENCE_NODE) return "a list";
    if (!*scalar(n)) return "nothing";
    int plain = n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    snprintf(buf, sizeof buf, "%s'%.64s%s'", plain ? "" : "the string ", scalar(n),
             n->data.scalar.length > 64 ? "..." : "");
    return buf;
}

static int is_null(const yaml_node_t *n) {
    return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           (!*scalar(n) || !strcmp(scalar(n), "~") || !strcmp(scalar(n), "null"));
}

// A plain scalar: numbers and booleans are never quoted strings.
static int plain(const yaml_node_t *n) {
    return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && *scalar(n);
}

// "[lo, hi]", "(lo, hi)", ...
static void range_text(char *buf, size_t size, double lo, double hi, int open) {
    snprintf(buf, size, "%c%.15g, %.15g%c", open & OPEN_LO ? '(' : '[', lo, hi, open & OPEN_HI ? ')' : ']');
}

// An integer (strtoll) or a finite number (strtod) in [lo, hi] (open: OPEN_LO/OPEN_HI excluded).
static ns_status number_get(const config_loader *L, const char *key, const yaml_node_t *n, int integer, double lo,
                            double hi, int open, double *out) {
    const char *s = plain(n) ? scalar(n) : "";
    char *end = NULL;
    errno = 0;
    double v = integer ? (double)strtoll(s, &end, 10) : strtod(s, &end);
    if (!*s || isspace((unsigned char)*s) || *end || (!integer && (errno == ERANGE || !isfinite(v))))
        return node_fail(L, n, "%s: expected %s, got %s", key, integer ? "an integer" : "a number", describe(n));
    if (v < lo || v > hi || ((open & OPEN_LO) && v == lo) || ((open & OPEN_HI) && v == hi) || errno == ERANGE) {
        char range[80];
        range_text(range, sizeof range, lo, hi, open);
        return node_fail(L, n, "%s: must be in %s, got %s", key, range, s);
    }
    *out = v;
    return NS_OK;
}

static ns_status enum_get(const config_loader *L, const char *key, key_type t, const yaml_node_t *n, int *out) {
    char names[256] = "";
    for (int i = 0; enum_name(t, i); i++) {
        if (n->type == YAML_SCALAR_NODE && !strcmp(scalar(n), enum_name(t, i))) return *out = i, NS_OK;
        snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "", enum_name(t, i));
    }
    return node_fail(L, n, "%s: expected one of %s, got %s", key, names, describe(n));
}

// 'all' or a list of distinct class indices in [k->lo, k->hi].
static ns_status classes_get(config_loader *L, const config_key *k, yaml_document_t *doc, const yaml_node_t *n) {
    search_config *c = &L->c;
    NS_CHECK(k->hi < CONFIG_MAX_CLASSES);
    memset(c->classes, 0, sizeof c->classes);
    c->num_classes = 0;
    if (plain(n) && !strcmp(scalar(n), "all")) {
        for (int i = (int)k->lo; i <= (int)k->hi; i++) c->classes[c->num_classes++] = i;
        return NS_OK;
    }
    if (n->type != YAML_SEQUENCE_NODE)
        return node_fail(L, n, "%s: expected 'all' or a list of class indices, got %s", k->name, describe(n));
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
        const yaml_node_t *e = yaml_document_get_node(doc, *it);
        char name[64];
        snprintf(name, sizeof name, "%s[%d]", k->name, c->num_classes);
        double v;
        ns_status st = number_get(L, name, e, 1, k->lo, k->hi, 0, &v);
        if (st) return st;
        for (int j = 0; j < c->num_classes; j++)
            if (c->classes[j] == (int)v) return node_fail(L, e, "%s: class %d is listed twice", name, (int)v);
        c->classes[c->num_classes++] = (int)v;
    }
    if (!c->num_classes) return node_fail(L, n, "%s: the list is empty (give class indices or 'all')", k->name);
    return NS_OK;
}

// The key of a mapping pair, refusing a key seen earlier in the same mapping.
static ns_status pair_key(const config_loader *L, yaml_document_t *doc, const yaml_node_t *map,
                          const yaml_node_pair_t *p, const char *prefix, char *full, size_t size) {
    const yaml_node_t *k = yaml_document_get_node(doc, p->key);
    if (k->type != YAML_SCALAR_NODE) return node_fail(L, k, "expected a key name, got %s", describe(k));
    snprintf(full, size, "%s%s%s", prefix, *prefix ? "." : "", scalar(k));
    for (const yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
        const yaml_node_t *o = yaml_document_get_node(doc, q->key);
        if (o->type == YAML_SCALAR_NODE && !strcmp(scalar(o), scalar(k)))
            return node_fail(L, k, "duplicate key '%s'", full);
    }
    return NS_OK;
}

// A list of {name: KIND, weight: W} maps or plain KIND names (weight 1).
static ns_status ensemble_get(config_loader *L, const config_key *k, yaml_document_t *doc, const yaml_node_t *n) {
    memset(L->list, 0, sizeof L->list);
    L->n_list = 0;
    if (n->type != YAML_SEQUENCE_NODE)
        return node_fail(L, n, "%s: expected a list of verifiers, got %s", k->name, describe(n));
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
        const yaml_node_t *e = yaml_document_get_node(doc, *it), *name = e;
        char where[64], full[128], name_key[80];
        snprintf(where, sizeof where, "%s[%d]", k->name, L->n_list);
        snprintf(name_key, sizeof name_key, "%s.name", where);
        if (L->n_list == CONFIG_MAX_ENSEMBLE)
            return node_fail(L, e, "%s: at most %d verifiers", k->name, CONFIG_MAX_ENSEMBLE);
        double weight = 1;
        ns_status st = NS_OK;
        if (e->type == YAML_MAPPING_NODE) {
            name = NULL;
            for (const yaml_node_pair_t *p = e->data.mapping.pairs.start; !st && p < e->data.mapping.pairs.top; p++) {
                const yaml_node_t *kn = yaml_document_get_node(doc, p->key), *v = yaml_document_get_node(doc, p->value);
                if ((st = pair_key(L, doc, e, p, where, full, sizeof full))) break;
                const char *field = scalar(kn);
                if (!strcmp(field, "name")) name = v;
                else if (!strcmp(field, "weight")) st = number_get(L, full, v, 0, 0, WEIGHT_MAX, OPEN_LO, &weight);
                else st = node_fail(L, kn, "unknown key '%s'; expected name or weight", full);
            }
            if (!st && !name) st = node_fail(L, e, "%s: missing name", where);
        }
        int kind = 0;
        if (!st) st = enum_get(L, e == name ? where : name_key, T_KIND, name, &kind);
        if (st) return st;
        L->list[L->n_list].kind = kind;
        L->list[L->n_list++].weight = weight;
    }
    return NS_OK;
}

static ns_status key_set(config_loader *L, const config_key *k, yaml_document_t *doc, const yaml_node_t *n) {
    void *p = (char *)L + k->offset;
    double v;
    ns_status st;
    switch (k->type) {
    case T_INT:
        st = number_get(L, k->name, n, 1, k->lo, k->hi, 0, &v);
        if (!st) *(int *)p = (int)v;
        return st;
    case T_FLOAT: return number_get(L, k->name, n, 0, k->lo, k->hi, k->open, (double *)p);
    case T_SEED: {
        const char *s = plain(n) ? scalar(n) : "";
        char *end = NULL;
        errno = 0;
        unsigned long long u = strtoull(s, &end, 10);
        if (!isdigit((unsigned char)*s) || *end)
            return node_fail(L, n, "%s: expected an integer, got %s", k->name, describe(n));
        if (errno == ERANGE) return node_fail(L, n, "%s: must be in [0, %" PRIu64 "], got %s", k->name, UINT64_MAX, s);
        *(uint64_t *)p = u;
        return NS_OK;
    }
    case T_BOOL:
        if (plain(n) && (!strcmp(scalar(n), "true") || !strcmp(scalar(n), "false")))
            return *(int *)p = !strcmp(scalar(n), "true"), NS_OK;
        return node_fail(L, n, "%s: expected true or false, got %s", k->name, describe(n));
    case T_PATH:
        if (n->type != YAML_SCALAR_NODE || !*scalar(n))
            return node_fail(L, n, "%s: expected a path, got %s", k->name, describe(n));
        if (n->data.scalar.length >= CONFIG_PATH_MAX || strlen(scalar(n)) != n->data.scalar.length)
            return node_fail(L, n, "%s: a path of at most %d bytes without NUL expected", k->name, CONFIG_PATH_MAX - 1);
        strncpy(p, scalar(n), CONFIG_PATH_MAX);  // zero-filled, so equal configs compare equal bytewise
        return NS_OK;
    case T_SAMPLER:
    case T_ALGORITHM:
    case T_VERIFIER: return enum_get(L, k->name, k->type, n, p);
    case T_CLASSES: return classes_get(L, k, doc, n);
    case T_ENSEMBLE: return ensemble_get(L, k, doc, n);
    case T_KIND: break;
    }
    ns_die(__FILE__, __LINE__, "config key %s: bad type", k->name);
}

// ---------------------------------------------------------------------------
// Reading: a file (nested mappings of the dotted keys), then overrides.

static ns_status walk(config_loader *L, yaml_document_t *doc, const yaml_node_t *map, const char *prefix) {
    for (const yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        char full[256], near[128];
        ns_status st = pair_key(L, doc, map, p, prefix, full, sizeof full);
        if (st) return st;
        const yaml_node_t *k = yaml_document_get_node(doc, p->key), *v = yaml_document_get_node(doc, p->value);
        if (is_section(full)) {
            if (v->type == YAML_MAPPING_NODE) st = walk(L, doc, v, full);
            else if (!is_null(v))  // an empty section is no error
                st = node_fail(L, v, "%s is a section: expected a mapping of its keys, got %s", full, describe(v));
            if (st) return st;
            continue;
        }
        int i = key_find(full);
        if (i < 0) {
            closest(full, v->type == YAML_MAPPING_NODE, near, sizeof near);
            return node_fail(L, k, "unknown key '%s'; did you mean '%s'?", full, near);
        }
        if (L->origin[i].line) return node_fail(L, k, "duplicate key '%s'", full);  // a dotted key given twice
        if ((st = key_set(L, &keys[i], doc, v))) return st;
        L->origin[i] = mark_origin(L, v->start_mark);
    }
    return NS_OK;
}

// Set key i from YAML text (a default or an override's value).
static ns_status key_set_text(config_loader *L, int i, const char *text) {
    yaml_parser_t p;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&p)) return ns_error_set(NS_ERR_NOMEM, "out of memory parsing YAML");
    yaml_parser_set_input_string(&p, (const unsigned char *)text, strlen(text));
    ns_status st;
    if (!yaml_parser_load(&p, &doc)) {
        st = yaml_fail(L, &p);
    } else {
        const yaml_node_t *root = yaml_document_get_root_node(&doc);
        st = root ? key_set(L, &keys[i], &doc, root) : fail(L, mark_origin(L, p.mark), "missing value");
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&p);
    if (!st) L->origin[i] = (config_origin){0, 0, L->override};
    return st;
}

static ns_status override_apply(config_loader *L, const char *ov) {
    char key[128], near[128];
    const char *eq = strchr(ov, '=');
    config_origin o = {0, 0, ov};
    L->override = ov;
    if (!eq) return fail(L, o, "expected KEY=VALUE");
    snprintf(key, sizeof key, "%.*s", (int)(eq - ov), ov);
    int i = key_find(key);
    if (i < 0) {
        closest(key, 0, near, sizeof near);
        return fail(L, o, "unknown key '%s'; did you mean '%s'?", key, near);
    }
    return key_set_text(L, i, eq + 1);
}

static ns_status file_read(config_loader *L, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return ns_error_set(NS_ERR_IO, "%s: cannot open config: %s", path, strerror(errno));
    yaml_parser_t p;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&p)) {
        fclose(f);
        return ns_error_set(NS_ERR_NOMEM, "out of memory parsing YAML");
    }
    yaml_parser_set_input_file(&p, f);
    ns_status st = NS_OK;
    for (int d = 0; !st; d++) {
        if (!yaml_parser_load(&p, &doc)) {
            st = yaml_fail(L, &p);
            break;
        }
        const yaml_node_t *root = yaml_document_get_root_node(&doc);
        if (!root) {  // the end of the stream
            yaml_document_delete(&doc);
            break;
        }
        if (d) st = node_fail(L, root, "a second YAML document; a config is one document");
        else if (root->type == YAML_MAPPING_NODE) st = walk(L, &doc, root, "");
        else if (!is_null(root))
            st = node_fail(L, root,
                           "expected a mapping of sections (run, model, sampler, search, verifier, log), got %s",
                           describe(root));
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&p);
    fclose(f);
    return st;
}

// Every key at its default, straight from the table.
static void loader_defaults(config_loader *L) {
    memset(L, 0, sizeof *L);
    L->file = "(config.c default)";
    for (int i = 0; i < N_KEYS; i++)
        if (key_set_text(L, i, keys[i].def)) ns_die(__FILE__, __LINE__, "key table: %s", ns_error_message());
}

// verifier.name and verifier.ensemble into c.terms.
static ns_status loader_resolve(config_loader *L) {
    search_config *c = &L->c;
    memset(c->terms, 0, sizeof c->terms);
    c->ensemble = L->verifier_name == ENSEMBLE_NAME;
    if (c->ensemble) {
        memcpy(c->terms, L->list, sizeof c->terms);
        c->num_terms = L->n_list;
        return NS_OK;
    }
    if (L->n_list)
        return key_fail(L, "verifier.ensemble",
                        "verifier.ensemble lists verifiers but verifier.name is '%s', not 'ensemble'",
                        verifier_kind_name(L->verifier_name));
    c->num_terms = 1;
    c->terms[0].kind = L->verifier_name;
    c->terms[0].weight = 1;
    return NS_OK;
}

// The loader a resolved config came from (for writing it).
static void loader_from(config_loader *L, const search_config *c) {
    memset(L, 0, sizeof *L);
    memcpy(&L->c, c, sizeof *c);
    L->verifier_name = c->ensemble ? ENSEMBLE_NAME : (int)c->terms[0].kind;
    if (c->ensemble) {
        L->n_list = c->num_terms < CONFIG_MAX_ENSEMBLE ? c->num_terms : CONFIG_MAX_ENSEMBLE;
        memcpy(L->list, c->terms, sizeof L->list);
    }
}

// ---------------------------------------------------------------------------
// Checks across keys and of the weight files. Only what the run uses is
// cross-checked: algorithm 'none' has no verifier, only 'paths' rounds.

#define PATHS_MAX_ROUNDS 10000

static ns_status config_check(const search_config *c, const config_loader *L) {
    // Budgets are whole sampler steps: Heun spends 2 NFEs per step, guidance doubles.
    int heun = c->sampler == SAMPLER_HEUN, guided = c->cfg_scale != 1.0, per = (heun ? 2 : 1) * (guided ? 2 : 1);
    const char *budgets[] = {c->algorithm != SEARCH_NONE ? "sampler.search_nfe" : NULL, "sampler.final_nfe",
                             c->algorithm == SEARCH_PATHS ? "search.paths.nfe_per_step" : NULL};
    for (int i = 0; i < 3; i++) {
        if (!budgets[i]) continue;
        int v = *(const int *)((const char *)c + keys[key_find(budgets[i])].offset);
        if (v % per)
            return key_fail(L, budgets[i], "%s must be a multiple of %d, the NFEs per step of %s%s, got %d", budgets[i],
                            per, sampler_kind_name(c->sampler), guided ? " with guidance (cfg_scale != 1)" : "", v);
    }
    if (c->algorithm == SEARCH_PATHS) {
        double t0 = c->paths_start_t, f = c->paths_delta_f, b = c->paths_delta_b;
        if (b <= f)
            return key_fail(L, "search.paths.delta_b",
                            "search.paths.delta_b must be greater than search.paths.delta_f so each round advances t "
                            "(%g <= %g)", b, f);
        if (f >= t0)
            return key_fail(L, "search.paths.delta_f",
                            "search.paths.delta_f must be below search.paths.start_t: the first round re-noises back "
                            "to t = start_t - delta_f (%g >= %g)", f, t0);
        if ((1 - t0) / (b - f) > PATHS_MAX_ROUNDS)
            return key_fail(L, "search.paths.delta_b",
                            "search.paths: start_t + k (delta_b - delta_f) must reach t = 1 within %d rounds, "
                            "(1 - %g) / (%g - %g) needs %.0f", PATHS_MAX_ROUNDS, t0, b, f, (1 - t0) / (b - f));
    }
    if (c->algorithm == SEARCH_NONE) return NS_OK;
    const char *vkey = c->ensemble ? "verifier.ensemble" : "verifier.name";
    if (c->ensemble && (c->num_terms < 2 || c->num_terms > CONFIG_MAX_ENSEMBLE))
        return key_fail(L, vkey, "%s: an ensemble needs 2 to %d verifiers, got %d", vkey, CONFIG_MAX_ENSEMBLE,
                        c->num_terms);
    if (!c->ensemble && c->num_terms != 1)
        return key_fail(L, vkey, "%s: one verifier expected, got %d terms", vkey, c->num_terms);
    for (int i = 0; i < c->num_terms; i++) {
        verifier_kind k = c->terms[i].kind;
        if ((unsigned)k >= VERIFIER_KINDS) return key_fail(L, vkey, "%s: no verifier kind %d", vkey, (int)k);
        if (!(c->terms[i].weight > 0 && c->terms[i].weight <= WEIGHT_MAX))
            return key_fail(L, vkey, "%s: the weight of %s must be in (0, %g], got %g", vkey, verifier_kind_name(k),
                            WEIGHT_MAX, c->terms[i].weight);
        for (int j = 0; j < i; j++)
            if (c->terms[j].kind == k) return key_fail(L, vkey, "%s lists %s twice", vkey, verifier_kind_name(k));
        if (k == VERIFIER_FID_ORACLE && c->ensemble)
            return key_fail(L, vkey, "fid_oracle is a set-level verifier: it cannot be part of an ensemble");
        if (k == VERIFIER_FID_ORACLE && c->algorithm != SEARCH_RANDOM)
            return key_fail(L, vkey, "fid_oracle is a set-level verifier: it needs search.algorithm random (got %s)",
                            search_algorithm_name(c->algorithm));
    }
    return NS_OK;
}

// path must be a readable HDF5 file; with role, a classifier file whose
// head/ attribute role is that role.
static ns_status file_check(const config_loader *L, const char *key, const char *path, const char *role) {
    hid_t f;
    if (h5u_open_read(&f, path)) return key_fail(L, key, "%s: %s", key, ns_error_message());
    ns_status st = NS_OK;
    char got[CLASSIFIER_ROLE_MAX] = "";
    hid_t g = H5I_INVALID_HID;
    if (role) {
        H5E_BEGIN_TRY {
            g = H5Gopen2(f, "head", H5P_DEFAULT);
            if (g >= 0 && H5Aexists(g, "role") > 0) st = h5u_attr_read_string(g, path, "role", got, sizeof got);
            if (g >= 0) H5Gclose(g);
        }
        H5E_END_TRY;
    }
    h5u_close_file(f);
    if (!role) return NS_OK;
    if (g < 0) return key_fail(L, key, "%s: %s is not a classifier file (no head/ group)", key, path);
    if (st) return key_fail(L, key, "%s: %s", key, ns_error_message());
    if (!strcmp(got, role)) return NS_OK;
    if (!strcmp(got, "evaluator"))
        return key_fail(L, key, "%s: %s is the evaluator (role 'evaluator'); search may use it only through the oracle "
                        "verifiers is_oracle and fid_oracle", key, path);
    if (!strcmp(got, "verifier"))
        return key_fail(L, key, "%s: %s is the verifier classifier (role 'verifier'); the evaluator must be a network "
                        "no search optimises (role 'evaluator')", key, path);
    return key_fail(L, key, "%s: %s has %s%s%s, expected role '%s' (noisesearch train-classifier --role %s)", key, path,
                    *got ? "role '" : "no role", got, *got ? "'" : "", role, role);
}

static ns_status files_check(const config_loader *L) {
    const search_config *c = &L->c;
    int classifier = 0, evaluator = 0, reference = 0;
    for (int i = 0; c->algorithm != SEARCH_NONE && i < c->num_terms; i++) {
        if (verifier_kind_is_oracle(c->terms[i].kind)) evaluator = 1;
        else classifier = 1;
        if (c->terms[i].kind == VERIFIER_FID_ORACLE) reference = 1;
    }
    ns_status st = file_check(L, "model.weights", c->model, NULL);
    if (!st && classifier) st = file_check(L, "verifier.classifier", c->classifier, "verifier");
    if (!st && evaluator) st = file_check(L, "verifier.evaluator", c->evaluator, "evaluator");
    if (!st && reference) st = file_check(L, "verifier.reference", c->reference, NULL);
    return st;
}

// ---------------------------------------------------------------------------
// Writing: the resolved config and the reference share one emitter.

typedef struct {
    char *s;
    size_t n, cap;
} strbuf;

__attribute__((format(printf, 2, 3))) static void sb_printf(strbuf *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        NS_CHECK(k >= 0);
        if (b->s && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        b->cap = (b->cap + (size_t)k + 1) * 2;
        b->s = realloc(b->s, b->cap);
        NS_CHECK(b->s);
    }
}

// The shortest text that reads back as v: fixed-point where that is short
// ("10.0", "0.95"), else exponent form ("1e-07"); always with '.' or 'e' so
// it reads as a number, not an integer.
static void float_print(strbuf *b, double v) {
    char s[64];
    int fixed = fabs(v) >= 1e-4 && fabs(v) < 1e15;
    for (int digits = fixed ? 0 : 1; digits <= 17; digits++) {
        snprintf(s, sizeof s, fixed ? "%.*f" : "%.*g", digits, v);
        if (strtod(s, NULL) == v) break;
    }
    sb_printf(b, "%s%s", s, strpbrk(s, ".e") ? "" : ".0");
}

// Plain when unambiguous, else double-quoted with escapes.
static void path_print(strbuf *b, const char *s) {
    int safe = *s && *s != '-' &&
               strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./+-") == strlen(s);
    if (safe) return sb_printf(b, "%s", s);
    sb_printf(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') sb_printf(b, "\\%c", *p);
        else if (*p < 0x20) sb_printf(b, "\\x%02x", *p);
        else sb_printf(b, "%c", *p);
    }
    sb_printf(b, "\"");
}

static int is_all_classes(const search_config *c, const config_key *k) {
    if (c->num_classes != (int)(k->hi - k->lo) + 1) return 0;
    for (int i = 0; i < c->num_classes; i++)
        if (c->classes[i] != (int)k->lo + i) return 0;
    return 1;
}

static void value_print(strbuf *b, const config_loader *L, const config_key *k) {
    const void *p = (const char *)L + k->offset;
    switch (k->type) {
    case T_INT: sb_printf(b, "%d", *(const int *)p); break;
    case T_SEED: sb_printf(b, "%" PRIu64, *(const uint64_t *)p); break;
    case T_FLOAT: float_print(b, *(const double *)p); break;
    case T_BOOL: sb_printf(b, "%s", *(const int *)p ? "true" : "false"); break;
    case T_PATH: path_print(b, p); break;
    case T_SAMPLER:
    case T_ALGORITHM:
    case T_VERIFIER:
    case T_KIND: {
        const char *name = enum_name(k->type, *(const int *)p);
        sb_printf(b, "%s", name ? name : "unknown");
        break;
    }
    case T_CLASSES:
        if (is_all_classes(&L->c, k)) {
            sb_printf(b, "all");
            break;
        }
        sb_printf(b, "[");
        for (int i = 0; i < L->c.num_classes; i++) sb_printf(b, "%s%d", i ? ", " : "", L->c.classes[i]);
        sb_printf(b, "]");
        break;
    case T_ENSEMBLE:
        sb_printf(b, "[");
        for (int i = 0; i < L->n_list; i++) {
            sb_printf(b, "%s{name: %s, weight: ", i ? ", " : "", enum_name(T_KIND, L->list[i].kind));
            float_print(b, L->list[i].weight);
            sb_printf(b, "}");
        }
        sb_printf(b, "]");
        break;
    }
}

static void type_print(strbuf *b, const config_key *k) {
    char range[80];
    range_text(range, sizeof range, k->lo, k->hi, k->open);
    switch (k->type) {
    case T_INT: sb_printf(b, "Integer in %s", range); break;
    case T_SEED: sb_printf(b, "Integer in [0, %" PRIu64 "]", UINT64_MAX); break;
    case T_FLOAT: sb_printf(b, "Number in %s", range); break;
    case T_BOOL: sb_printf(b, "true or false (lower case)"); break;
    case T_PATH: sb_printf(b, "A path, relative to the current directory unless absolute"); break;
    case T_SAMPLER:
    case T_ALGORITHM:
    case T_VERIFIER:
    case T_KIND:
        sb_printf(b, "One of:");
        for (int i = 0; enum_name(k->type, i); i++) sb_printf(b, "%s %s", i ? "," : "", enum_name(k->type, i));
        break;
    case T_CLASSES: sb_printf(b, "all, or a list of distinct class indices in %s", range); break;
    case T_ENSEMBLE:
        sb_printf(b, "A list of {name: VERIFIER, weight: W} maps (W in (0, %g], default 1) or VERIFIER names",
                  WEIGHT_MAX);
        break;
    }
}

static char *emit(const config_loader *L, int reference) {
    strbuf b = {0};
    if (reference)
        sb_printf(&b, "# noisesearch run config reference: every key with its meaning, its type and\n"
                      "# range, and its default as the value. A config sets any subset of the keys;\n"
                      "# the others keep these defaults. Written by `noisesearch config --reference`\n"
                      "# from the key table in coordinator/config.c (a test keeps this file current).\n"
                      "# configs/README.md explains the layout, overrides and error messages.\n");
    const char *prev = "";
    for (int i = 0; i < N_KEYS; i++) {
        const config_key *k = &keys[i];
        const char *leaf = k->name;
        int depth = 0;
        // Open the sections of this key that the previous key is not in
        // (the table keeps each section's keys together).
        for (const char *d; (d = strchr(leaf, '.')); leaf = d + 1, depth++) {
            if (!strncmp(prev, k->name, (size_t)(d - k->name) + 1)) continue;
            if (reference && !depth) sb_printf(&b, "\n");
            sb_printf(&b, "%*s%.*s:\n", 2 * depth, "", (int)(d - leaf), leaf);
        }
        if (reference) {
            sb_printf(&b, "%*s# %s.\n%*s# ", 2 * depth, "", k->help, 2 * depth, "");
            type_print(&b, k);
            sb_printf(&b, "\n");
        }
        sb_printf(&b, "%*s%s: ", 2 * depth, "", leaf);
        value_print(&b, L, k);
        sb_printf(&b, "\n");
        prev = k->name;
    }
    return b.s;
}

// ---------------------------------------------------------------------------

void search_config_defaults(search_config *c) {
    config_loader *L = ns_malloc(sizeof *L, "config");
    loader_defaults(L);
    NS_CHECK(loader_resolve(L) == NS_OK);
    memcpy(c, &L->c, sizeof *c);
    free(L);
}

ns_status search_config_load(search_config *c, const char *path, const char *const *overrides, int n_overrides) {
    config_loader *L = ns_malloc(sizeof *L, "config");
    loader_defaults(L);
    L->file = path;
    ns_status st = file_read(L, path);
    for (int i = 0; !st && i < n_overrides; i++) st = override_apply(L, overrides[i]);
    L->override = NULL;
    if (!st) st = loader_resolve(L);
    if (!st) st = config_check(&L->c, L);
    if (!st) st = files_check(L);
    if (!st) memcpy(c, &L->c, sizeof *c);
    free(L);
    return st;
}

ns_status search_config_check(const search_config *c) { return config_check(c, NULL); }

int search_config_is_oracle(const search_config *c) {
    for (int i = 0; c->algorithm != SEARCH_NONE && i < c->num_terms; i++)
        if (verifier_kind_is_oracle(c->terms[i].kind)) return 1;
    return 0;
}

char *search_config_to_yaml(const search_config *c) {
    config_loader *L = ns_malloc(sizeof *L, "config");
    loader_from(L, c);
    char *s = emit(L, 0);
    free(L);
    return s;
}

char *search_config_reference_yaml(void) {
    config_loader *L = ns_malloc(sizeof *L, "config");
    loader_defaults(L);
    char *s = emit(L, 1);
    free(L);
    return s;
}

char *search_config_results_yaml(const search_config *c) {
    search_config d, r = *c;
    search_config_defaults(&d);
    memcpy(r.out, d.out, sizeof r.out);
    r.batch = d.batch;
    r.threads = d.threads;
    r.progress_every = d.progress_every;
    r.flush_every = d.flush_every;
    return search_config_to_yaml(&r);
}
