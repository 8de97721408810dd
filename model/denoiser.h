// The DiT as a sampler's velocity function: binds a model and its workspace
// into a sampler_model. Keeps dit.c free of sampler knowledge and sampler.c
// free of DiT knowledge.
#ifndef NS_DENOISER_H
#define NS_DENOISER_H

#include "dit.h"
#include "sampler.h"

typedef struct {
    const dit_model *model;
    dit_workspace *ws;  // its max_batch bounds the batches the model sees
} denoiser;

// The returned sampler_model points at d; d must outlive it.
sampler_model denoiser_sampler_model(denoiser *d);

#endif
