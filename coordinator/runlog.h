// The HDF5 run log: every candidate, score and chosen sample of a search
// run in one file that h5py, h5dump and HDFView read as-is, written by rank
// 0 only. docs/hdf5-layout.md is the user's description; this is the code's.
//
// Layout (every column an extendible chunked dataset, 1-D to 4-D, one row
// per record, appended together so row i of every column of a table is the
// same record; tensor columns shuffled + gzip 1):
//   /                      attributes: format "noisesearch-run-log", version,
//                          config_yaml (the file as given), resolved_config, results_config
//                          (every key), overrides, {model, classifier,
//                          evaluator, reference}_path and _sha256 ("" unused),
//                          ranks (P), algorithm, verifier, oracle (0/1),
//                          started (ISO 8601 UTC), finished ("" while running),
//                          status ("running", "complete", "interrupted", "failed: ..."),
//                          resumed (ISO times of each resume, space-separated),
//                          sample_shape (C, H, W), score_names. Strings are
//                          variable-length UTF-8 (h5py reads str).
//   /candidates/           search, candidate, label, round, parent (int64/int32),
//                          noise_stream, noise_base (uint64; the noise is Philox
//                          (run seed, noise_stream) from counter noise_base),
//                          t_a, t_b (float32), nfe (int32), scores (n, VERIFIER_KINDS
//                          float64, NaN where not computed), score (float64, what
//                          the algorithm compared), worker (int32), seconds,
//                          verifier_seconds (float64); optional noise (n, C, H, W)
//                          and x1_hat (n, C, H, W), float32, gzip.
//   /searches/             search, label, index (int64/int32), chosen (int64),
//                          candidates (int64), first_candidate_row (int64: rows
//                          [first, first + candidates) of /candidates), search_nfe,
//                          final_nfe (int64), verifier_nfe (float64, denoiser-NFE
//                          equivalents), verifier_seconds, wall_seconds, score
//                          (float64), sample (n, C, H, W float32, gzip: the final sample);
//                          optional fid_features (n, D float32, gzip) for fid_oracle runs.
//   /trajectories/         optional: candidate_row (int64), t (float32),
//                          state (n, C, H, W float32, gzip)
// Units and meanings are attributes ("units", "description") of each dataset.
// Fill values (what a row not yet written reads as): -1 for signed integers,
// 0 for unsigned, NaN for floats.
//
// Crash safety: the file is written with SWMR (HDF5 single-writer /
// multiple-reader), so it is readable at every moment, also by a live
// reader, and after a SIGKILL. A search's candidate rows, trajectory rows
// and its /searches row are appended by one runlog_add call; /searches is
// written last (and /searches/search last of its columns), so a search is
// complete in the log exactly when its /searches/search row holds its id
// (not the fill value -1). runlog_flush makes everything added so far
// durable (and fsyncs). Resume truncates rows past the last complete search
// (a search cut by a kill) and reports which searches are done.
#ifndef NS_RUNLOG_H
#define NS_RUNLOG_H

#include <hdf5.h>
#include <stdint.h>

#include "../common/status.h"
#include "../verifiers/verifier.h"

#define RUNLOG_FORMAT "noisesearch-run-log"

typedef struct {
    const char *config_yaml;      // the config file's text
    const char *resolved_yaml;    // search_config_to_yaml
    const char *results_yaml;     // the same without the keys that cannot change results (compared on resume)
    const char *overrides;        // the command-line overrides, space-separated ("" for none)
    const char *model_path, *classifier_path, *evaluator_path, *reference_path;  // NULL or "" when unused
    const char *algorithm, *verifier;  // names for tables ("random", "ensemble(class_logit,self_similarity)")
    int oracle;                   // the run uses the evaluator
    int ranks;                    // P
    int channels, height, width;  // sample shape
    int fid_dim;                  // evaluator feature dim for fid_oracle runs, else 0
    double denoiser_flops;        // FLOPs of one denoiser forward of one sample (the cost of an NFE)
    int log_noise, log_x1_hat, log_trajectories;  // which optional columns exist
} runlog_meta;

typedef struct {
    int64_t search, candidate;
    int32_t label, round;
    int64_t parent;               // -1: none
    uint64_t noise_stream, noise_base;
    float t_a, t_b;
    int32_t nfe;
    double scores[VERIFIER_KINDS];
    double score;
    int32_t worker;
    double seconds, verifier_seconds;
    const float *noise;           // (C*H*W) or NULL (required when meta.log_noise)
    const float *x1_hat;          // (C*H*W) or NULL (required when meta.log_x1_hat)
    const float *trajectory;      // (n_trajectory, C*H*W) or NULL
    const float *trajectory_t;    // (n_trajectory)
    int n_trajectory;
} runlog_candidate;

typedef struct {
    int64_t search;
    int32_t label, index;
    int64_t chosen;
    int64_t search_nfe, final_nfe;
    double verifier_nfe, verifier_seconds, wall_seconds, score;
    const float *sample;          // (C*H*W)
    const float *fid_features;    // (fid_dim) when meta.fid_dim > 0
} runlog_search;

#define RUNLOG_MAX_COLUMNS 24

// One table (/candidates, /searches or /trajectories) while open: a dataset
// per column and the rows added but not yet written (implementation detail).
typedef struct {
    hid_t dset[RUNLOG_MAX_COLUMNS];           // H5I_INVALID_HID for a column this log lacks
    unsigned char *buf[RUNLOG_MAX_COLUMNS];   // cap rows of each column
    int64_t cap, pending, in_file;            // buffer rows, rows buffered, rows already in the file
} runlog_table;

typedef struct {
    hid_t file;
    char path[4096];
    runlog_meta meta;             // strings not owned (valid during create/resume only)
    int dim, fid_dim;
    int log_noise, log_x1_hat, log_trajectories;
    int64_t n_candidates, n_searches, n_trajectory_rows;  // rows added (written or buffered)
    int64_t dropped_candidates, dropped_trajectory_rows;  // runlog_resume: rows of a search cut short
    int failed;                   // a write failed: later adds and flushes refuse
    runlog_table cand, srch, traj;
    double last_flush;            // ns_now() of the last runlog_flush
} runlog;

// A new log at path. An existing file is refused (NS_ERR_ARG, "PATH exists;
// pass --resume to continue it or --overwrite to replace it") unless
// overwrite. An unwritable path, missing directory or full disk is NS_ERR_IO
// naming the path; a weight file in m that cannot be read (for its SHA-256)
// is NS_ERR_IO naming that file. The log is built as PATH.tmp.PID and
// renamed into place, so a failed create leaves no file (and --overwrite
// keeps the old log until the new one exists). Starts SWMR writing. On
// failure l is closed (runlog_close on it is a no-op).
ns_status runlog_create(runlog *l, const char *path, const runlog_meta *m, int overwrite);

// Continue the log at path, also one whose writer was SIGKILLed: the
// results config must equal m->results_yaml (else NS_ERR_ARG saying which
// first line differs), the weight files must have the logged SHA-256 and the
// sample shape and logged columns must match (NS_ERR_ARG / NS_ERR_FORMAT);
// these checks run on a read-only open, so a refused resume leaves the file
// untouched. Then rows past the last complete search are dropped (counted in
// l->dropped_*), status is set back to "running", "resumed" gets the time
// and "ranks" m->ranks. *done (malloc'ed, *n_done entries) lists the search
// ids already complete, in row order. Starts SWMR writing. NS_ERR_IO when the
// file cannot be opened for writing (a live reader holds it). Must not be
// run while the log's writer is still alive: nothing can tell a live writer
// from a killed one.
ns_status runlog_resume(runlog *l, const char *path, const runlog_meta *m, int64_t **done, int64_t *n_done);

// Read back row `row` of /searches (for rebuilding state on resume, e.g. the
// fid_oracle selected set): search id, label and, when fid_features is not
// NULL, the feature row (fid_dim floats). Any output may be NULL.
ns_status runlog_read_search(runlog *l, int64_t row, int64_t *search, int32_t *label, float *fid_features);

// Append one whole search: its candidates (n rows, in the given order), their
// trajectories, then its /searches row. Rows are buffered (a few MiB per
// table, fixed) and reach the file when a buffer fills; not yet durable until
// runlog_flush. A NULL tensor (noise, x1_hat, sample, fid_features) is
// logged as NaN. After a failed write every add and flush is NS_ERR_IO.
ns_status runlog_add(runlog *l, const runlog_search *s, const runlog_candidate *c, int n);

// Make everything added durable: candidate and trajectory columns written
// and H5Dflush'ed, fsync, then the /searches columns, H5Fflush, fsync.
ns_status runlog_flush(runlog *l);

// End the run: flush, set finished and status ("complete", "interrupted",
// or "failed: MESSAGE"; NULL: "complete") in place (allowed under SWMR, so
// a live reader does not block it), close. Returns the first error (a failed
// flush is reported, the status is still written). Safe after a failed
// create, on a zeroed struct, and twice.
ns_status runlog_close(runlog *l, const char *status);

// SHA-256 of a file as 64 lowercase hex digits into hex (65 bytes).
ns_status runlog_sha256_file(const char *path, char hex[65]);

#endif
