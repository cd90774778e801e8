/*
 * cost.h - a turn's cost, split exactly between the observations that carry it.
 *
 * Claude Code reports cost and tokens cumulatively (total_cost_usd, modelUsage) at each
 * result; a turn's numbers are the differences, per model. The turn's model calls are
 * known one by one (streamed usage; and, with Claude Code's own telemetry, each call's
 * exact cost). This splits each model's cost in the turn between its calls: a call whose
 * exact cost is known keeps it; the rest of the model's cost is shared by the other calls
 * in proportion to list-price weights of their tokens, with what modelUsage holds beyond
 * the calls (a subagent's calls, which Claude Code does not stream) as a remainder of its
 * own. Everything is in integer picodollars and the last part takes the rounding rest, so
 * the parts add up to the turn's cost exactly. Pure: no I/O, no allocation but the caller's.
 */
#ifndef CC_COST_H
#define CC_COST_H

#define CC_PICO 1e12 /* picodollars per dollar */

struct cc_usage {
    long long in, out, cr, cw; /* input (uncached), output, cache read, cache write */
};

/* One model call of the turn. */
struct cc_cost_call {
    const char *model; /* borrowed */
    struct cc_usage u; /* its tokens */
    int exact;         /* in: pico is its exact cost (Claude Code's own event) */
    long long pico;    /* in: the exact cost when `exact`; out: the cost it carries */
};

/* One model's share of the turn: modelUsage's difference to the previous result. */
struct cc_cost_model {
    const char *model;    /* borrowed */
    struct cc_usage u;    /* in: the turn's tokens of this model */
    long long pico;       /* in: the turn's cost of this model */
    struct cc_usage rest; /* out: tokens no call accounts for (all zero: none) */
    long long rest_pico;  /* out: the cost that goes with them */
};

/*
 * Splits the turn: fills calls[].pico and models[].rest / rest_pico. The models' costs are
 * first made to add up to `turn_pico` exactly (the last model takes the rounding rest).
 * Calls of a model that modelUsage does not list keep their exact cost, or get 0. A model's
 * cost that no call and no remaining token can carry (cost without tokens) is its
 * rest_pico with zero rest tokens. Returns turn_pico less everything placed (calls and
 * rests): 0 unless modelUsage is empty (then it is the whole turn) or lists fewer models
 * than the exact calls name; the caller puts it where the turn's total goes.
 */
long long cc_cost_split(long long turn_pico, struct cc_cost_model *models, int nmodels,
                        struct cc_cost_call *calls, int ncalls);

/* The list-price weight of some tokens (input 1, output 5, cache read 0.1, cache write 1.25). */
double cc_cost_weight(const struct cc_usage *u);

#endif
