/* log.c - see log.h. The line is formatted first and written with one call, so lines from
 * the session and the WebSocket threads never interleave mid-line. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>

void cc_log(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "ccrunner: %s\n", line);
}
