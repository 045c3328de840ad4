/*
 * The archive's decoding layers one by one, for tests/test_archive.c and
 * tests/fuzz/fuzz_archive.c: an index as it is after decompression, a block
 * payload as it is after decompression (with every tick converted through
 * a view), and a whole part file held in memory (footer, CRCs, zstd, then
 * both).  The daemon goes through archive.h only.
 */
#ifndef TKS_ARCHIVE_INTERNAL_H
#define TKS_ARCHIVE_INTERNAL_H

#include "archive.h"

/* Parses a decompressed index of part `part` of `day`, whose blocks must lie
 * in [header, data_end) of the file.  0, or -EBADMSG / -ENOMEM with err set.
 * *ticks (may be NULL) gets the ticks the index lists. */
int tks_archive_check_index(const void *raw, size_t len, int32_t day, uint32_t part,
                            uint64_t data_end, uint64_t *ticks, char *err, size_t errlen);

/* Decodes a decompressed block payload written under day_schema (count 0:
 * as many ticks as it says) and converts each tick through v, visiting it
 * (fn may be NULL) with the symbol it is given.  0, or -EBADMSG / -ENOMEM /
 * -ENOSPC with err set.  *ticks (may be NULL) gets the ticks decoded. */
int tks_archive_check_block(const struct tks_schema *day_schema, const void *raw, size_t len,
                            uint32_t count, const char *symbol, size_t symbol_len,
                            const struct tks_archive_view *v, tks_tick_fn fn, void *ctx,
                            uint64_t *ticks, char *err, size_t errlen);

/* A whole part file in memory (file[0..len)) of part `part` of `day`:
 * header, footer, index and every block checked and converted through v
 * (fn may be NULL).  0, or -EBADMSG / -ENOMEM / -ENOSPC with err set. */
int tks_archive_check_part(const void *file, size_t len, int32_t day, uint32_t part,
                           const struct tks_archive_view *v, tks_tick_fn fn, void *ctx,
                           uint64_t *ticks, char *err, size_t errlen);

/* For the fuzzer: a copy of a part file (*out, malloc'd) whose header,
 * footer, index and block CRCs are all made to match their bytes (the
 * index recompressed), so that only the other checks remain.  -EINVAL when
 * its footer does not locate an index that decompresses. */
int tks_archive_fix_crcs(const void *file, size_t len, uint8_t **out, size_t *out_len);

/* How the writer hands a block to zstd (for bench/archive_bench.c's A/B):
 * 1 (the default) one frame with a flush after each column, so that each
 * column gets zstd blocks (Huffman tables) of its own; 0 one frame in one
 * call.  Both read alike.  Process-wide: not for the daemon. */
void tks_archive_set_column_flush(int on);

#endif
