/* toolcall_parser.h — internal: the streaming parser for Qwen3-Coder tool calls (design
 * notes at the top of toolcall_parser.c). */
#ifndef QC_AGENT_TOOLCALL_PARSER_H
#define QC_AGENT_TOOLCALL_PARSER_H

#include <jansson.h>
#include <stddef.h>

#include "agent/limits.h"

enum {
  AGENT__CALL_UNCLOSED = 1u << 0,   /* ended by the end of the stream, not by </function> */
  AGENT__CALL_NATIVE = 1u << 1,     /* came from a server's native tool_calls */
};

typedef struct agent__call {
  char *id;        /* set by the caller (loop); NULL from the parser unless native */
  char *name;      /* never NULL ("" when the name could not be read) */
  json_t *args;    /* a JSON object, never NULL, in the order the model wrote them */
  char *error;     /* NULL when the call is well-formed and valid for its schema; else the
                      message the model reads instead of running the tool */
  char *raw;       /* the call's text as the model wrote it (excerpt, bounded) */
  unsigned flags;
} agent__call;

void agent__call_free(agent__call *c);

typedef struct agent__tcp_cbs {
  void (*on_text)(void *user, const char *text, size_t len);
  void (*on_call)(void *user, agent__call *call); /* takes ownership of call */
  void *user;
} agent__tcp_cbs;

typedef struct agent__tcp agent__tcp;

/* `tools`: OpenAI-style tool array (borrowed; must outlive the parser), used to convert
 * values by their schema and to check names. */
agent__tcp *agent__tcp_new(const json_t *tools, const agent__tcp_cbs *cbs);
void agent__tcp_free(agent__tcp *p);
/* Feed generated text (any split). Returns 0, or AGENT_ENOMEM. */
int agent__tcp_feed(agent__tcp *p, const char *s, size_t n);
/* End of stream. `truncated`: the generation was cut (token limit, context full,
 * cancelled) — a call still open is then reported as an error, not run. */
int agent__tcp_finish(agent__tcp *p, int truncated);
/* Calls emitted so far. */
int agent__tcp_n_calls(const agent__tcp *p);

/* A call returned natively by a server (OpenAI tool_calls): `args_json` is the arguments
 * string. Checked like parsed calls (unknown tool, parameters, required, types — strings
 * converted where the schema wants another type). */
agent__call *agent__call_from_native(const json_t *tools, const char *id, const char *name,
                                     const char *args_json);

/* The model's reply was cut (token limit) inside this call: its error becomes the cut-off
 * message (the model is told to repeat the call, smaller), so it is never run. */
void agent__call_mark_cut(agent__call *c);

/* Convert one raw parameter value by its property schema (exposed for tests). Returns a
 * new reference, or NULL with *err (malloc'd). */
json_t *agent__convert_value(const char *raw, size_t n, const json_t *prop_schema, char **err);

/* Python literal (ast.literal_eval subset: str, int, float, True/False/None, list, tuple,
 * dict) to JSON; NULL when `s` is not one. */
json_t *agent__py_literal(const char *s, size_t n);

#endif
