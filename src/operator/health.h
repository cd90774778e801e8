/*
 * /healthz and /readyz for the kubelet's probes, from a thread of their own so that a
 * probe is answered while the loop waits on the API server. /healthz is 200 while the loop
 * has turned within the last CO_HEALTH_STALE_MS (it turns at least every second, and a
 * request is bounded to 10 s), 503 after; /readyz is 200 once every cache is listed.
 */
#ifndef CO_HEALTH_H
#define CO_HEALTH_H

#include "reconcile.h"

#define CO_HEALTH_STALE_MS 60000

struct co_health;

/* Listens on addr ("HOST:PORT"; port 0 picks one) and serves from a thread. live is
 * borrowed until co_health_stop. NULL with err on a bad address or a failed bind. */
struct co_health *co_health_start(const char *addr, struct co_liveness *live, char *err,
                                  size_t errlen);
int co_health_port(const struct co_health *h); /* the port bound */
void co_health_stop(struct co_health *h);      /* NULL-safe: stops, joins and frees */

#endif
