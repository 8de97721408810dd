// Task and result wire format (see task.h). Items are 8-byte aligned so a
// payload pointer into a received buffer is a valid float pointer.
#include "task.h"

#include <stdlib.h>
#include <string.h>

#include "../common/status.h"

#define ALIGN8(n) (((n) + 7u) & ~(size_t)7u)

size_t task_payload_floats(const task *t, int dim) { return t->start == TASK_FROM_STATE ? (size_t)dim : 0; }

result_layout result_layout_of(const task *t, const result *r, int dim) {
    result_layout l = {0};
    size_t at = 0, d = (size_t)dim;
    l.end = at, at += t->want & TASK_WANT_END ? d : 0;
    l.x1_hat = at, at += t->want & TASK_WANT_X1_HAT ? d : 0;
    l.start = at, at += t->want & TASK_WANT_START ? d : 0;
    l.fid = at, at += (size_t)r->fid_dim;
    l.trajectory = at, at += (size_t)r->n_trajectory * d;
    l.trajectory_t = at, at += (size_t)r->n_trajectory;
    l.total = at;
    return l;
}

size_t result_payload_floats(const task *t, const result *r, int dim) { return result_layout_of(t, r, dim).total; }

void task_buffer_free(task_buffer *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

void task_buffer_reset(task_buffer *b) { b->size = 0; }

static void *grow(task_buffer *b, size_t n) {
    if (b->size + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->size + n) cap *= 2;
        unsigned char *p = realloc(b->data, cap);
        NS_CHECK(p != NULL);
        b->data = p, b->cap = cap;
    }
    void *at = b->data + b->size;
    memset(at, 0, n);
    b->size += n;
    return at;
}

static void put(task_buffer *b, const void *src, size_t n) { memcpy(grow(b, ALIGN8(n)), src, n); }

void task_pack(task_buffer *b, const task *t, const float *payload, int dim) {
    put(b, t, sizeof *t);
    size_t n = task_payload_floats(t, dim);
    if (n) put(b, payload, n * sizeof(float));
}

void result_pack(task_buffer *b, const task *t, const result *r, const float *payload, int dim) {
    put(b, t, sizeof *t);
    put(b, r, sizeof *r);
    size_t n = result_payload_floats(t, r, dim);
    if (n) put(b, payload, n * sizeof(float));
}

static int take(task_cursor *c, void *dst, size_t n) {
    if (c->pos + ALIGN8(n) > c->size) return -1;
    memcpy(dst, c->data + c->pos, n);
    c->pos += ALIGN8(n);
    return 0;
}

static int take_payload(task_cursor *c, const float **payload, size_t n) {
    *payload = NULL;
    if (!n) return 0;
    size_t bytes = ALIGN8(n * sizeof(float));
    if (c->pos + bytes > c->size) return -1;
    *payload = (const float *)(const void *)(c->data + c->pos);
    c->pos += bytes;
    return 0;
}

int task_next(task_cursor *c, task *t, const float **payload, int dim) {
    if (c->pos == c->size) return 0;
    if (take(c, t, sizeof *t) || take_payload(c, payload, task_payload_floats(t, dim))) return -1;
    return 1;
}

int result_next(task_cursor *c, task *t, result *r, const float **payload, int dim) {
    if (c->pos == c->size) return 0;
    if (take(c, t, sizeof *t) || take(c, r, sizeof *r)) return -1;
    if (r->n_trajectory < 0 || r->fid_dim < 0) return -1;
    if (take_payload(c, payload, result_payload_floats(t, r, dim))) return -1;
    return 1;
}
