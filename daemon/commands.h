/* commands.h — the qcoder subcommand table (internal to daemon/).
 *
 * git-style: every subcommand is one entry of `qc_commands[]` in main.c, implemented by
 * `cmd_<name>()` in its own file. main() handles `help`, `CMD --help` and `-h` for all
 * of them from the `usage` text, so a command only parses its own options.
 *
 * Exit codes shared by every command: 0 success, 1 the operation ran and failed (or the
 * command's documented "not done" outcome), 2 usage or internal error, 3 "not running"
 * / cancelled where the command documents it.
 */
#ifndef QC_DAEMON_COMMANDS_H
#define QC_DAEMON_COMMANDS_H

typedef struct qc_command {
  const char *name;
  const char *summary;   /* one line for `qcoder help` */
  const char *usage;     /* full text for `qcoder help NAME` and `NAME --help` */
  int (*run)(int argc, char **argv);  /* argv[0] is the command name */
} qc_command;

extern const qc_command qc_commands[];

/* Print "qcoder NAME: message" to stderr and return 2 (usage error). */
int qc_cmd_usage_error(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

extern const char cmd_version_usage[];
extern const char cmd_serve_usage[];
extern const char cmd_status_usage[];
extern const char cmd_stop_usage[];
extern const char cmd_model_info_usage[];
extern const char cmd_generate_usage[];
extern const char cmd_logits_usage[];
extern const char cmd_mkmodel_usage[];
extern const char cmd_tokenize_usage[];
extern const char cmd_tool_usage[];
extern const char cmd_repomap_usage[];
extern const char cmd_checkpoint_usage[];
extern const char cmd_render_usage[];
extern const char cmd_models_usage[];
extern const char cmd_pull_usage[];
extern const char cmd_fixtests_usage[];
extern const char cmd_run_usage[];
extern const char cmd_acp_usage[];
extern const char cmd_lsp_usage[];
extern const char cmd_bench_usage[];

int cmd_version(int argc, char **argv);
int cmd_help(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_model_info(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_mkmodel(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_tool(int argc, char **argv);
int cmd_repomap(int argc, char **argv);
int cmd_checkpoint(int argc, char **argv);
int cmd_render(int argc, char **argv);
int cmd_models(int argc, char **argv);
int cmd_pull(int argc, char **argv);
int cmd_fixtests(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_acp(int argc, char **argv);
int cmd_lsp(int argc, char **argv);
int cmd_bench(int argc, char **argv);

#endif
