/*
 * ws.h - the backend WebSocket (WEBSOCKET_URL, BOT_TOKEN as a bearer token).
 *
 * One thread owns the libwebsockets context and the connection. The session hands it
 * envelopes (copied into a bounded queue) and takes the frames the backend sends (user
 * messages, interrupts, end of session) from an inbound queue, woken through a pipe it can
 * poll. While disconnected the thread reconnects with exponential backoff and jitter, and
 * the queue keeps what the session produced, in order, up to its cap; past the cap the
 * oldest messages are dropped, counted and logged.
 */
#ifndef CC_WS_H
#define CC_WS_H

#include <stddef.h>
#include <stdint.h>

struct cc_ws;

struct cc_ws_stats {
    uint64_t sent;     /* messages written to the socket */
    uint64_t dropped;  /* dropped from a full queue */
    uint64_t pending;  /* still queued */
    uint64_t connects; /* successful connections (1 + reconnects) */
    uint64_t received; /* inbound messages */
};

/* Starts the thread; it connects at once. `token` may be NULL. `max_pending` bounds the
 * queued bytes. NULL with err on a bad URL or when the thread cannot start. */
struct cc_ws *cc_ws_start(const char *url, const char *token, size_t max_pending, char *err,
                          size_t errlen);

/* Readable when inbound messages wait; drain with cc_ws_recv(). */
int cc_ws_fd(const struct cc_ws *ws);

/* Queues a copy of one text message. Never blocks on the network. */
void cc_ws_send(struct cc_ws *ws, const char *text, size_t len);

/* The next inbound message (caller frees), or NULL when none is waiting. */
char *cc_ws_recv(struct cc_ws *ws, size_t *len);

void cc_ws_stats(struct cc_ws *ws, struct cc_ws_stats *st);

/* Starts delivering what is queued and closing, for up to timeout_ms from now, without
 * waiting: the end of a session drains the backend while it flushes telemetry. */
void cc_ws_drain(struct cc_ws *ws, int timeout_ms);

/* Ends the drain now: what is still queued stays undelivered (cc_ws_close counts it).
 * Thread-safe while ws lives. Accepts NULL. */
void cc_ws_hurry(struct cc_ws *ws);

/* Delivers what is queued (connected, or able to reconnect in time) until the deadline of
 * an earlier cc_ws_drain() or else timeout_ms from now, closes the connection and stops the
 * thread. Idempotent. Accepts NULL. */
void cc_ws_finish(struct cc_ws *ws, int timeout_ms);

/* cc_ws_finish(), then frees everything. Returns the number of messages left undelivered.
 * Accepts NULL. */
uint64_t cc_ws_close(struct cc_ws *ws, int timeout_ms);

#endif
