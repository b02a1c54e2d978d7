/* cmd_engine_util.h — option parsing shared by the engine commands (model-info, generate,
 * logits, mkmodel): numbers with range checks and comma-separated token lists. */
#ifndef QC_DAEMON_CMD_ENGINE_UTIL_H
#define QC_DAEMON_CMD_ENGINE_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Parse a whole string as a number in [lo, hi]; 0 on success. */
int qc_cmd_parse_long(const char *s, long lo, long hi, long *out);
int qc_cmd_parse_u64(const char *s, uint64_t *out);
int qc_cmd_parse_float(const char *s, float lo, float hi, float *out);
/* "1,2,3" → malloc'd ids; 0 on success, -1 on a malformed list (empty items, non-digits,
 * values above INT32_MAX) or more than `max` ids. */
int qc_cmd_parse_tokens(const char *s, size_t max, int32_t **ids, size_t *n);

#endif
