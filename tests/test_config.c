// Checks of the run config (coordinator/config.c):
//   1. defaults are the header's; a file setting every key to another value
//      gives those values (every type: int, seed, float, bool, path, enums,
//      class list, ensemble maps and names);
//   2. every kind of error, with its exact message, FILE:LINE:COLUMN and
//      suggested key: YAML syntax, unknown key or section, wrong type, out of
//      range, duplicate key, mapping for a scalar and scalar for a section,
//      bad class lists and ensembles, a second document;
//   3. overrides (values, flow lists, order) and their errors;
//   4. search_config_to_yaml loads back into an identical struct;
//   5. weight files: missing, not HDF5, roles refused (the evaluator as the
//      verifier classifier and the reverse), only the files a run uses;
//   6. cross-key checks (NFE budgets, paths rounds, fid_oracle, ensembles,
//      algorithm none), with the file position of the key blamed;
//   7. the shipped configs load, default.yaml is the small run it promises,
//      and configs/reference.yaml loads as the defaults.
// usage: test_config WORK_DIR SOURCE_DIR
//        test_config --reference configs/reference.yaml   (is it current?)
//        test_config --cli NOISESEARCH WORK_DIR           (the config command)
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/h5util.h"
#include "coordinator/config.h"
#include "tests/expect.h"
#include "verifiers/classifier.h"

#define MAX_ARGS 16

// Paths of the weight files the test makes (relative: the test runs in WORK_DIR).
static const char *const path_overrides[] = {"model.weights=w/model.h5", "verifier.classifier=w/verifier.h5",
                                             "verifier.evaluator=w/evaluator.h5", "verifier.reference=w/ref.h5"};

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    NS_CHECK(f && fputs(text, f) >= 0 && fclose(f) == 0);
}

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = ns_malloc((size_t)n + 1, "text");
    s[fread(s, 1, (size_t)n, f)] = 0;
    fclose(f);
    return s;
}

static void make_classifier(const char *path, const char *role) {
    classifier_config cfg = classifier_config_make(8, 1, 10, 4, 16, 1, 2);
    classifier c;
    NS_CHECK(classifier_init(&c, &cfg, 1) == NS_OK);
    snprintf(c.role, sizeof c.role, "%s", role);
    NS_CHECK(classifier_save(&c, path) == NS_OK);
    classifier_free(&c);
}

static void make_h5(const char *path) {
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    NS_CHECK(f >= 0 && H5Fclose(f) >= 0);
}

static void make_weights(void) {
    mkdir("w", 0755);
    make_h5("w/model.h5");
    make_h5("w/ref.h5");
    make_classifier("w/verifier.h5", "verifier");
    make_classifier("w/evaluator.h5", "evaluator");
    make_classifier("w/norole.h5", "");
    write_text("w/notes.txt", "not HDF5\n");
}

// Load text as t.yaml; with paths, the test's weight files come first in the
// overrides; then the NULL-terminated extra overrides.
static ns_status load(search_config *c, int paths, const char *text, ...) {
    const char *ov[MAX_ARGS];
    int n = 0;
    for (int i = 0; paths && i < 4; i++) ov[n++] = path_overrides[i];
    va_list ap;
    va_start(ap, text);
    for (const char *s; (s = va_arg(ap, const char *));) {
        NS_CHECK(n < MAX_ARGS);
        ov[n++] = s;
    }
    va_end(ap);
    write_text("t.yaml", text);
    return search_config_load(c, "t.yaml", ov, n);
}

#define EXPECT_OK(st, what) EXPECT((st) == NS_OK, "%s: unexpected error: %s", what, ns_error_message())
#define EXPECT_MSG(st, want)                                                                                  \
    do {                                                                                                      \
        ns_status st_ = (st);                                                                                 \
        EXPECT(st_ != NS_OK && !strcmp(ns_error_message(), want), "expected error\n    %s\n  got%s\n    %s", \
               want, st_ ? "" : " success", st_ ? ns_error_message() : "");                                  \
    } while (0)

static void test_defaults(void) {
    search_config c;
    search_config_defaults(&c);
    EXPECT(c.seed == 0 && c.num_classes == 10 && c.samples_per_class == 2, "run defaults");
    for (int i = 0; i < 10; i++) EXPECT(c.classes[i] == i, "run.classes all: classes[%d] = %d", i, c.classes[i]);
    EXPECT(!strcmp(c.out, "runs/default.h5") && c.batch == 16 && c.threads == 0, "run.out/batch/threads");
    EXPECT(c.progress_every == 10 && c.flush_every == 5, "run.progress_every/flush_every");
    EXPECT(!strcmp(c.model, "weights/default.h5"), "model.weights '%s'", c.model);
    EXPECT(c.sampler == SAMPLER_HEUN && c.search_nfe == 50 && c.final_nfe == 250, "sampler");
    EXPECT(c.cfg_scale == 1.0 && c.cfg_channels == 0, "sampler cfg");
    EXPECT(c.algorithm == SEARCH_RANDOM && c.random_candidates == 8, "search random");
    EXPECT(c.zo_neighbours == 4 && c.zo_iterations == 4 && c.zo_tau == 0.95 && c.zo_restart_on_stall == 1,
           "zero_order");
    EXPECT(c.paths_initial == 4 && c.paths_width == 2 && c.paths_start_t == 0.5 && c.paths_delta_f == 0.1 &&
               c.paths_delta_b == 0.2 && c.paths_nfe_per_step == 10,
           "paths");
    EXPECT(c.num_terms == 1 && !c.ensemble && c.terms[0].kind == VERIFIER_CLASS_LOGIT && c.terms[0].weight == 1,
           "verifier");
    EXPECT(!strcmp(c.classifier, "weights/verifier.h5") && !strcmp(c.evaluator, "weights/evaluator.h5") &&
               !strcmp(c.reference, "weights/fmnist-test-reference.h5"),
           "verifier files");
    EXPECT(c.self_similarity_t == 0.6, "self_similarity_t");
    EXPECT(!c.log_trajectories && c.trajectory_stride == 10 && !c.log_x1_hat && c.log_noise && c.log_png, "log");
    EXPECT(search_config_check(&c) == NS_OK, "defaults pass the cross checks: %s", ns_error_message());
    EXPECT(!search_config_is_oracle(&c), "defaults are not an oracle run");
}

// Every key away from its default.
static const char *every_key =
    "run:\n"
    "  seed: 18446744073709551615\n"
    "  classes: [3, 0, 7]\n"
    "  samples_per_class: 5\n"
    "  out: \"out dir/run #1.h5\"\n"
    "  batch: 4096\n"
    "  threads: 3\n"
    "  progress_every: 123.456789012345\n"
    "  flush_every: 2.5e1\n"
    "model:\n"
    "  weights: w/model.h5\n"
    "sampler:\n"
    "  kind: euler_maruyama\n"
    "  search_nfe: 34\n"
    "  final_nfe: 78\n"
    "  cfg_scale: 1.5\n"
    "  cfg_channels: 1\n"
    "search:\n"
    "  algorithm: zero_order\n"
    "  random: {candidates: 1000000}\n"
    "  zero_order:\n"
    "    neighbours: 2\n"
    "    iterations: 9\n"
    "    tau: 0.1\n"
    "    restart_on_stall: false\n"
    "  paths:\n"
    "    initial: 3\n"
    "    width: 5\n"
    "    start_t: 0.25\n"
    "    delta_f: 0.125\n"
    "    delta_b: 0.375\n"
    "    nfe_per_step: 7\n"  // odd, but paths is not the algorithm
    "verifier:\n"
    "  name: ensemble\n"
    "  ensemble:\n"
    "    - {name: class_logprob, weight: 2.5}\n"
    "    - self_similarity\n"
    "    - name: is_oracle\n"
    "  classifier: w/verifier.h5\n"
    "  evaluator: w/evaluator.h5\n"
    "  reference: 'w/ref.h5'\n"
    "  self_similarity_t: 0.75\n"
    "log:\n"
    "  trajectories: true\n"
    "  trajectory_stride: 3\n"
    "  x1_hat: true\n"
    "  noise: false\n"
    "  png: false\n";

static void check_every_key(const search_config *c) {
    EXPECT(c->seed == UINT64_MAX, "seed %llu", (unsigned long long)c->seed);
    EXPECT(c->num_classes == 3 && c->classes[0] == 3 && c->classes[1] == 0 && c->classes[2] == 7, "classes");
    EXPECT(c->samples_per_class == 5 && c->batch == 4096 && c->threads == 3, "run ints");
    EXPECT(!strcmp(c->out, "out dir/run #1.h5"), "out '%s'", c->out);
    EXPECT(c->progress_every == 123.456789012345 && c->flush_every == 25, "run floats");
    EXPECT(!strcmp(c->model, "w/model.h5"), "model");
    EXPECT(c->sampler == SAMPLER_EULER_MARUYAMA && c->search_nfe == 34 && c->final_nfe == 78, "sampler");
    EXPECT(c->cfg_scale == 1.5 && c->cfg_channels == 1, "cfg");
    EXPECT(c->algorithm == SEARCH_ZERO_ORDER && c->random_candidates == 1000000, "search");
    EXPECT(c->zo_neighbours == 2 && c->zo_iterations == 9 && c->zo_tau == 0.1 && !c->zo_restart_on_stall, "zo");
    EXPECT(c->paths_initial == 3 && c->paths_width == 5 && c->paths_start_t == 0.25 && c->paths_delta_f == 0.125 &&
               c->paths_delta_b == 0.375 && c->paths_nfe_per_step == 7,
           "paths");
    EXPECT(c->ensemble && c->num_terms == 3, "ensemble of 3, got %d", c->num_terms);
    EXPECT(c->terms[0].kind == VERIFIER_CLASS_LOGPROB && c->terms[0].weight == 2.5, "term 0");
    EXPECT(c->terms[1].kind == VERIFIER_SELF_SIMILARITY && c->terms[1].weight == 1, "term 1");
    EXPECT(c->terms[2].kind == VERIFIER_IS_ORACLE && c->terms[2].weight == 1, "term 2");
    EXPECT(!strcmp(c->classifier, "w/verifier.h5") && !strcmp(c->evaluator, "w/evaluator.h5") &&
               !strcmp(c->reference, "w/ref.h5"),
           "verifier files");
    EXPECT(c->self_similarity_t == 0.75, "self_similarity_t");
    EXPECT(c->log_trajectories && c->trajectory_stride == 3 && c->log_x1_hat && !c->log_noise && !c->log_png, "log");
    EXPECT(search_config_is_oracle(c), "an ensemble with is_oracle is an oracle run");
}

static void test_types(void) {
    search_config c;
    ns_status st = load(&c, 0, every_key, NULL);
    EXPECT_OK(st, "every key");
    if (!st) check_every_key(&c);
}

// A file's errors. %s in want is the file name.
static const struct {
    const char *yaml, *want;
} file_errors[] = {
    {"run:\n  seed: [1, 2\n", "t.yaml:3:1: YAML syntax error: did not find expected ',' or ']' "
                              "(while parsing a flow sequence at line 2, column 9)"},
    {"run:\n  seed: 1\n batch: 2\n", "t.yaml:3:2: YAML syntax error: did not find expected key "
                                     "(while parsing a block mapping at line 1, column 1)"},
    {"run:\n  out: \xff.h5\n", "t.yaml: invalid leading UTF-8 octet (byte 12)"},
    {"search:\n  random:\n    candidate: 16\n",
     "t.yaml:3:5: unknown key 'search.random.candidate'; did you mean 'search.random.candidates'?"},
    {"serch:\n  algorithm: random\n", "t.yaml:1:1: unknown key 'serch'; did you mean 'search'?"},
    {"verifier:\n  classifer: w/verifier.h5\n",
     "t.yaml:2:3: unknown key 'verifier.classifer'; did you mean 'verifier.classifier'?"},
    {"run:\n  batch: abc\n", "t.yaml:2:10: run.batch: expected an integer, got 'abc'"},
    {"run:\n  batch: 1.5\n", "t.yaml:2:10: run.batch: expected an integer, got '1.5'"},
    {"run:\n  batch: '4'\n", "t.yaml:2:10: run.batch: expected an integer, got the string '4'"},
    {"run:\n  batch:\n", "t.yaml:2:9: run.batch: expected an integer, got nothing"},
    {"run:\n  seed: -1\n", "t.yaml:2:9: run.seed: expected an integer, got '-1'"},
    {"run:\n  seed: 18446744073709551616\n",
     "t.yaml:2:9: run.seed: must be in [0, 18446744073709551615], got 18446744073709551616"},
    {"sampler:\n  cfg_scale: high\n", "t.yaml:2:14: sampler.cfg_scale: expected a number, got 'high'"},
    {"sampler:\n  cfg_scale: .nan\n", "t.yaml:2:14: sampler.cfg_scale: expected a number, got '.nan'"},
    {"log:\n  png: yes\n", "t.yaml:2:8: log.png: expected true or false, got 'yes'"},
    {"run:\n  batch: 0\n", "t.yaml:2:10: run.batch: must be in [1, 4096], got 0"},
    {"run:\n  batch: 99999999999999999999\n", "t.yaml:2:10: run.batch: must be in [1, 4096], got 99999999999999999999"},
    {"search:\n  zero_order: {tau: 1}\n", "t.yaml:2:21: search.zero_order.tau: must be in (0, 1), got 1"},
    {"run:\n  flush_every: 0.05\n", "t.yaml:2:16: run.flush_every: must be in [0.1, 3600], got 0.05"},
    {"run:\n  seed: 1\n  seed: 2\n", "t.yaml:3:3: duplicate key 'run.seed'"},
    {"run:\n  seed: 1\nrun:\n  batch: 2\n", "t.yaml:3:1: duplicate key 'run'"},
    {"run:\n  seed: 1\nrun.seed: 2\n", "t.yaml:3:1: duplicate key 'run.seed'"},
    {"run:\n  seed:\n    value: 1\n", "t.yaml:3:5: run.seed: expected an integer, got a mapping"},
    {"model:\n  weights: [a.h5]\n", "t.yaml:2:12: model.weights: expected a path, got a list"},
    {"model:\n  weights: ''\n", "t.yaml:2:12: model.weights: expected a path, got nothing"},
    {"run: 5\n", "t.yaml:1:6: run is a section: expected a mapping of its keys, got '5'"},
    {"search:\n  random: 16\n", "t.yaml:2:11: search.random is a section: expected a mapping of its keys, got '16'"},
    {"- run\n", "t.yaml:1:1: expected a mapping of sections (run, model, sampler, search, verifier, log), got a list"},
    {"run: {seed: 1}\n---\nrun: {seed: 2}\n", "t.yaml:3:1: a second YAML document; a config is one document"},
    {"sampler:\n  kind: rk4\n", "t.yaml:2:9: sampler.kind: expected one of euler, heun, euler_maruyama, got 'rk4'"},
    {"search:\n  algorithm: greedy\n",
     "t.yaml:2:14: search.algorithm: expected one of none, random, zero_order, paths, got 'greedy'"},
    {"verifier:\n  name: clip\n", "t.yaml:2:9: verifier.name: expected one of class_logit, class_logprob, "
                                  "self_similarity, is_oracle, fid_oracle, ensemble, got 'clip'"},
    {"run:\n  classes: [0, 10]\n", "t.yaml:2:16: run.classes[1]: must be in [0, 9], got 10"},
    {"run:\n  classes: [4, 2, 4]\n", "t.yaml:2:19: run.classes[2]: class 4 is listed twice"},
    {"run:\n  classes: []\n", "t.yaml:2:12: run.classes: the list is empty (give class indices or 'all')"},
    {"run:\n  classes: some\n", "t.yaml:2:12: run.classes: expected 'all' or a list of class indices, got 'some'"},
    {"verifier:\n  ensemble: class_logit\n",
     "t.yaml:2:13: verifier.ensemble: expected a list of verifiers, got 'class_logit'"},
    {"verifier:\n  ensemble: [{name: class_logit, wieght: 2}]\n",
     "t.yaml:2:34: unknown key 'verifier.ensemble[0].wieght'; expected name or weight"},
    {"verifier:\n  ensemble: [{weight: 2}]\n", "t.yaml:2:14: verifier.ensemble[0]: missing name"},
    {"verifier:\n  ensemble: [class_logit, {name: clip}]\n",
     "t.yaml:2:34: verifier.ensemble[1].name: expected one of class_logit, class_logprob, self_similarity, "
     "is_oracle, fid_oracle, got 'clip'"},
    {"verifier:\n  ensemble: [ensemble]\n",
     "t.yaml:2:14: verifier.ensemble[0]: expected one of class_logit, class_logprob, self_similarity, "
     "is_oracle, fid_oracle, got 'ensemble'"},
    {"verifier:\n  ensemble: [{name: class_logit, weight: 0}]\n",
     "t.yaml:2:42: verifier.ensemble[0].weight: must be in (0, 1000], got 0"},
    {"verifier:\n  ensemble: [class_logit, class_logit, class_logit, class_logit, class_logit, class_logit, "
     "class_logit, class_logit, class_logit]\n",
     "t.yaml:2:118: verifier.ensemble: at most 8 verifiers"},
};

static void test_file_errors(void) {
    for (size_t i = 0; i < sizeof file_errors / sizeof file_errors[0]; i++) {
        search_config c;
        EXPECT_MSG(load(&c, 1, file_errors[i].yaml, NULL), file_errors[i].want);
    }
    search_config c;
    EXPECT(search_config_load(&c, "missing.yaml", NULL, 0) == NS_ERR_IO &&
               !strcmp(ns_error_message(), "missing.yaml: cannot open config: No such file or directory"),
           "missing config file: %s", ns_error_message());
    EXPECT_OK(load(&c, 1, "", NULL), "an empty file is the defaults");
    EXPECT_OK(load(&c, 1, "# only a comment\nrun:\nlog: ~\n", NULL), "empty sections");
}

static void test_overrides(void) {
    search_config c;
    ns_status st = load(&c, 1, "search:\n  random:\n    candidates: 4\n", "search.random.candidates=16",
                        "run.classes=[0,3]", "run.seed=1", "run.seed=2", "run.out=a=b.h5", "verifier.name=ensemble",
                        "verifier.ensemble=[class_logit, {name: self_similarity, weight: 0.5}]", NULL);
    EXPECT_OK(st, "overrides");
    if (!st) {
        EXPECT(c.random_candidates == 16, "override beats the file: %d", c.random_candidates);
        EXPECT(c.num_classes == 2 && c.classes[0] == 0 && c.classes[1] == 3, "flow list override");
        EXPECT(c.seed == 2, "the later override wins");
        EXPECT(!strcmp(c.out, "a=b.h5"), "value split at the first '=': %s", c.out);
        EXPECT(c.ensemble && c.num_terms == 2 && c.terms[1].kind == VERIFIER_SELF_SIMILARITY &&
                   c.terms[1].weight == 0.5,
               "ensemble override");
    }
    static const struct {
        const char *ov, *want;
    } errors[] = {
        {"search.random.candidate=16",
         "override 'search.random.candidate=16': unknown key "
         "'search.random.candidate'; did you mean 'search.random.candidates'?"},
        {"random.candidates=16",
         "override 'random.candidates=16': unknown key 'random.candidates'; did you mean 'search.random.candidates'?"},
        {"run.batch=abc", "override 'run.batch=abc': run.batch: expected an integer, got 'abc'"},
        {"run.batch=0", "override 'run.batch=0': run.batch: must be in [1, 4096], got 0"},
        {"run.batch={a: 1}", "override 'run.batch={a: 1}': run.batch: expected an integer, got a mapping"},
        {"run.seed", "override 'run.seed': expected KEY=VALUE"},
        {"run.seed=", "override 'run.seed=': missing value"},
        {"run.classes=[0,",
         "override 'run.classes=[0,': YAML syntax error: did not find expected node content "
         "(while parsing a flow node)"},
        {"sampler.search_nfe=21",
         "override 'sampler.search_nfe=21': sampler.search_nfe must be a multiple of 2, the NFEs per step of heun, got "
         "21"},
        {"model.weights=w/missing.h5",
         "override 'model.weights=w/missing.h5': model.weights: w/missing.h5: cannot "
         "read file: No such file or directory"},
        {"verifier.name=fid_oracle",
         "override 'verifier.name=fid_oracle': fid_oracle is a set-level verifier: it "
         "needs search.algorithm random (got zero_order)"},
    };
    for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++)
        EXPECT_MSG(load(&c, 1, "search:\n  algorithm: zero_order\n", errors[i].ov, NULL), errors[i].want);
}

// to_yaml, load it, to_yaml again: the same struct (bytewise) and text.
static void round_trip(const char *text, const char *what) {
    search_config a, b;
    ns_status st = load(&a, 1, text, NULL);
    EXPECT_OK(st, what);
    if (st) return;
    char *y1 = search_config_to_yaml(&a);
    write_text("rt.yaml", y1);
    st = search_config_load(&b, "rt.yaml", NULL, 0);
    EXPECT_OK(st, what);
    if (!st) {
        EXPECT(!memcmp(&a, &b, sizeof a), "%s: the reloaded config differs", what);
        char *y2 = search_config_to_yaml(&b);
        EXPECT(!strcmp(y1, y2), "%s: the YAML differs:\n%s\n---\n%s", what, y1, y2);
        free(y2);
    }
    free(y1);
}

static void test_round_trip(void) {
    round_trip(every_key, "every key");
    round_trip("", "defaults");
    round_trip("search:\n"
               "  algorithm: paths\n"
               "  paths: {start_t: 0.3, delta_f: 0.1, delta_b: 0.30000000000000004, nfe_per_step: 12}\n"
               "run: {classes: [9], progress_every: 0.1, flush_every: 3600}\n"
               "verifier: {self_similarity_t: 1e-3}\n"
               "sampler: {cfg_scale: 0, search_nfe: 52, final_nfe: 252}\n",  // guided: 4 NFEs per Heun step
               "paths, guidance, shortest floats");
    round_trip("run: {out: \"a\\\"b\\\\c\\td.h5\"}\nverifier: {name: fid_oracle}\n", "escaped path, fid_oracle");
    // Overwriting a long default path with a short one leaves no trace in the struct.
    search_config a, b;
    ns_status st = load(&a, 1, "run: {out: x.h5}\n", NULL);
    EXPECT_OK(st, "short path");
    memset(b.out, 0, sizeof b.out);
    strcpy(b.out, "x.h5");
    if (!st) EXPECT(!memcmp(a.out, b.out, sizeof a.out), "path buffers are zero-filled");
}

static void test_files(void) {
    search_config c;
    EXPECT_MSG(load(&c, 0, "model:\n  weights: w/model.h5\nverifier:\n  classifier: w/evaluator.h5\n", NULL),
               "t.yaml:4:15: verifier.classifier: w/evaluator.h5 is the evaluator (role 'evaluator'); search may use "
               "it only through the oracle verifiers is_oracle and fid_oracle");
    EXPECT_MSG(load(&c, 0, "model:\n  weights: w/model.h5\nverifier:\n  name: is_oracle\n  evaluator: w/verifier.h5\n",
                    NULL),
               "t.yaml:5:14: verifier.evaluator: w/verifier.h5 is the verifier classifier (role 'verifier'); the "
               "evaluator must be a network no search optimises (role 'evaluator')");
    EXPECT_MSG(load(&c, 0, "model:\n  weights: w/model.h5\nverifier:\n  classifier: w/norole.h5\n", NULL),
               "t.yaml:4:15: verifier.classifier: w/norole.h5 has no role, expected role 'verifier' (noisesearch "
               "train-classifier --role verifier)");
    EXPECT_MSG(load(&c, 0, "model:\n  weights: w/model.h5\nverifier:\n  classifier: w/model.h5\n", NULL),
               "t.yaml:4:15: verifier.classifier: w/model.h5 is not a classifier file (no head/ group)");
    EXPECT_MSG(load(&c, 0, "model:\n  weights: w/notes.txt\n", NULL),
               "t.yaml:2:12: model.weights: w/notes.txt: not an HDF5 file");
    EXPECT_MSG(load(&c, 0, "model:\n  weights: w/missing.h5\n", NULL),
               "t.yaml:2:12: model.weights: w/missing.h5: cannot read file: No such file or directory");
    // A key left at its default: the file, no line.
    EXPECT_MSG(load(&c, 0, "run: {seed: 1}\n", NULL),
               "t.yaml: model.weights: weights/default.h5: cannot read file: No such file or directory");
    EXPECT_MSG(load(&c, 0, "model: {weights: w/model.h5}\nverifier:\n  name: fid_oracle\n  evaluator: w/evaluator.h5\n",
                    NULL),
               "t.yaml: verifier.reference: weights/fmnist-test-reference.h5: cannot read file: No such file or "
               "directory");
    // Only the files the run reads are needed.
    const char *only_evaluator = "model: {weights: w/model.h5}\nverifier: {name: is_oracle, classifier: w/missing.h5, "
                                 "evaluator: w/evaluator.h5}\n";
    EXPECT_OK(load(&c, 0, only_evaluator, NULL), "is_oracle without a classifier");
    EXPECT(search_config_is_oracle(&c), "is_oracle is an oracle run");
    const char *only_model = "model: {weights: w/model.h5}\nsearch: {algorithm: none}\n"
                             "verifier: {name: fid_oracle, classifier: w/missing.h5, evaluator: w/missing.h5}\n";
    EXPECT_OK(load(&c, 0, only_model, NULL), "algorithm none reads no verifier file");
    EXPECT(!search_config_is_oracle(&c), "algorithm none is never an oracle run");
}

static const struct {
    const char *yaml, *want;
} cross_errors[] = {
    {"sampler:\n  search_nfe: 21\n",
     "t.yaml:2:15: sampler.search_nfe must be a multiple of 2, the NFEs per step of heun, got 21"},
    {"sampler:\n  final_nfe: 251\n",
     "t.yaml:2:14: sampler.final_nfe must be a multiple of 2, the NFEs per step of heun, got 251"},
    {"sampler:\n  cfg_scale: 2\n  search_nfe: 50\n",
     "t.yaml:3:15: sampler.search_nfe must be a multiple of 4, the NFEs "
     "per step of heun with guidance (cfg_scale != 1), got 50"},
    {"search:\n  algorithm: paths\n  paths:\n    nfe_per_step: 5\n",
     "t.yaml:4:19: search.paths.nfe_per_step must be a multiple of 2, the NFEs per step of heun, got 5"},
    {"search:\n  algorithm: paths\n  paths:\n    delta_f: 0.3\n    delta_b: 0.3\n",
     "t.yaml:5:14: search.paths.delta_b must be greater than search.paths.delta_f so each round advances t "
     "(0.3 <= 0.3)"},
    {"search:\n  algorithm: paths\n  paths:\n    start_t: 0.2\n    delta_f: 0.2\n    delta_b: 0.5\n",
     "t.yaml:5:14: search.paths.delta_f must be below search.paths.start_t: the first round re-noises back to "
     "t = start_t - delta_f (0.2 >= 0.2)"},
    {"search:\n  algorithm: paths\n  paths:\n    delta_b: 0.10001\n",
     "t.yaml:4:14: search.paths: start_t + k (delta_b - delta_f) must reach t = 1 within 10000 rounds, "
     "(1 - 0.5) / (0.10001 - 0.1) needs 50000"},
    {"search:\n  algorithm: zero_order\nverifier:\n  name: fid_oracle\n",
     "t.yaml:4:9: fid_oracle is a set-level verifier: it needs search.algorithm random (got zero_order)"},
    {"verifier:\n  name: ensemble\n  ensemble: [class_logit, fid_oracle]\n",
     "t.yaml:3:13: fid_oracle is a set-level verifier: it cannot be part of an ensemble"},
    {"verifier:\n  name: ensemble\n  ensemble: [class_logit]\n",
     "t.yaml:3:13: verifier.ensemble: an ensemble needs 2 to 8 verifiers, got 1"},
    {"verifier:\n  name: ensemble\n", "t.yaml: verifier.ensemble: an ensemble needs 2 to 8 verifiers, got 0"},
    {"verifier:\n  name: ensemble\n  ensemble: [class_logit, {name: class_logit, weight: 2}]\n",
     "t.yaml:3:13: verifier.ensemble lists class_logit twice"},
    {"verifier:\n  ensemble: [class_logit, self_similarity]\n",
     "t.yaml:2:13: verifier.ensemble lists verifiers but verifier.name is 'class_logit', not 'ensemble'"},
};

static void test_cross(void) {
    for (size_t i = 0; i < sizeof cross_errors / sizeof cross_errors[0]; i++) {
        search_config c;
        EXPECT_MSG(load(&c, 1, cross_errors[i].yaml, NULL), cross_errors[i].want);
    }
    static const char *const fine[] = {
        "sampler: {kind: euler, search_nfe: 21, final_nfe: 251}\n",            // 1 NFE per step
        "search: {algorithm: none}\nsampler: {search_nfe: 21}\n",              // no search budget
        "search: {paths: {nfe_per_step: 5, delta_b: 0.05}}\n",                 // paths not in use
        "search: {algorithm: none}\nverifier: {name: ensemble}\n",             // no verifier
        "search: {algorithm: paths, paths: {delta_b: 0.1001}}\n",              // 4996 rounds
        "verifier: {name: fid_oracle}\n",                                      // with random search
    };
    for (size_t i = 0; i < sizeof fine / sizeof fine[0]; i++) {
        search_config c;
        EXPECT_OK(load(&c, 1, fine[i], NULL), fine[i]);
    }
    // The public check of a built struct: the same rules, no position.
    search_config c;
    search_config_defaults(&c);
    c.search_nfe = 21;
    EXPECT_MSG(search_config_check(&c),
               "sampler.search_nfe must be a multiple of 2, the NFEs per step of heun, got 21");
    search_config_defaults(&c);
    c.terms[0].kind = VERIFIER_FID_ORACLE;
    c.algorithm = SEARCH_PATHS;
    EXPECT_MSG(search_config_check(&c),
               "fid_oracle is a set-level verifier: it needs search.algorithm random (got paths)");
    search_config_defaults(&c);
    c.ensemble = 1;
    c.num_terms = 2;
    c.terms[1].kind = VERIFIER_CLASS_LOGPROB;
    c.terms[1].weight = -1;
    EXPECT_MSG(search_config_check(&c), "verifier.ensemble: the weight of class_logprob must be in (0, 1000], got -1");
}

static void test_shipped(const char *src) {
    static const char *const names[] = {"default", "random", "zero_order", "paths", "ensemble", "oracle_fid", "baseline", "study"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/configs/%s.yaml", src, names[i]);
        search_config c;
        ns_status st = search_config_load(&c, path, path_overrides, 4);
        EXPECT_OK(st, path);
        if (st) continue;
        if (!strcmp(names[i], "default")) {
            EXPECT(c.algorithm == SEARCH_RANDOM && c.random_candidates == 8 && c.num_terms == 1 &&
                       c.terms[0].kind == VERIFIER_CLASS_LOGIT && c.num_classes == 10 && c.samples_per_class == 2 &&
                       c.search_nfe == 20 && c.final_nfe == 50 && !strcmp(c.out, "runs/default.h5"),
                   "default.yaml is the small run");
        } else if (!strcmp(names[i], "baseline")) {
            EXPECT(c.algorithm == SEARCH_NONE && c.sampler == SAMPLER_HEUN && c.cfg_scale == 1.0 &&
                       c.num_classes == 10 && c.samples_per_class == 1000 && c.seed == 0,
                   "baseline.yaml: no search, 10 x 1000 samples, Heun, guidance 1");
        } else if (!strcmp(names[i], "study")) {
            EXPECT(c.sampler == SAMPLER_HEUN && c.search_nfe == 8 && c.final_nfe == 8 && c.cfg_scale == 1.0 &&
                       c.num_classes == 10 && c.samples_per_class == 50 && c.paths_nfe_per_step == 2,
                   "study.yaml: 500 samples, Heun 8 NFEs for candidates and final samples");
        } else {
            EXPECT(c.sampler == SAMPLER_HEUN && c.search_nfe == 50 && c.final_nfe == 250 && c.cfg_scale == 1.0,
                   "%s: paper-style sampler", path);
        }
        if (!strcmp(names[i], "zero_order")) EXPECT(c.algorithm == SEARCH_ZERO_ORDER, "zero_order.yaml");
        if (!strcmp(names[i], "paths")) EXPECT(c.algorithm == SEARCH_PATHS, "paths.yaml");
        if (!strcmp(names[i], "ensemble"))
            EXPECT(c.ensemble && c.num_terms == 2 && c.terms[0].kind == VERIFIER_CLASS_LOGIT &&
                       c.terms[1].kind == VERIFIER_SELF_SIMILARITY,
                   "ensemble.yaml");
        if (!strcmp(names[i], "oracle_fid"))
            EXPECT(
                c.algorithm == SEARCH_RANDOM && c.terms[0].kind == VERIFIER_FID_ORACLE && search_config_is_oracle(&c),
                "oracle_fid.yaml");
    }
    // The reference is a config of the defaults.
    char path[4200];
    snprintf(path, sizeof path, "%s/configs/reference.yaml", src);
    search_config c, d;
    ns_status st = search_config_load(&c, path, path_overrides, 4);
    EXPECT_OK(st, path);
    search_config_defaults(&d);
    memcpy(d.model, c.model, sizeof d.model);
    memcpy(d.classifier, c.classifier, sizeof d.classifier);
    memcpy(d.evaluator, c.evaluator, sizeof d.evaluator);
    memcpy(d.reference, c.reference, sizeof d.reference);
    if (!st) EXPECT(!memcmp(&c, &d, sizeof c), "reference.yaml loads as the defaults");
}

static int check_reference(const char *path) {
    char *want = search_config_reference_yaml(), *have = read_text(path);
    EXPECT(have && !strcmp(want, have),
           "%s is stale; regenerate it: noisesearch config --reference > configs/reference.yaml", path);
    free(want);
    free(have);
    return failures != 0;
}

// Run the command line cmd; its stdout and stderr into out.txt and err.txt.
static int run(const char *cmd) {
    char full[8192];
    snprintf(full, sizeof full, "%s > out.txt 2> err.txt", cmd);
    int rc = system(full);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static int check_cli(const char *exe) {
    char cmd[4096];
    search_config c;
    write_text("cli.yaml", "run:\n  seed: 7\nsearch:\n  random: {candidates: 3}\n");
    const char *ov[] = {path_overrides[0], path_overrides[1], path_overrides[2], path_overrides[3],
                        "run.classes=[1,2]"};
    NS_CHECK(search_config_load(&c, "cli.yaml", ov, 5) == NS_OK);
    char *want = search_config_to_yaml(&c);
    snprintf(cmd, sizeof cmd, "%s config cli.yaml %s %s %s %s 'run.classes=[1,2]'", exe, ov[0], ov[1], ov[2], ov[3]);
    int rc = run(cmd);
    char *out = read_text("out.txt"), *err = read_text("err.txt");
    EXPECT(rc == 0 && out && !strcmp(out, want) && err && !*err, "config prints the resolved YAML (rc %d):\n%s%s", rc,
           out ? out : "", err ? err : "");
    free(out), free(err), free(want);

    snprintf(cmd, sizeof cmd, "%s config cli.yaml %s search.random.candidate=16", exe, ov[0]);
    rc = run(cmd);
    out = read_text("out.txt"), err = read_text("err.txt");
    const char *msg = "override 'search.random.candidate=16': unknown key 'search.random.candidate'; did you mean "
                      "'search.random.candidates'?\n";
    EXPECT(rc == 2 && out && !*out && err && !strcmp(err, msg), "a bad override: exit 2 and one line (rc %d): %s", rc,
           err ? err : "");
    free(out), free(err);

    snprintf(cmd, sizeof cmd, "%s config --reference", exe);
    rc = run(cmd);
    out = read_text("out.txt"), want = search_config_reference_yaml();
    EXPECT(rc == 0 && out && !strcmp(out, want), "config --reference prints the reference (rc %d)", rc);
    free(out), free(want);

    snprintf(cmd, sizeof cmd, "%s config", exe);
    EXPECT(run(cmd) == 2, "config without a file is a usage error");
    return failures != 0;
}

static void enter(const char *dir) {
    mkdir(dir, 0755);
    NS_CHECK(chdir(dir) == 0);
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--reference")) return check_reference(argv[2]);
    if (argc == 4 && !strcmp(argv[1], "--cli")) {
        enter(argv[3]);
        make_weights();
        return check_cli(argv[2]);
    }
    if (argc != 3) {
        fprintf(stderr, "usage: test_config WORK_DIR SOURCE_DIR | --reference FILE | --cli NOISESEARCH WORK_DIR\n");
        return 2;
    }
    char src[4096];
    NS_CHECK(realpath(argv[2], src));
    enter(argv[1]);
    make_weights();
    test_defaults();
    test_types();
    test_file_errors();
    test_overrides();
    test_round_trip();
    test_files();
    test_cross();
    test_shipped(src);
    printf("%s: %d failure(s)\n", failures ? "FAILED" : "PASSED", failures);
    return failures != 0;
}
