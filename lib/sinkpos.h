/*
 * The Kafka sink's position file (journal.dir/kafka-sink.position): the
 * journal position up to which Kafka acknowledged every tick, one line
 *   "tickslab-sink-position 1 <segment> <offset> <crc32c>\n"
 * with segment and offset in decimal and the CRC32C (8 lowercase hex
 * digits) of the bytes before the space that precedes it.  Written whole
 * (temp file, fsync, rename); the parser reads outside bytes and takes
 * nothing it does not check.
 */
#ifndef TKS_SINKPOS_H
#define TKS_SINKPOS_H

#include <stddef.h>
#include <stdint.h>

#define TKS_SINKPOS_FILE "kafka-sink.position"
#define TKS_SINKPOS_MAX 96 /* bytes of the longest line */

/* Writes the line for (segment, offset) into out; returns its length. */
size_t tks_sinkpos_format(char out[static TKS_SINKPOS_MAX], uint64_t segment, uint64_t offset);
/* Parses a whole file's bytes: 0 with *segment, *offset, or -EINVAL (not
 * exactly one such line, a number with a sign, leading zeros or over
 * UINT64_MAX, a CRC that does not match, anything after the newline). */
int tks_sinkpos_parse(const void *buf, size_t len, uint64_t *segment, uint64_t *offset);

#endif
