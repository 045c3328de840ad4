/*
 * What every part of the CLI uses: the one error line on stderr (cli_err)
 * and the option parsing: `--name VALUE` / `--name=VALUE`, the global
 * options (--socket, --config, --connect, --timeout) and the fleet's
 * (--brokers, --nodes-topic, --topic), counts with k/M/G and seconds.  Calls nothing of cli/ but lib/, so any CLI file may call it.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

void cli_err(const char *fmt, ...) {
  fflush(stdout);
  va_list ap;
  va_start(ap, fmt);
  tks_vwrite_line(2048, "tickslab: ", fmt, ap);
  va_end(ap);
}

int cli_opt_value(int argc, char **argv, int *i, const char *name, const char **value) {
  const char *a = argv[*i];
  size_t nl = strlen(name);
  if (strncmp(a, name, nl) != 0) return 0;
  if (a[nl] == '=') {
    *value = a + nl + 1;
    (*i)++;
    return 1;
  }
  if (a[nl] != '\0') return 0;
  if (*i + 1 >= argc) {
    cli_err("option %s needs a value (see tickslab --help)", name);
    return -1;
  }
  *value = argv[*i + 1];
  *i += 2;
  return 1;
}

int cli_parse_count(const char *s, uint64_t *out) {
  if (!s || *s < '0' || *s > '9') return -EINVAL;
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s) return -EINVAL;
  double mult = 1;
  if (*end == 'k' || *end == 'K')
    mult = 1e3, end++;
  else if (*end == 'M')
    mult = 1e6, end++;
  else if (*end == 'G')
    mult = 1e9, end++;
  if (*end) return -EINVAL;
  v *= mult;
  if (!(v >= 0) || v >= 1.8e19 || v != floor(v)) return -EINVAL;
  *out = (uint64_t)v;
  return 0;
}

int cli_parse_seconds(const char *s, double *out) {
  if (!s || ((*s < '0' || *s > '9') && *s != '.')) return -EINVAL;
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !isfinite(v) || v < 0) return -EINVAL;
  *out = v;
  return 0;
}

int cli_global_opt(struct cli *c, int argc, char **argv, int *i) {
  const char *v = NULL;
  int r;
  if ((r = cli_opt_value(argc, argv, i, "--socket", &v)) != 0) {
    if (r > 0) c->socket_opt = v;
    return r;
  }
  if ((r = cli_opt_value(argc, argv, i, "--config", &v)) != 0) {
    if (r > 0) c->config_opt = v;
    return r;
  }
  if ((r = cli_opt_value(argc, argv, i, "--connect", &v)) != 0) {
    if (r > 0) c->connect_opt = v;
    return r;
  }
  if ((r = cli_opt_value(argc, argv, i, "--timeout", &v)) != 0) {
    if (r < 0) return r;
    double s;
    if (cli_parse_seconds(v, &s) || s <= 0 || s > 86400) {
      cli_err("bad --timeout '%s': want seconds, more than 0", v);
      return -1;
    }
    c->timeout_ms = (int)ceil(s * 1000);
    c->timeout_set = true;
    return 1;
  }
  return 0;
}

int cli_fleet_opt(int argc, char **argv, int *i, struct cli_fleet_opts *f) {
  static const char *const names[] = {"--brokers", "--nodes-topic", "--topic"};
  const char **slots[] = {&f->brokers, &f->nodes_topic, &f->topic};
  for (unsigned k = 0; k < TKS_ARRAY_SIZE(names); k++) {
    const char *v = NULL;
    int r = cli_opt_value(argc, argv, i, names[k], &v);
    if (r < 0) return r;
    if (r == 0) continue;
    if (!v[0]) {
      cli_err("option %s needs a value (see tickslab --help)", names[k]);
      return -1;
    }
    *slots[k] = v;
    return 1;
  }
  return 0;
}
