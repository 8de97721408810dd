// rank/: the task and result wire format round-trips exactly and rejects a
// truncated buffer; the executor's result for a task equals a direct
// sampler run from the same noise (so a task means what task.h says), and
// does not depend on the batch it is grouped into; re-noising a state then
// integrating matches sampler_renoise + sampler_run.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "expect.h"
#include "model/dit_io.h"
#include "model/dit_train.h"
#include "model/gemm.h"
#include "rank/executor.h"

static task make_task(int64_t cand, int label, int start) {
    task t = {.search = 3, .candidate = cand, .label = label, .start = start, .noise = {11, (uint64_t)label << 32 | 2},
              .noise_base = (uint64_t)cand << 32, .state_t = 0.7f, .t_a = start ? 0.4f : 0.0f, .t_b = 1.0f,
              .sampler = SAMPLER_HEUN, .steps = 3, .cfg_scale = 1.0f, .want = TASK_WANT_END | TASK_WANT_X1_HAT,
              .trajectory_stride = 1};
    return t;
}

static void test_wire(void) {
    int dim = 5;
    task_buffer b = {0};
    float state[5] = {1, 2, 3, 4, 5};
    task t0 = make_task(0, 1, TASK_FROM_NOISE), t1 = make_task(1, 2, TASK_FROM_STATE);
    task_pack(&b, &t0, NULL, dim);
    task_pack(&b, &t1, state, dim);
    task_cursor c = {b.data, b.size, 0};
    task t;
    const float *p;
    EXPECT(task_next(&c, &t, &p, dim) == 1 && !memcmp(&t, &t0, sizeof t) && p == NULL, "task 0 round trip");
    EXPECT(task_next(&c, &t, &p, dim) == 1 && !memcmp(&t, &t1, sizeof t) && p && !memcmp(p, state, sizeof state),
           "task 1 round trip with its state");
    EXPECT(task_next(&c, &t, &p, dim) == 0, "end of bundle");
    task_cursor cut = {b.data, b.size - 8, 0};
    EXPECT(task_next(&cut, &t, &p, dim) == 1 && task_next(&cut, &t, &p, dim) == -1, "truncated bundle rejected");

    task_buffer_reset(&b);
    result r = {.search = 3, .candidate = 1, .worker = 2, .nfe = 6, .n_trajectory = 2, .seconds = 0.5};
    for (int k = 0; k < VERIFIER_KINDS; k++) r.scores[k] = k * 0.25;
    t1.want |= TASK_WANT_TRAJECTORY;
    size_t n = result_payload_floats(&t1, &r, dim);
    EXPECT(n == 2 * 5 + 2 * 5 + 2, "payload size %zu", n);
    float *payload = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) payload[i] = (float)i / 3.0f;
    result_pack(&b, &t1, &r, payload, dim);
    c = (task_cursor){b.data, b.size, 0};
    result r2;
    EXPECT(result_next(&c, &t, &r2, &p, dim) == 1 && !memcmp(&r, &r2, sizeof r) && !memcmp(p, payload, n * 4),
           "result round trip");
    free(payload);
    task_buffer_free(&b);
}

// A small random denoiser saved to a file, as a worker would load it.
static const char *write_model(const char *dir, char *path, size_t size) {
    dit_config cfg = {.input_size = 8, .in_channels = 1, .patch_size = 4, .depth = 1, .hidden_size = 16,
                      .num_heads = 2, .num_classes = 10, .mlp_ratio = 4.0f};
    dit_model m;
    NS_CHECK(!dit_model_init(&m, &cfg));
    dit_train_init_weights(&m, 5);
    // adaLN-Zero initialises the blocks to identity: perturb every weight so
    // the model is not trivial.
    noise_fill(m.memory, m.num_params, (noise_key){9, 9}, 0);
    for (size_t i = 0; i < m.num_params; i++) m.memory[i] *= 0.2f;
    snprintf(path, size, "%s/task_model.h5", dir);
    NS_CHECK(!dit_save(&m, path));
    dit_model_free(&m);
    return path;
}

static void test_executor(const char *dir) {
    char path[4096];
    executor_config cfg = {.model_path = write_model(dir, path, sizeof path), .max_batch = 4, .threads = 1};
    executor e;
    NS_CHECK(!executor_init(&e, &cfg));
    int d = e.dim;
    // Six tasks, two shapes, in one call (groups of <= 4).
    task tasks[6];
    const float *payloads[6] = {0};
    float *states = malloc(6 * (size_t)d * sizeof(float));
    for (int i = 0; i < 6; i++) {
        tasks[i] = make_task(i, i % 10, i % 2 ? TASK_FROM_STATE : TASK_FROM_NOISE);
        noise_fill(states + (size_t)i * d, (size_t)d, (noise_key){77, (uint64_t)i}, 0);
        payloads[i] = states + (size_t)i * d;
    }
    result res[6];
    NS_CHECK(!executor_run(&e, tasks, payloads, 6, res));
    float *out = malloc(6 * 2 * (size_t)d * sizeof(float));
    memcpy(out, e.out, 6 * 2 * (size_t)d * sizeof(float));
    size_t offs[6];
    memcpy(offs, e.out_offset, sizeof offs);

    // The same tasks one at a time: the same bits.
    for (int i = 0; i < 6; i++) {
        result r;
        NS_CHECK(!executor_run(&e, &tasks[i], &payloads[i], 1, &r));
        EXPECT(!memcmp(e.out, out + offs[i], 2 * (size_t)d * sizeof(float)), "task %d alone differs from its batch", i);
        EXPECT(r.nfe == res[i].nfe, "task %d nfe", i);
    }
    // Direct sampler runs (from noise; from a re-noised state).
    sampler_workspace sws = {0};
    NS_CHECK(!sampler_workspace_init(&sws, d, 1));
    float *x = malloc((size_t)d * sizeof(float));
    for (int i = 0; i < 2; i++) {
        const task *t = &tasks[i];
        if (t->start == TASK_FROM_NOISE) {
            noise_fill(x, (size_t)d, t->noise, t->noise_base);
        } else {
            memcpy(x, payloads[i], (size_t)d * sizeof(float));
            NS_CHECK(!sampler_renoise(&sws, x, 1, t->state_t, t->t_a, &t->noise, t->noise_base));
        }
        sampler_params sp = {.kind = SAMPLER_HEUN, .steps = t->steps, .t_a = t->t_a, .t_b = t->t_b, .cfg_scale = 1.0f};
        int label = t->label, nfe = 0;
        NS_CHECK(!sampler_run(&e.sm, &sp, &sws, x, &label, 1, &t->noise, t->noise_base + (uint64_t)d, NULL, NULL,
                              &nfe));
        EXPECT(!memcmp(x, out + offs[i], (size_t)d * sizeof(float)), "task %d: end state != direct sampler run", i);
        EXPECT(nfe == res[i].nfe && nfe == 6, "task %d: nfe %d vs %d", i, res[i].nfe, nfe);
    }
    free(x), free(states), free(out);
    sampler_workspace_free(&sws);
    executor_free(&e);
}

int main(void) {
    if (gemm_setup(1)) return 1;
    char dir[] = "/tmp/ns_task_XXXXXX";
    NS_CHECK(mkdtemp(dir));
    test_wire();
    test_executor(dir);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) printf("note: could not remove %s\n", dir);
    printf("%s: %d failed checks\n", failures ? "FAILED" : "PASSED", failures);
    return failures != 0;
}
