/*
 * cost.c - a turn's cost, split exactly; see cost.h.
 */
#include "cost.h"

#include <math.h>
#include <string.h>

/* List-price ratios of Claude models: only used to split a model's known cost between its
 * calls, never to price anything. */
static const double W_IN = 1.0, W_OUT = 5.0, W_CR = 0.1, W_CW = 1.25;

double cc_cost_weight(const struct cc_usage *u)
{
    return W_IN * (double)u->in + W_OUT * (double)u->out + W_CR * (double)u->cr +
           W_CW * (double)u->cw;
}

static int same(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

static int positive(const struct cc_usage *u)
{
    return u->in > 0 || u->out > 0 || u->cr > 0 || u->cw > 0;
}

long long cc_cost_split(long long turn_pico, struct cc_cost_model *models, int nmodels,
                        struct cc_cost_call *calls, int ncalls)
{
    long long left = turn_pico;
    for (int k = 0; k < nmodels; k++) {
        struct cc_cost_model *m = &models[k];
        if (k == nmodels - 1) m->pico = left; /* the rounding rest of the per-model costs */
        left -= m->pico;

        /* What this model's calls account for: their tokens, and their exact costs. */
        long long free_pico = m->pico;
        double free_weight = 0;
        struct cc_usage rest = m->u;
        int nfree = 0;
        for (int i = 0; i < ncalls; i++) {
            if (!same(calls[i].model, m->model)) continue;
            rest.in -= calls[i].u.in;
            rest.out -= calls[i].u.out;
            rest.cr -= calls[i].u.cr;
            rest.cw -= calls[i].u.cw;
            if (calls[i].exact) {
                free_pico -= calls[i].pico;
            } else {
                free_weight += cc_cost_weight(&calls[i].u);
                nfree++;
            }
        }
        /* Streamed more than accounted (an aborted call counted by the stream): no rest. */
        int has_rest =
            positive(&rest) && rest.in >= 0 && rest.out >= 0 && rest.cr >= 0 && rest.cw >= 0;
        m->rest = has_rest ? rest : (struct cc_usage){0, 0, 0, 0};
        double rest_weight = has_rest ? (cc_cost_weight(&rest) > 0 ? cc_cost_weight(&rest) : 1) : 0;
        double total_weight = free_weight + rest_weight;

        /* Shares in proportion to the weights; the last part takes the rounding rest. */
        long long given = 0;
        int seen = 0;
        for (int i = 0; i < ncalls; i++) {
            if (!same(calls[i].model, m->model) || calls[i].exact) continue;
            seen++;
            if (seen == nfree && !has_rest) {
                calls[i].pico = free_pico - given;
            } else {
                double w = total_weight > 0 ? cc_cost_weight(&calls[i].u) / total_weight
                                            : 1.0 / (nfree + has_rest);
                calls[i].pico = (long long)floor((double)free_pico * w);
            }
            given += calls[i].pico;
        }
        /* The rest goes to the remainder; with no call free to take it, cost without tokens
         * is a remainder too (rest tokens zero), so nothing is lost. */
        m->rest_pico = (has_rest || nfree == 0) ? free_pico - given : 0;
    }
    /* Calls of a model modelUsage does not list: exact ones keep their cost, others 0. */
    long long placed = 0;
    for (int i = 0; i < ncalls; i++) {
        int listed = 0;
        for (int k = 0; k < nmodels && !listed; k++)
            listed = same(calls[i].model, models[k].model);
        if (!listed && !calls[i].exact) calls[i].pico = 0;
        placed += calls[i].pico;
    }
    for (int k = 0; k < nmodels; k++)
        placed += models[k].rest_pico;
    return turn_pico - placed;
}
