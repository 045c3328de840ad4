/*
 * `tickslab stats [SECTION]`: the daemon's figures, all or one top-level
 * group (memory, ticks, journal, ...; the control request `stats text
 * SECTION`, as Redis answers `INFO memory`), as text lines, JSON or
 * Prometheus text.  `stats slabs` is printed as a table of the slab
 * classes, memcached's `stats slabs` columns, unless a format is asked for.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char stats_help[] =
    "Usage: tickslab stats [SECTION] [--text | --json | --prometheus] [--slabs]\n"
    "\n"
    "Prints the daemon's statistics, all of them or one section (a top-level\n"
    "group of the stats JSON: memory, ticks, journal, ingest, store,\n"
    "subscribe, connections, ...; an unknown one is an error that lists them):\n"
    "  --text         'dotted.name value' lines (the default; request\n"
    "                 'stats text [SECTION]')\n"
    "  --json         one JSON object (request 'stats [SECTION]')\n"
    "  --prometheus   Prometheus text exposition (request 'stats prometheus')\n"
    "  --slabs        the same as the section slabs: the slab classes as a table\n"
    "                 (class, chunk_size, chunks_per_page, total_pages,\n"
    "                 total_chunks, used_chunks, free_chunks, free_chunks_end,\n"
    "                 mem_requested, waste_bytes) and the totals; with --json\n"
    "                 the JSON of 'stats slabs', with --text its lines\n";

/* One slab class of `stats text slabs`. */
struct slab_class {
  unsigned id;
  uint64_t v[9];
};

static const char *const slab_cols[9] = {
    "chunk_size",  "chunks_per_page", "total_pages",   "total_chunks", "used_chunks",
    "free_chunks", "free_chunks_end", "mem_requested", "waste_bytes",
};

/* Prints the lines of `stats text slabs` as a table.  0 or -1 (printed). */
static int print_slabs_table(const char *text) {
  struct slab_class *cls = NULL;
  size_t n = 0, cap = 0;
  const char *line = text;
  while (line && *line) {
    const char *nl = strchr(line, '\n');
    size_t ll = nl ? (size_t)(nl - line) : strlen(line);
    static const char pre[] = "slabs.classes.";
    unsigned id;
    char field[40];
    unsigned long long v;
    int used = 0;
    if (ll > sizeof pre && strncmp(line, pre, sizeof pre - 1) == 0 &&
        sscanf(line + sizeof pre - 1, "%u.%39[a-z_] %llu%n", &id, field, &v, &used) == 3) {
      if (n == 0 || cls[n - 1].id != id) {
        if (n == cap) {
          size_t nc = cap ? cap * 2 : 16;
          struct slab_class *c2 = realloc(cls, nc * sizeof *c2);
          if (!c2) {
            free(cls);
            cli_err("out of memory");
            return -1;
          }
          cls = c2;
          cap = nc;
        }
        memset(&cls[n], 0, sizeof cls[n]);
        cls[n++].id = id;
      }
      for (unsigned k = 0; k < 9; k++)
        if (strcmp(field, slab_cols[k]) == 0) cls[n - 1].v[k] = v;
    }
    line = nl ? nl + 1 : NULL;
  }
  printf("%5s %10s %15s %11s %12s %11s %11s %15s %13s %11s\n", "class", "chunk_size",
         "chunks_per_page", "total_pages", "total_chunks", "used_chunks", "free_chunks",
         "free_chunks_end", "mem_requested", "waste_bytes");
  for (size_t i = 0; i < n; i++) {
    const uint64_t *v = cls[i].v;
    printf("%5u %10llu %15llu %11llu %12llu %11llu %11llu %15llu %13llu %11llu\n", cls[i].id,
           (unsigned long long)v[0], (unsigned long long)v[1], (unsigned long long)v[2],
           (unsigned long long)v[3], (unsigned long long)v[4], (unsigned long long)v[5],
           (unsigned long long)v[6], (unsigned long long)v[7], (unsigned long long)v[8]);
  }
  free(cls);
  uint64_t page = 0, pages = 0, malloced = 0, active = 0;
  cli_stats_u64(text, "slabs.page_size", &page);
  cli_stats_u64(text, "slabs.total_pages", &pages);
  cli_stats_u64(text, "slabs.total_malloced", &malloced);
  cli_stats_u64(text, "slabs.active_classes", &active);
  printf("active_classes %llu, total_pages %llu, total_malloced %llu bytes, page_size %llu\n",
         (unsigned long long)active, (unsigned long long)pages, (unsigned long long)malloced,
         (unsigned long long)page);
  return 0;
}

int cli_cmd_stats(struct cli *c, int argc, char **argv) {
  static const struct {
    const char *flag;
    const char *request;
  } kinds[] = {
      {"--text", "stats text"},
      {"--json", "stats"},
      {"--prometheus", "stats prometheus"},
  };
  const char *request = NULL, *flag = NULL, *section = NULL;
  bool slabs = false;
  for (int i = 1; i < argc;) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      fputs(stats_help, stdout);
      return CLI_OK;
    }
    if (strcmp(a, "--slabs") == 0) {
      slabs = true;
      i++;
      continue;
    }
    bool matched = false;
    for (unsigned k = 0; k < TKS_ARRAY_SIZE(kinds); k++)
      if (strcmp(a, kinds[k].flag) == 0) {
        if (flag && strcmp(flag, kinds[k].flag) != 0) {
          cli_err("stats: %s and %s cannot be combined", flag, kinds[k].flag);
          return CLI_USAGE;
        }
        flag = kinds[k].flag;
        request = kinds[k].request;
        matched = true;
      }
    if (matched) {
      i++;
      continue;
    }
    int r = cli_global_opt(c, argc, argv, &i);
    if (r < 0) return CLI_USAGE;
    if (r > 0) continue;
    if (a[0] == '-' || section) {
      cli_err("stats: unexpected argument '%s' (see tickslab stats --help)", a);
      return CLI_USAGE;
    }
    /* A section is one word of letters, digits and _ (as stats paths are). */
    size_t l = strlen(a);
    if (l == 0 || l > 63 || a[strspn(a, "abcdefghijklmnopqrstuvwxyz0123456789_")] != '\0') {
      cli_err("stats: bad section '%s' (a word such as memory, ticks, journal)", a);
      return CLI_USAGE;
    }
    section = a;
    i++;
  }
  if (slabs && section && strcmp(section, "slabs") != 0) {
    cli_err("stats: --slabs and the section '%s' cannot be combined", section);
    return CLI_USAGE;
  }
  if (slabs) section = "slabs";
  bool table = section && strcmp(section, "slabs") == 0 && !flag;
  char req[128];
  snprintf(req, sizeof req, "%s%s%s",
           table     ? "stats text"
           : request ? request
                     : "stats text",
           section ? " " : "", section ? section : "");

  const char *path;
  if (cli_control_socket(c, &path)) return CLI_FAIL;
  struct cli_ctl ctl;
  if (cli_ctl_open(&ctl, path, c->timeout_ms)) return CLI_FAIL;
  struct tks_buf resp = {0};
  int rc = CLI_FAIL;
  if (cli_ctl_ask(&ctl, req, &resp)) goto out;
  const char *body = resp.data ? resp.data : "";
  if (table) {
    if (print_slabs_table(body)) goto out;
  } else {
    fwrite(body, 1, resp.len, stdout);
  }
  rc = fflush(stdout) == 0 ? CLI_OK : CLI_FAIL;
  if (rc) cli_err("write to stdout: %s", strerror(errno));
out:
  tks_buf_finish(&resp);
  cli_ctl_close(&ctl);
  return rc;
}
