/* log.h - the runner's log: one "ccrunner: ..." line on stderr per call (stdout carries only
 * the message stream). Lines are bounded at 1 KiB. */
#ifndef CC_LOG_H
#define CC_LOG_H

void cc_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
