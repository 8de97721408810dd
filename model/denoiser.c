// DiT → sampler_model adapter (see denoiser.h).
#include "denoiser.h"

static ns_status denoiser_velocity(void *ctx, float *v, const float *x, const float *t, const int *y, int B) {
    denoiser *d = ctx;
    dit_forward(d->model, d->ws, v, x, t, y, B);
    return NS_OK;
}

sampler_model denoiser_sampler_model(denoiser *d) {
    const dit_config *c = &d->model->cfg;
    return (sampler_model){.ctx = d,
                           .velocity = denoiser_velocity,
                           .dim = dit_sample_dim(c),
                           .channels = c->in_channels,
                           .null_class = c->num_classes,
                           .max_batch = d->ws->max_batch};
}
