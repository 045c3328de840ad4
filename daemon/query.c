/*
 * Reading ticks back on the control socket: last, range, symbols, and the
 * schema advice.  (Being written.)
 */
#include "daemon.h"

int tks_query_handle(struct tks_server *srv, const char *line, struct tks_buf *out) {
  (void)srv;
  (void)line;
  (void)out;
  return 0;
}
