/* store.h — internal: the SQLite session store used by the loop (schema and crash rules at
 * the top of store.c). Every function commits before it returns. */
#ifndef QC_AGENT_STORE_H
#define QC_AGENT_STORE_H

#include <jansson.h>
#include <stdint.h>

#include "agent/agent.h"

/* A new random session id: 32 lowercase hex characters. `out` >= 33 bytes. */
void agent__new_id(char *out, size_t n);

int agent__store_create(agent_store *st, const char *id, const char *cwd, const char *title,
                        const char *mode, const char *backend);
/* Update title / mode (NULL = unchanged) and the updated time. */
int agent__store_touch(agent_store *st, const char *id, const char *title, const char *mode);

/* Append one complete message (an OpenAI-style object) at position `seq`. */
int agent__store_append(agent_store *st, const char *id, int64_t seq, const json_t *msg, long n_tokens);
/* Replace a stored message's content (tool-output elision). */
int agent__store_set_content(agent_store *st, const char *id, int64_t seq, const json_t *msg);
/* Compaction by summary: the active messages from `first_seq` on become inactive (kept
 * for the record) and `msgs` (an array) is appended from `new_seq` on, in one transaction. */
int agent__store_replace_tail(agent_store *st, const char *id, int64_t first_seq, const json_t *msgs,
                              int64_t new_seq);

/* Tool calls: inserted when the model makes them, updated when they finish. */
int agent__store_tool_call(agent_store *st, const char *id, const char *call_id, int64_t msg_seq,
                           const char *name, const json_t *args, const char *status);
int agent__store_tool_result(agent_store *st, const char *id, const char *call_id, const char *status,
                             const char *output, const char *error, const json_t *data);
int agent__store_checkpoint(agent_store *st, const char *id, const char *checkpoint_id,
                            const char *tool_call_id);

/* Load a session: its info and its active messages in order (*msgs a new array; *seqs
 * malloc'd, one per message). */
int agent__store_load(agent_store *st, const char *id, agent_session_info *info, json_t **msgs,
                      int64_t **seqs, char **errmsg);

#endif
