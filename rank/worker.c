// The worker loop (worker.h).
#include "worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

worker_hello worker_hello_of(const executor *e) {
    worker_hello h = {.ok = 1, .dim = e->dim, .channels = executor_channels(e), .image_size = executor_image_size(e),
                      .fid_dim = e->fid_dim, .denoiser_flops = dit_forward_flops(&e->model.cfg),
                      .classifier_flops = verifier_set_flops_per_image(&e->vs, 0),
                      .evaluator_flops = verifier_set_flops_per_image(&e->vs, 1)};
    return h;
}

void worker_wait_message(MPI_Comm comm, int src, MPI_Status *status, long sleep_us) {
    for (;;) {
        int flag = 0;
        MPI_Iprobe(src, MPI_ANY_TAG, comm, &flag, status);
        if (flag) return;
        struct timespec ts = {0, sleep_us * 1000};
        nanosleep(&ts, NULL);
    }
}

static void send_error(MPI_Comm comm, const char *msg) {
    MPI_Send(msg, (int)strlen(msg) + 1, MPI_CHAR, 0, WORKER_TAG_ERROR, comm);
}

// Wait for STOP, discarding anything else (after an error).
static void wait_stop(MPI_Comm comm) {
    for (;;) {
        MPI_Status s;
        worker_wait_message(comm, 0, &s, 1000);
        int n;
        MPI_Get_count(&s, MPI_BYTE, &n);
        char *buf = malloc((size_t)n + 1);
        MPI_Recv(buf, n, MPI_BYTE, 0, s.MPI_TAG, comm, MPI_STATUS_IGNORE);
        free(buf);
        if (s.MPI_TAG == WORKER_TAG_STOP) return;
    }
}

int worker_main(MPI_Comm comm, const executor_config *cfg) {
    executor e;
    if (executor_init(&e, cfg)) {
        send_error(comm, ns_error_message());
        wait_stop(comm);
        return 1;
    }
    worker_hello h = worker_hello_of(&e);
    MPI_Send(&h, (int)sizeof h, MPI_BYTE, 0, WORKER_TAG_HELLO, comm);
    task_buffer in = {0}, out = {0};
    task *tasks = NULL;
    const float **payloads = NULL;
    result *results = NULL;
    int cap = 0, code = 0;
    for (;;) {
        MPI_Status s;
        worker_wait_message(comm, 0, &s, 500);
        int n;
        MPI_Get_count(&s, MPI_BYTE, &n);
        if ((size_t)n > in.cap) {
            free(in.data);
            in.cap = (size_t)n;
            in.data = ns_malloc(in.cap, "task bundle");
        }
        MPI_Recv(in.data, n, MPI_BYTE, 0, s.MPI_TAG, comm, MPI_STATUS_IGNORE);
        if (s.MPI_TAG == WORKER_TAG_STOP) break;
        NS_CHECK(s.MPI_TAG == WORKER_TAG_TASKS);
        // Unpack the bundle (payload pointers point into the received buffer).
        task_cursor c = {in.data, (size_t)n, 0};
        int count = 0, more;
        task t;
        const float *p;
        while ((more = task_next(&c, &t, &p, e.dim)) == 1) {
            if (count == cap) {
                cap = cap ? 2 * cap : 64;
                tasks = realloc(tasks, (size_t)cap * sizeof *tasks);
                payloads = realloc(payloads, (size_t)cap * sizeof *payloads);
                results = realloc(results, (size_t)cap * sizeof *results);
                NS_CHECK(tasks && payloads && results);
            }
            tasks[count] = t, payloads[count] = p, count++;
        }
        ns_status st = more < 0 ? ns_error_set(NS_ERR_FORMAT, "malformed task bundle from rank 0") : NS_OK;
        if (!st) st = executor_run(&e, tasks, payloads, count, results);
        if (st) {
            send_error(comm, ns_error_message());
            wait_stop(comm);
            code = 1;
            break;
        }
        task_buffer_reset(&out);
        for (int i = 0; i < count; i++) result_pack(&out, &tasks[i], &results[i], e.out + e.out_offset[i], e.dim);
        MPI_Send(out.data, (int)out.size, MPI_BYTE, 0, WORKER_TAG_RESULTS, comm);
    }
    free(tasks), free(payloads), free(results), free(in.data);
    task_buffer_free(&out);
    executor_free(&e);
    return code;
}
