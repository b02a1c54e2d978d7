/* chat_format.h — internal: the Qwen3-Coder prompt renderer and Python-compatible value
 * printing (str(), repr(), json.dumps) that the template relies on. */
#ifndef QC_AGENT_CHAT_FORMAT_H
#define QC_AGENT_CHAT_FORMAT_H

#include <jansson.h>
#include <stddef.h>

#include "common/common.h"

/* Append the rendering of `messages` (a JSON array of OpenAI-style messages) with `tools`
 * (array or NULL) to `out`. Returns AGENT_OK or AGENT_EFORMAT/AGENT_ENOMEM (*errmsg set for
 * EFORMAT when errmsg is non-NULL). */
int agent__render(qc_buf *out, const json_t *messages, const json_t *tools, int add_generation_prompt,
                  char **errmsg);

/* Python's str(v), repr(v) and json.dumps(v, ensure_ascii=False) of a JSON value (objects
 * in insertion order, floats printed as Python prints them). Return QC_OK or a QC_E*. */
int agent__py_str(qc_buf *b, const json_t *v);
int agent__py_repr(qc_buf *b, const json_t *v);
int agent__py_json(qc_buf *b, const json_t *v);
/* Python's repr() of a float into `out` (>= 32 bytes). */
void agent__py_float_repr(double x, char *out, size_t n);
/* Python's str.strip(): the [*start, *start + return) span of s without leading and
 * trailing Unicode whitespace. */
size_t agent__py_strip(const char *s, size_t n, size_t *start);

/* The text of a message's "content": a string as is, null/absent as "", an array of
 * content parts as the concatenation of their "text"; other values as Python str().
 * Appended to `b`. */
int agent__content_text(qc_buf *b, const json_t *content);

#endif
